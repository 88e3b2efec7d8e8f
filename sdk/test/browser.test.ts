import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { openChromium } from "../../test/web/chromium.js";
import { stackUrl } from "./helpers.js";

// The SDK in a real browser (Debian's Chromium): no Node globals, only fetch. The page is opened on
// the stack's own origin (/health), so no CORS setup is involved.
type Sdk = typeof import("../src/index.js");
const sdkDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");
let browser: Browser;
let page: Page;

beforeAll(async () => {
  const bundle = await build({
    stdin: {
      contents: 'import * as sdk from "./src/index.ts"; globalThis.codingEnvSdk = sdk;',
      resolveDir: sdkDir,
      loader: "ts",
    },
    bundle: true,
    format: "iife",
    platform: "browser",
    target: "es2022",
    write: false,
  });
  // The stack project's shared Chromium (test/global-setup.ts), else one of its own.
  browser = await openChromium(inject("chromiumWsEndpoint"));
  page = await browser.newPage();
  await page.goto(`${stackUrl()}/health`);
  await page.addScriptTag({ content: bundle.outputFiles[0]?.text ?? "" });
});
afterAll(async () => {
  await browser?.close();
});

describe("the SDK in Chromium", () => {
  it("runs reset, step, fork, history, state and close against the stack", async () => {
    const baseUrl = stackUrl();

    const outcome = await page.evaluate(async (url) => {
      const { CodingEnv } = (globalThis as unknown as { codingEnvSdk: Sdk }).codingEnvSdk;
      const env = new CodingEnv({ baseUrl: url });
      await env.reset();
      const first = await env.step("x = 6 * 7\nx");
      const branch = await env.fork();
      await branch.step("x = 0");
      const original = await env.step("x");
      const history = await branch.history();
      const state = await env.state();
      await branch.close();
      await env.close();
      return {
        first: first.observation.stdout,
        original: original.observation.stdout,
        historyCodes: history.steps.map((s) => s.code),
        stepCount: state.step_count,
        hasProcess: typeof (globalThis as { process?: unknown }).process !== "undefined",
      };
    }, baseUrl);

    expect(outcome).toEqual({
      first: "42",
      original: "42",
      historyCodes: ["x = 6 * 7\nx", "x = 0"],
      stepCount: 2,
      hasProcess: false,
    });
  });

  it("maps errors to the same classes and defaults the base URL without process.env", async () => {
    const baseUrl = stackUrl();

    const outcome = await page.evaluate(async (url) => {
      const { CodingEnv, NotFoundError, CodingEnvError } = (globalThis as unknown as { codingEnvSdk: Sdk })
        .codingEnvSdk;
      const error = await new CodingEnv({ baseUrl: url, episodeId: "ep_missing_in_browser" })
        .state()
        .catch((err: unknown) => err);
      return {
        notFound: error instanceof NotFoundError,
        base: error instanceof CodingEnvError,
        code: (error as { code?: string }).code,
        defaultBaseUrl: new CodingEnv().baseUrl,
      };
    }, baseUrl);

    expect(outcome).toEqual({
      notFound: true,
      base: true,
      code: "episode_not_found",
      defaultBaseUrl: "http://localhost:8000",
    });
  });
});
