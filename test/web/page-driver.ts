// Drives the HumanAgent page (/web) in Debian's Chromium through playwright-core, against the real
// local stack that test/global-setup.ts starts. Helpers only; the tests are in humanagent.test.ts.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";

// test/global-setup.ts provides the local stack's URL; declared here too so this folder type-checks alone.
declare module "vitest" {
  export interface ProvidedContext {
    baseUrl: string;
  }
}

/** Chromium from Debian (installed by .ci/run). Override with CHROMIUM_PATH. */
export const chromiumPath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

/** Screenshots are artifacts, not committed (test-results/ is gitignored). */
export const resultsDir = join(process.cwd(), "test-results");

/**
 * Launches headless Chromium with the flags that work in this sandbox. Playwright gives every launch a
 * fresh temporary profile (its own `--user-data-dir`), so no state leaks between runs.
 */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(resultsDir, { recursive: true });
  const path = join(resultsDir, name);
  await page.screenshot({ path, fullPage: true });
  return path;
}

export const text = async (page: Page, selector: string): Promise<string> =>
  (await page.locator(selector).textContent())?.trim() ?? "";

export const historyCount = (page: Page): Promise<number> => page.locator("#history > li").count();

/** Waits until the status badge reads `status` (e.g. "Ready", "Not initialized"). */
export async function waitForStatus(page: Page, status: string): Promise<void> {
  await page.waitForFunction((want) => document.getElementById("st-status")?.textContent === want, status, {
    timeout: 30_000,
  });
}

/** Opens the page and waits until it has finished booting (health check and resume). */
export async function openPage(page: Page, baseUrl: string): Promise<void> {
  await page.goto(`${baseUrl}/web`);
  await page.waitForSelector("body[data-booted]", { state: "attached", timeout: 30_000 });
}

/** Replaces the editor's content, as a paste would (no auto-indent or bracket closing). */
export async function setCode(page: Page, code: string): Promise<void> {
  await page.locator(".cm-content").click();
  await page.keyboard.press("ControlOrMeta+A");
  await page.keyboard.press("Delete");
  await page.keyboard.insertText(code);
}

export async function editorText(page: Page): Promise<string> {
  return page
    .locator(".cm-content")
    .evaluate((node) =>
      [...node.querySelectorAll(".cm-line")].map((line) => line.textContent ?? "").join("\n"),
    );
}

/** Clicks Reset and waits for the new episode; returns its id. */
export async function reset(page: Page): Promise<string> {
  const before = await text(page, "#st-episode");
  await page.locator("#reset").click();
  await page.waitForFunction(
    (old) => {
      const id = document.getElementById("st-episode")?.textContent ?? "–";
      return id !== "–" && id !== old && document.getElementById("st-status")?.textContent === "Ready";
    },
    before,
    { timeout: 30_000 },
  );
  return text(page, "#st-episode");
}

/** Sets the code, clicks Step and waits until the step is in the history. */
export async function step(page: Page, code: string): Promise<void> {
  await setCode(page, code);
  const before = await historyCount(page);
  await page.locator("#step").click();
  await waitForHistory(page, before + 1);
}

export async function waitForHistory(page: Page, count: number): Promise<void> {
  await page.waitForFunction(
    (want) =>
      document.querySelectorAll("#history > li").length === want &&
      document.getElementById("st-status")?.textContent !== "Running",
    count,
    { timeout: 30_000 },
  );
}
