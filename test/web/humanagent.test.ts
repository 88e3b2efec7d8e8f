// Browser tests of the HumanAgent page (/web): its wording, an episode's reset, steps, resume,
// fork and trajectory download. Real Chromium, real page bundle, real local stack (API + dynalite +
// Python executor from test/global-setup.ts). No mocks. What the page explains in words is in
// humanagent-explains.test.ts, how it is reached (address, keyboard, phone, origin) in
// humanagent-access.test.ts.
import type { Page } from "playwright-core";
import { describe, expect, inject, it } from "vitest";
import {
  downloadedBytes,
  editorText,
  historyCount,
  openPage,
  reloadPage,
  reset,
  screenshot,
  setCode,
  step,
  text,
  useTab,
  WAIT,
  waitForHistory,
} from "./page-driver.js";

const baseUrl = inject("baseUrl");
let page: Page;

useTab((tab) => ({ page } = tab), { context: { acceptDownloads: true } });

describe("HumanAgent page", () => {
  it("serves the page with the seed's wording and starts not initialized", async () => {
    // Prepare / Act
    await openPage(page, baseUrl);

    // Assess
    for (const heading of [
      "HumanAgent Interface",
      "Take Action",
      "State Observer",
      "Current State",
      "Current Observation",
      "Action History",
    ]) {
      expect(await page.getByRole("heading", { name: heading, exact: false }).count()).toBeGreaterThan(0);
    }
    expect(await text(page, "#st-status")).toBe("Not initialized");
    expect(await text(page, "#st-episode")).toBe("–");
    expect(await page.locator(".cm-editor").count()).toBe(1);
    // CodeMirror's Python mode is active: a keyword gets a highlighting class.
    await setCode(page, "def f():\n    return 1");
    expect(await page.locator(".cm-line span").count()).toBeGreaterThan(0);
  });

  it("resets, steps typed code, shows stdout and reward, grows history, resumes after reload", async () => {
    // Prepare
    await openPage(page, baseUrl);
    const episodeId = await reset(page);
    expect(episodeId).not.toBe("–");
    expect(await text(page, "#st-steps")).toBe("0");

    // Act: type (real key presses) and click Step; then type again and use Ctrl+Enter.
    await page.locator(".cm-content").click();
    await page.keyboard.press("ControlOrMeta+A");
    await page.keyboard.press("Delete");
    await page.keyboard.type("x = 21");
    await page.locator("#step").click();
    await waitForHistory(page, 1);
    await page.locator(".cm-content").click();
    await page.keyboard.press("ControlOrMeta+A");
    await page.keyboard.press("Delete");
    await page.keyboard.type("print(x * 2)");
    await page.keyboard.press("Control+Enter");
    await waitForHistory(page, 2);

    // Assess: observation, state and history (newest first).
    expect(await text(page, "#obs-stdout")).toBe("42");
    expect(await text(page, "#obs-exit")).toBe("0");
    expect(await text(page, "#obs-reward")).toBe("0.1");
    expect(await text(page, "#obs-done")).toBe("no");
    expect(await text(page, "#st-status")).toBe("Ready");
    expect(await text(page, "#st-steps")).toBe("2");
    expect(await text(page, "#st-exit")).toBe("0");
    const items = page.locator("#history > li");
    expect(await items.nth(0).getAttribute("data-step")).toBe("2");
    expect(await items.nth(0).locator(".h-code").textContent()).toBe("print(x * 2)");
    expect(await items.nth(0).locator(".h-meta").textContent()).toContain("reward 0.1");
    expect(await items.nth(1).getAttribute("data-step")).toBe("1");
    expect(await items.nth(1).locator(".h-code").textContent()).toBe("x = 21");

    await step(page, "print('third step')");
    await screenshot(page, "web-humanagent-1280x800.png");

    // Act: reload the page (same browser context: same cookie and localStorage).
    await reloadPage(page);

    // Assess: same episode, same count, same history, and its Python state still works.
    expect(await text(page, "#st-episode")).toBe(episodeId);
    expect(await text(page, "#st-steps")).toBe("3");
    expect(await historyCount(page)).toBe(3);
    expect(await text(page, "#obs-stdout")).toBe("third step");
    await step(page, "print(x + 1)");
    expect(await text(page, "#obs-stdout")).toBe("22");

    // Act / Assess: clicking a history step loads its code into the editor.
    await page.locator('#history > li[data-step="1"] .h-load').click();
    expect(await editorText(page)).toBe("x = 21");
  });

  it("starts an episode when Step is pressed before Reset", async () => {
    // Prepare
    await openPage(page, baseUrl);
    expect(await text(page, "#st-status")).toBe("Not initialized");

    // Act
    await step(page, "print('first')");

    // Assess
    expect(await text(page, "#st-episode")).not.toBe("–");
    expect(await text(page, "#st-steps")).toBe("1");
    expect(await text(page, "#obs-stdout")).toBe("first");
  });

  it("resumes from the cookie alone when localStorage was cleared", async () => {
    // Prepare
    await openPage(page, baseUrl);
    const episodeId = await reset(page);
    await step(page, "z = 3");

    // Act
    await page.evaluate(() => localStorage.clear());
    await reloadPage(page);

    // Assess
    expect(await text(page, "#st-episode")).toBe(episodeId);
    expect(await historyCount(page)).toBe(1);
  });

  it("forks: continues in a copy with the same variables, the original unchanged", async () => {
    // Prepare
    await openPage(page, baseUrl);
    const original = await reset(page);
    await step(page, "y = 7");

    // Act
    await page.locator("#fork").click();
    await page.waitForFunction(
      (old) => {
        const id = document.getElementById("st-episode")?.textContent;
        return id !== old && document.getElementById("st-status")?.textContent === "Ready";
      },
      original,
      WAIT,
    );
    const copy = await text(page, "#st-episode");
    await step(page, "y += 1\nprint(y)");

    // Assess: the copy had y = 7 and its history; the original (read through the API) did not move.
    expect(copy).not.toBe(original);
    expect(await text(page, "#st-forked")).toBe(original);
    expect(await text(page, "#obs-stdout")).toBe("8");
    expect(await text(page, "#st-steps")).toBe("2");
    expect(await historyCount(page)).toBe(2);
    const originalState = (await (
      await fetch(`${baseUrl}/episodes/${encodeURIComponent(original)}`)
    ).json()) as { step_count: number };
    expect(originalState.step_count).toBe(1);

    // Act / Assess: after a reload the page is still in the copy and says where it came from.
    await reloadPage(page);
    expect(await text(page, "#st-episode")).toBe(copy);
    expect(await text(page, "#st-forked")).toBe(original);
  });

  it("downloads the trajectory as JSON Lines", async () => {
    // Prepare
    await openPage(page, baseUrl);
    const episodeId = await reset(page);
    await step(page, "a = 1");
    await step(page, "print(a + 1)");

    // Act
    const [download] = await Promise.all([page.waitForEvent("download"), page.locator("#download").click()]);
    const body = (await downloadedBytes(download)).toString("utf8");

    // Assess
    expect(download.suggestedFilename()).toBe(`${episodeId}.jsonl`);
    const lines = body.trim().split("\n");
    const steps = lines.map(
      (line) => JSON.parse(line) as { step: number; code: string; observation: { stdout: string } },
    );
    expect(steps.map((s) => s.code)).toEqual(["a = 1", "print(a + 1)"]);
    expect(steps[1]?.observation.stdout.trim()).toBe("2");
  });
});
