// What the HumanAgent page (/web) tells a person: a failing step, the episode's options and the
// notices they lead to, a refused input, the busy state, an API error. Real Chromium, real page
// bundle, real local stack (test/global-setup.ts). No mocks.
import type { Page } from "playwright-core";
import { describe, expect, inject, it } from "vitest";
import {
  openPage,
  reset,
  setCode,
  setEpisodeOptions,
  step,
  text,
  useTab,
  waitForHistory,
  waitForStatus,
} from "./page-driver.js";

const baseUrl = inject("baseUrl");
let page: Page;

useTab((tab) => ({ page } = tab));

describe("HumanAgent page in words", () => {
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

  it("applies the episode options on Reset: extra modules and the step timeout", async () => {
    // Prepare: json is not in OpenEnv's allow-list; the option adds it. A 1 s step limit.
    await openPage(page, baseUrl);
    await setEpisodeOptions(page, { imports: "json", timeoutS: "1" });

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
    await setEpisodeOptions(page, { policy: "full" });
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
    await setEpisodeOptions(page, { timeoutS: "-5" });

    // Act
    await page.locator("#reset").click();
    await waitForStatus(page, "Error");

    // Assess
    expect(await text(page, "#error-text")).toBe(
      "The step timeout must be a number of seconds greater than 0.",
    );
    expect(await text(page, "#st-episode")).toBe("–");
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
});
