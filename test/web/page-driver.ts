// Drives the HumanAgent page (/web) in Debian's Chromium through playwright-core, against the real
// local stack that test/global-setup.ts starts. Helpers only; the tests are in humanagent.test.ts.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Browser, BrowserContextOptions, Download, Page } from "playwright-core";
import { afterAll, beforeAll, beforeEach, inject } from "vitest";
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

/** The viewport most tests use. */
export const DESKTOP = { width: 1280, height: 800 } as const;

/**
 * Options of every context the page tests open. Reduced motion stills the busy spinner (the page's
 * CSS honours the setting): in headless Chromium, which composites in software, its animation cost
 * about 0.3 CPU-s per second a step runs (renderer and GPU process), and no test looks at it spin.
 */
export const CONTEXT_OPTIONS = {
  viewport: DESKTOP,
  reducedMotion: "reduce",
} as const satisfies BrowserContextOptions;

/**
 * A test file's one tab, in a context of its own. The tests of a file share it, each starting as a
 * new visitor ({@link asNewVisitor}): a context per test cost about three renderer processes and
 * the page's scripts compiled afresh, most of the CPU Chromium spent on these suites.
 */
export async function openTab(browser: Browser, options: BrowserContextOptions = {}): Promise<Page> {
  const context = await browser.newContext({ ...CONTEXT_OPTIONS, ...options });
  return context.newPage();
}

/** A test file's browser and its one tab ({@link useTab}). */
export interface Tab {
  readonly browser: Browser;
  readonly page: Page;
}

export interface UseTabOpts {
  /** Options of the tab's context, over {@link CONTEXT_OPTIONS}. @default {} */
  readonly context?: BrowserContextOptions;
  /**
   * The origin each test starts a first visit to ({@link asNewVisitor}, at the context's viewport),
   * read when the test starts; `null`: the tests do it themselves. @default the shared stack's URL
   */
  readonly origin?: (() => string) | null;
}

/**
 * Registers a test file's browser hooks: the browser and its one tab opened before the file's first
 * test (and handed to `opened`), every test a first visit, the browser closed after the last test.
 * Call it before the file's own hooks that use the tab.
 * @example
 * let page: Page;
 * useTab((tab) => ({ page } = tab), { context: { acceptDownloads: true } });
 */
export function useTab(opened: (tab: Tab) => void, opts: UseTabOpts = {}): void {
  let browser: Browser | undefined;
  let page: Page | undefined;
  beforeAll(async () => {
    browser = await launchChromium();
    page = await openTab(browser, opts.context);
    opened({ browser, page });
  });
  afterAll(async () => {
    await browser?.close();
  });
  const origin = opts.origin === undefined ? () => inject("baseUrl") : opts.origin;
  if (origin === null) return;
  beforeEach(async () => {
    // A first visit, as in a fresh context: no cookie, no storage (no key kept, no episode open).
    await asNewVisitor(page as Page, origin(), opts.context?.viewport ?? DESKTOP);
  });
}

/**
 * Makes `page` a first visit to `origin` again, as a fresh context would be: no cookie, nothing in
 * localStorage or sessionStorage (where the page keeps its episode, draft and API key), at
 * `viewport`. It leaves the tab on the origin's /health, outside the page.
 */
export async function asNewVisitor(page: Page, origin: string, viewport: Viewport = DESKTOP): Promise<void> {
  await page.context().clearCookies();
  await page.goto(`${origin}/health`);
  await page.evaluate(() => {
    localStorage.clear();
    sessionStorage.clear();
  });
  await page.setViewportSize(viewport);
}

interface Viewport {
  readonly width: number;
  readonly height: number;
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
export const WAIT = { timeout: 30_000, polling: 100 } as const;

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
  await waitForBoot(page);
}

/**
 * Reloads the page (a person's reload: same tab, cookie and storage) and waits until it has booted
 * again. One load: a reload followed by {@link openPage} loaded the page twice.
 */
export async function reloadPage(page: Page): Promise<void> {
  await page.reload();
  await waitForBoot(page);
}

async function waitForBoot(page: Page): Promise<void> {
  await page.waitForSelector("body[data-booted]", { state: "attached", timeout: 30_000 });
}

/** What the page's Options panel is set to before a Reset; a field left out keeps its default. */
export interface EpisodeOptions {
  /** The import policy's `<select>` value ("openenv" or "full"). */
  readonly policy?: string;
  /** The extra modules field, as typed (e.g. "json"). */
  readonly imports?: string;
  /** The step timeout field, as typed (e.g. "7", or "-5" to see the page refuse it). */
  readonly timeoutS?: string;
}

/** Opens the page's Options panel (closed on a fresh page) and fills in `options`. */
export async function setEpisodeOptions(page: Page, options: EpisodeOptions): Promise<void> {
  await page.locator("#options summary").click();
  if (options.policy !== undefined) await page.locator("#opt-policy").selectOption(options.policy);
  if (options.imports !== undefined) await page.locator("#opt-imports").fill(options.imports);
  if (options.timeoutS !== undefined) await page.locator("#opt-timeout").fill(options.timeoutS);
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
  try {
    await page.waitForFunction(
      (old) => {
        const id = document.getElementById("st-episode")?.textContent ?? "–";
        return id !== "–" && id !== old && document.getElementById("st-status")?.textContent === "Ready";
      },
      before,
      WAIT,
    );
  } catch (err) {
    // What the page shows then tells a request that never came back from a refused one.
    const shown = await page
      .evaluate(() =>
        ["st-episode", "st-status", "error", "busy"]
          .map((id) => `#${id}: ${JSON.stringify(document.getElementById(id)?.textContent ?? null)}`)
          .join(", "),
      )
      .catch(() => "the page did not answer");
    throw new Error(`Reset did not give a new, Ready episode (before: ${before}; ${shown})`, { cause: err });
  }
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
