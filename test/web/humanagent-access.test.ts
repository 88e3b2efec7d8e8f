// How the HumanAgent page (/web) is reached: at /web/ too, by keyboard, on a phone-sized screen,
// and with nothing loaded from another origin. Real Chromium, real page bundle, real local stack
// (test/global-setup.ts). No mocks.
import type { Browser, Page } from "playwright-core";
import { describe, expect, inject, it } from "vitest";
import {
  CONTEXT_OPTIONS,
  openPage,
  reset,
  screenshot,
  setCode,
  step,
  text,
  useTab,
  waitForHistory,
} from "./page-driver.js";

const baseUrl = inject("baseUrl");
let browser: Browser;
let page: Page;

useTab((tab) => ({ browser, page } = tab));

describe("HumanAgent page access", () => {
  it("works at /web/ too, with API calls and the docs link relative to where it is mounted", async () => {
    // Act: the trailing-slash address (the base-path logic must not look for the API under /web/).
    await page.goto(`${baseUrl}/web/`);
    await page.waitForSelector("body[data-booted]", { state: "attached" });
    await reset(page);
    await step(page, "print('slash')");

    // Assess
    expect(await text(page, "#obs-stdout")).toBe("slash");
    expect(await page.locator("nav a").getAttribute("href")).toBe("/docs");
    const docs = await fetch(`${baseUrl}/docs`);
    expect(docs.status).toBe(200);
  });

  it("is keyboard reachable: Esc then Tab leaves the editor for the Step button", async () => {
    // Prepare
    await openPage(page, baseUrl);
    await reset(page);
    await setCode(page, "print('keyboard')");

    // Act: leave the editor by keyboard and press Step with Enter.
    await page.keyboard.press("Escape");
    await page.keyboard.press("Tab");
    const focused = await page.evaluate(() => document.activeElement?.id);
    await page.keyboard.press("Enter");
    await waitForHistory(page, 1);

    // Assess
    expect(focused).toBe("step");
    expect(await text(page, "#obs-stdout")).toBe("keyboard");
  });

  it("fits a 390 px wide screen with the panes stacked", async () => {
    // Prepare
    await page.setViewportSize({ width: 390, height: 844 });
    await openPage(page, baseUrl);
    await reset(page);

    // Act
    await step(page, "for i in range(3):\n    print('line', i)");
    await step(page, "1 / 0");
    await screenshot(page, "web-humanagent-390.png");

    // Assess: no horizontal scrolling; the observer is below the editor pane.
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    const editorBox = await page.locator(".pane").first().boundingBox();
    const observerBox = await page.locator(".observer").boundingBox();
    expect(editorBox && observerBox && observerBox.y >= editorBox.y + editorBox.height).toBe(true);
  });

  it("loads nothing from outside its own origin (no CDN, no external fonts)", async () => {
    // Prepare: a context of its own, whose cache cannot answer for anything the page asks for.
    const context = await browser.newContext(CONTEXT_OPTIONS);
    const fresh = await context.newPage();
    const requested: string[] = [];
    fresh.on("request", (request) => {
      requested.push(request.url());
    });
    try {
      // Act
      await openPage(fresh, baseUrl);
      await reset(fresh);
      await step(fresh, "print('local only')");

      // Assess
      const origin = new URL(baseUrl).origin;
      expect(requested.length).toBeGreaterThan(0);
      expect(requested.filter((url) => !url.startsWith(`${origin}/`) && !url.startsWith("data:"))).toEqual(
        [],
      );
    } finally {
      await context.close();
    }
  });
});
