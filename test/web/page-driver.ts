// Drives the HumanAgent page (/web) in Debian's Chromium through playwright-core, against the real
// local stack that test/global-setup.ts starts. Helpers only; the tests are in humanagent.test.ts.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Browser, Download, Page } from "playwright-core";
import { inject } from "vitest";
import { openChromium } from "./chromium.js";

// test/global-setup.ts provides the local stack's URL; declared here too so this folder type-checks alone.
declare module "vitest" {
  export interface ProvidedContext {
    baseUrl: string;
  }
}

/** Screenshots are artifacts, not committed (test-results/ is gitignored). */
export const resultsDir = join(process.cwd(), "test-results");

/**
 * The browser for one test file: a connection to the stack project's shared Chromium
 * (test/web/chromium.ts), or a launch of its own when there is none. `close()` it in `afterAll`.
 */
export function launchChromium(): Promise<Browser> {
  return openChromium(inject("chromiumWsEndpoint"));
}

/** A download's bytes (read through Playwright, as `download.path()` is local to the browser). */
export async function downloadedBytes(download: Download): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of await download.createReadStream()) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
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

/**
 * How the page waits below check their condition: every 100 ms, not on every animation frame
 * (Playwright's default), which makes the renderer draw 60 frames a second while a step runs
 * (about a fifth of its CPU in these tests).
 */
const WAIT = { timeout: 30_000, polling: 100 } as const;

/** Waits until the status badge reads `status` (e.g. "Ready", "Not initialized"). */
export async function waitForStatus(page: Page, status: string): Promise<void> {
  await page.waitForFunction(
    (want) => document.getElementById("st-status")?.textContent === want,
    status,
    WAIT,
  );
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
    WAIT,
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
    WAIT,
  );
}
