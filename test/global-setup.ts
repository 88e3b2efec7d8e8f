// vitest globalSetup: one real local stack (in-memory DynamoDB, the Python executor, the API) on a
// free port for the whole run. Tests read its URL with `inject("baseUrl")`, and the local
// DynamoDB's endpoint, table and start-up credentials with `inject("dynamodb")`.
// CODING_ENV_API_INSTANCES=2 / CODING_ENV_EXECUTOR_MODE=lambda run every suite against N API
// instances / the Lambda-mode executor.
// The SDK is built into sdk/dist at the same time (sdk/test/build.setup.ts), and the one Chromium
// the browser suites share is launched (test/web/chromium.ts): vitest runs global setups one after
// another, and the three wait on different things.
import type { BrowserServer } from "playwright-core";
import type { TestProject } from "vitest/node";
import { type LocalStack, startLocalStack } from "../functions/src/local/stack.js";
import { setup as buildSdk } from "../sdk/test/build.setup.js";
import { launchChromiumServer } from "./web/chromium.js";
import "./helpers/context.js";

declare module "vitest" {
  interface ProvidedContext {
    dynamodb: {
      endpoint: string;
      tableName: string;
      credentials: { accessKeyId: string; secretAccessKey: string };
    };
  }
}

let stack: LocalStack | undefined;
let chromium: BrowserServer | undefined;
// The suites' state-limit cases expect a 413 past 3 MiB (the stack's own cap with its S3 bucket
// is 256 MiB, which test/api/restart.test.ts exercises).
const SUITE_ENV = { CODING_ENV_MAX_STATE_BYTES: String(3 * 1024 * 1024) };

export async function setup(project: TestProject): Promise<void> {
  const [started, built, browser] = await Promise.allSettled([
    startLocalStack({ port: 0, dataDir: null, env: SUITE_ENV }),
    buildSdk(),
    launchChromiumServer(),
  ]);
  // Without a shared browser, each browser suite launches its own (and reports why it cannot).
  if (browser.status === "fulfilled") chromium = browser.value;
  if (started.status === "rejected") {
    await chromium?.close();
    throw started.reason;
  }
  stack = started.value;
  if (built.status === "rejected") {
    await Promise.all([stack.stop(), chromium?.close()]);
    throw built.reason;
  }
  project.provide("baseUrl", stack.baseUrl);
  project.provide("dynamodb", {
    endpoint: stack.dynamodbEndpoint,
    tableName: stack.tableName,
    credentials: { ...stack.credentials },
  });
  // The browser is for every project's browser files: the two-instances project runs
  // test/web/lost-answer.test.ts again (all global setups run before the first test file).
  if (chromium) {
    for (const each of project.vitest.projects) each.provide("chromiumWsEndpoint", chromium.wsEndpoint());
  }
}

export async function teardown(): Promise<void> {
  await Promise.all([stack?.stop(), chromium?.close()]);
}
