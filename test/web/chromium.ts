// Debian's Chromium through playwright-core: one browser for the whole run, launched by the "stack"
// project's global setup (test/global-setup.ts) and shared by every browser test file of every
// project, each of which connects to it and opens contexts of its own (no cookie, storage or cache
// is shared between contexts). A launch costs about 2 s of CPU; ten files each launching their own
// paid it ten times.
// No vitest import here: the global setup runs outside the test workers.
import { existsSync } from "node:fs";
import { type Browser, type BrowserServer, chromium, type LaunchOptions } from "playwright-core";

declare module "vitest" {
  export interface ProvidedContext {
    /** The shared Chromium's endpoint for `chromium.connect`; absent when it could not start. */
    chromiumWsEndpoint?: string;
  }
}

const HEADLESS_SHELL = "/usr/bin/chromium-headless-shell";

/**
 * Debian's Chromium (installed by .ci/run), override with CHROMIUM_PATH: its headless shell when
 * installed (`apt-get install chromium-headless-shell`, the same Chromium and Blink without the
 * browser's own layer: what Playwright runs for headless by default), else the full browser in its
 * headless mode. The shell cost about 40% less CPU per page load (browser process 1.1 against 2-3
 * CPU-s for 20 loads of /web, one renderer process against three).
 */
export const chromiumPath =
  process.env.CHROMIUM_PATH ?? (existsSync(HEADLESS_SHELL) ? HEADLESS_SHELL : "/usr/bin/chromium");

/** Headless Chromium with the flags that work in this sandbox. */
const launchOptions: LaunchOptions = {
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
};

/** The shared browser, for the global setup. */
export function launchChromiumServer(): Promise<BrowserServer> {
  return chromium.launchServer(launchOptions);
}

/**
 * A browser for one test file: a connection to the shared one when `endpoint` is given (closing it
 * closes only this file's contexts), else a launch of its own. Playwright gives every launch a
 * fresh temporary profile, so no state leaks between runs.
 */
export function openChromium(endpoint: string | undefined): Promise<Browser> {
  return endpoint ? chromium.connect(endpoint) : chromium.launch(launchOptions);
}
