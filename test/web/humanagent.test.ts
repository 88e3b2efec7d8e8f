// Browser tests of the HumanAgent page (/web): real Chromium, real page bundle, real local stack
// (API + dynalite + Python executor from test/global-setup.ts). No mocks.
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import {
  downloadedBytes,
  editorText,
  historyCount,
  launchChromium,
  openPage,
  reset,
  screenshot,
  setCode,
  step,
  text,
  waitForHistory,
  waitForStatus,
} from "./page-driver.js";

const baseUrl = inject("baseUrl");
let browser: Browser;
let context: BrowserContext;
let page: Page;

beforeAll(async () => {
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
});
beforeEach(async () => {
  // A fresh context per test: no cookie, no localStorage, so every test starts "Not initialized".
  context = await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
  page = await context.newPage();
});
afterEach(async () => {
  await context?.close();
});

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
    await page.reload();
    await openPage(page, baseUrl);

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
    await page.reload();
    await openPage(page, baseUrl);

    // Assess
    expect(await text(page, "#st-episode")).toBe(episodeId);
    expect(await historyCount(page)).toBe(1);
  });

  it("shows stderr and exit code 1 for a failing step, and keeps the episode usable", async () => {
    // Prepare
    await openPage(page, baseUrl);
    await reset(page);

    // Act
    await step(page, "1 / 0");

    // Assess
    expect(await text(page, "#obs-exit")).toBe("1");
    expect(await text(page, "#obs-stderr")).toContain("ZeroDivisionError");
    expect(await text(page, "#st-exit")).toBe("1");
    expect(await page.locator("#history > li").first().getAttribute("data-exit")).toBe("1");
    expect(await page.locator("#history > li").first().locator(".h-out .err").textContent()).toContain(
      "ZeroDivisionError",
    );
    expect(await text(page, "#st-status")).toBe("Ready");
    expect(await page.locator("#error").isHidden()).toBe(true);

    await step(page, "print('still here')");
    expect(await text(page, "#obs-exit")).toBe("0");
    expect(await text(page, "#obs-stdout")).toBe("still here");
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
      { timeout: 30_000 },
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
    await page.reload();
    await openPage(page, baseUrl);
    expect(await text(page, "#st-episode")).toBe(copy);
    expect(await text(page, "#st-forked")).toBe(original);
  });

  it("applies the episode options on Reset: extra modules and the step timeout", async () => {
    // Prepare: json is not in OpenEnv's allow-list; the option adds it. A 1 s step limit.
    await openPage(page, baseUrl);
    await page.locator("#options summary").click();
    await page.locator("#opt-imports").fill("json");
    await page.locator("#opt-timeout").fill("1");

    // Act
    await reset(page);
    await step(page, "import json\nprint(json.dumps({'a': 1}))");

    // Assess: the import works and the state shows the options the server recorded.
    expect(await text(page, "#obs-exit")).toBe("0");
    expect(await text(page, "#obs-stdout")).toBe('{"a": 1}');
    expect(await text(page, "#st-policy")).toContain("+ json");
    expect(await text(page, "#st-policy")).toContain("1 s per step");

    // Act: a step that runs past the limit.
    await step(page, "while True:\n    pass");

    // Assess: exit code 1 and a notice in words.
    expect(await text(page, "#obs-exit")).toBe("1");
    expect(await text(page, "#obs-notices")).toContain("time limit");
  });

  it("explains dropped variables, the safety rule and truncated output in words", async () => {
    // Prepare: full Python, so threading (a lock cannot be saved between steps) imports.
    await openPage(page, baseUrl);
    await page.locator("#options summary").click();
    await page.locator("#opt-policy").selectOption("full");
    await reset(page);

    // Act / Assess: a variable that cannot be saved.
    await step(page, "import threading\nlock = threading.Lock()");
    expect(await text(page, "#st-policy")).toContain("full Python");
    expect(await text(page, "#obs-notices")).toContain("lock (lock)");

    // Act / Assess: the safety rule (OpenEnv's reward: -1.0 + 0.1).
    await step(page, "import os");
    expect(await text(page, "#obs-reward")).toBe("-0.9");
    expect(await text(page, "#obs-notices")).toContain("safety rule");

    // Act / Assess: output over the limit.
    await step(page, "print('y' * 3_000_000)");
    expect(await text(page, "#obs-notices")).toContain("stdout was too long and was truncated");
  });

  it("refuses a nonsense timeout in the page, before anything is sent", async () => {
    // Prepare
    await openPage(page, baseUrl);
    await page.locator("#options summary").click();
    await page.locator("#opt-timeout").fill("-5");

    // Act
    await page.locator("#reset").click();
    await waitForStatus(page, "Error");

    // Assess
    expect(await text(page, "#error-text")).toBe(
      "The step timeout must be a number of seconds greater than 0.",
    );
    expect(await text(page, "#st-episode")).toBe("–");
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

  it("shows a visible busy state while a step runs", async () => {
    // Prepare
    await openPage(page, baseUrl);
    await reset(page);
    await setCode(page, "import time\ntime.sleep(1.5)\nprint('done')");

    // Act
    await page.locator("#step").click();

    // Assess: while running, the status says so and Step cannot be pressed twice.
    await waitForStatus(page, "Running");
    expect(await page.locator("#step").isDisabled()).toBe(true);
    expect(await page.locator("#busy").isVisible()).toBe(true);
    await waitForHistory(page, 1);
    expect(await text(page, "#st-status")).toBe("Ready");
    expect(await page.locator("#step").isDisabled()).toBe(false);
    expect(await page.locator("#busy").isHidden()).toBe(true);
    expect(await text(page, "#obs-stdout")).toBe("done");
  });

  it("explains an API error in plain words (the episode was deleted behind the page)", async () => {
    // Prepare: an episode the page knows, deleted through the API.
    await openPage(page, baseUrl);
    const episodeId = await reset(page);
    const deleted = await fetch(`${baseUrl}/episodes/${encodeURIComponent(episodeId)}`, { method: "DELETE" });
    expect(deleted.status).toBe(204);

    // Act
    await setCode(page, "print(1)");
    await page.locator("#step").click();
    await waitForStatus(page, "Error");

    // Assess: a sentence to act on, not a status code or JSON.
    expect(await page.locator("#error").isVisible()).toBe(true);
    const message = await text(page, "#error-text");
    expect(message).toContain("no longer exists");
    expect(message).toContain("Reset");
    expect(message).not.toContain("{");
    expect(await text(page, "#st-episode")).toBe("–");

    // Act / Assess: Reset recovers.
    await reset(page);
    expect(await page.locator("#error").isHidden()).toBe(true);
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
    // Prepare
    const requested: string[] = [];
    page.on("request", (request) => {
      requested.push(request.url());
    });

    // Act
    await openPage(page, baseUrl);
    await reset(page);
    await step(page, "print('local only')");

    // Assess
    const origin = new URL(baseUrl).origin;
    expect(requested.length).toBeGreaterThan(0);
    expect(requested.filter((url) => !url.startsWith(`${origin}/`) && !url.startsWith("data:"))).toEqual([]);
  });
});
