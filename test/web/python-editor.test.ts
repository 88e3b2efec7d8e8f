// The page's editor is for Python (Enter, Tab, 4-space indentation, completion), and a step is easy
// to follow: the result scrolls into view on a phone, the time limit and the stale output are shown
// while it runs, and a reload keeps the draft. Real Chromium against the shared local stack.
import type { Browser, Page } from "playwright-core";
import { describe, expect, inject, it } from "vitest";
import {
  CONTEXT_OPTIONS,
  editorText,
  openPage,
  reloadPage,
  reset,
  screenshot,
  setCode,
  setEpisodeOptions,
  step,
  text,
  useTab,
  waitForHistory,
} from "./page-driver.js";

const baseUrl = inject("baseUrl");
let browser: Browser;
let page: Page;

useTab((tab) => ({ browser, page } = tab));

const popup = ".cm-tooltip-autocomplete";

/** Empties the editor and leaves the cursor in it. */
async function clearEditor(p: Page): Promise<void> {
  await setCode(p, "");
}

describe("the editor is for Python", () => {
  it("Enter starts a new line indented by 4 spaces after a colon, and Tab indents by 4", async () => {
    // Prepare
    await openPage(page, baseUrl);
    await clearEditor(page);

    // Act
    await page.keyboard.type("def f():");
    await page.keyboard.press("Enter");
    await page.keyboard.type("return 1");
    await page.keyboard.press("Enter");
    await page.keyboard.press("Enter");
    await page.keyboard.press("Shift+Tab");
    await page.keyboard.press("Tab");
    await page.keyboard.type("x");

    // Assess
    const lines = (await editorText(page)).split("\n");
    expect(lines[0]).toBe("def f():");
    expect(lines[1]).toBe("    return 1");
    expect(lines.at(-1)).toBe("    x");
  });

  it("Enter closes the completion popup and inserts a newline; Tab accepts a completion", async () => {
    // Prepare
    await openPage(page, baseUrl);
    await clearEditor(page);

    // Act: a suggestion is open, Enter.
    await page.keyboard.type("pri");
    await page.waitForSelector(popup);
    await page.keyboard.press("Enter");

    // Assess: a newline, the typed word unchanged, no popup.
    expect(await editorText(page)).toBe("pri\n");
    expect(await page.locator(popup).count()).toBe(0);

    // Act: a suggestion is open, Tab.
    await page.keyboard.type("pri");
    await page.waitForSelector(popup);
    // CodeMirror ignores accept keys for 75 ms after the popup opens (so a fast typist's Tab is not
    // swallowed); a person's Tab comes later than that.
    await page.waitForTimeout(200);
    await page.keyboard.press("Tab");

    // Assess: the suggestion was accepted.
    expect((await editorText(page)).split("\n")[1]).toBe("print");
    expect(await page.locator(popup).count()).toBe(0);
  });

  it.each([
    ["Ctrl+Enter in the editor", (p: Page) => p.keyboard.press("Control+Enter")],
    ["a click on the Step button", (p: Page) => p.click("#step")],
  ])("the completion popup closes on Step (%s)", async (_way, pressStep) => {
    // Prepare
    await openPage(page, baseUrl);
    await reset(page);
    await clearEditor(page);
    await page.keyboard.type("x = 1\npri");
    await page.waitForSelector(popup);

    // Act
    await pressStep(page);
    await waitForHistory(page, 1);

    // Assess: the step ran what was typed and the popup is gone.
    expect(await page.locator(popup).count()).toBe(0);
    expect(await text(page, "#history > li .h-code")).toBe("x = 1\npri");
  });
});

describe("stepping", () => {
  it("at 390 px wide, Step brings the result into view", async () => {
    // Prepare
    const phone = await browser.newContext({
      ...CONTEXT_OPTIONS,
      viewport: { width: 390, height: 844 },
      isMobile: true,
    });
    const small = await phone.newPage();
    try {
      await openPage(small, baseUrl);
      await reset(small);
      await small.evaluate(() => window.scrollTo(0, 0));
      const before = await small
        .locator("#obs-card")
        .evaluate((card) => card.getBoundingClientRect().top - window.innerHeight);
      expect(before).toBeGreaterThan(0); // the observation starts below the screen

      // Act
      await step(small, "print('on a phone')");

      // Assess: the observation's top is on screen.
      const box = await small.locator("#obs-card").evaluate((card) => {
        const r = card.getBoundingClientRect();
        return { top: r.top, innerHeight: window.innerHeight };
      });
      expect(box.top).toBeGreaterThanOrEqual(-1); // scrolled to its top (subpixel rounding)
      expect(box.top).toBeLessThan(box.innerHeight);
      expect(await text(small, "#obs-stdout")).toBe("on a phone");
      await screenshot(small, "web-python-editor-390.png");
    } finally {
      await phone.close();
    }
  });

  it("while a step runs, the time limit is shown and the previous output is marked stale", async () => {
    // Prepare: full Python (time.sleep) and a 7 s limit.
    await openPage(page, baseUrl);
    await setEpisodeOptions(page, { policy: "full", timeoutS: "7" });
    await reset(page);
    await step(page, "print('previous')");
    expect(await page.locator("#obs-stale").isHidden()).toBe(true);

    // Act: a step that takes a while.
    await setCode(page, "import time\ntime.sleep(3)\nprint('next')");
    await page.locator("#step").click();

    // Assess (during): the limit, the stale marking, and the old output still there.
    await page.waitForSelector("#obs-stale", { state: "visible" });
    expect(await text(page, "#busy-text")).toContain("limit 7 s");
    expect(await page.locator("#observation").getAttribute("class")).toContain("stale");
    expect(await text(page, "#obs-stdout")).toBe("previous");
    await screenshot(page, "web-python-editor-running.png");

    // Assess (after): fresh output, no marking.
    await waitForHistory(page, 2);
    expect(await text(page, "#obs-stdout")).toBe("next");
    expect(await page.locator("#obs-stale").isHidden()).toBe(true);
    expect(await page.locator("#observation").getAttribute("class")).not.toContain("stale");
  });

  it("a reload keeps the draft", async () => {
    // Prepare
    await openPage(page, baseUrl);
    await setCode(page, "draft = 'kept'\nprint(draft)");

    // Act
    await reloadPage(page);

    // Assess
    expect(await editorText(page)).toBe("draft = 'kept'\nprint(draft)");
  });
});
