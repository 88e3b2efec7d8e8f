import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";
import { moduleCacheDir } from "./test/helpers/module-cache.js";
import { LongestFirstSequencer } from "./test/longest-first.sequencer.js";
import { onSharedStack, onTwoInstances } from "./test/projects.js";

// The AWS SDK warns once per process that its 2027 releases need Node 22 (we pin today's): in the
// test workers (`env`) and in this process, whose global setups start the shared stacks.
// The stacks' executors keep one spare interpreter, as the executor image does (python-runtime/
// Dockerfile), not the local server's two: every stack a test started threw the second away.
const env = {
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
  CODING_ENV_IDLE_WORKERS: process.env.CODING_ENV_IDLE_WORKERS ?? "1",
};
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
process.env.CODING_ENV_IDLE_WORKERS ??= "1";

// The repository's modules as earlier runs transformed them (test/helpers/module-cache.ts says
// what keys them); none when node_modules cannot be written.
const fsModuleCachePath = moduleCacheDir(dirname(fileURLToPath(import.meta.url)));

export default defineConfig({
  // The environment vitest runs the global setups in (this process: the shared stacks' API and
  // DynamoDB) resolves packages as Node does, as the test files' environment does: by default it
  // took the packages' "module" builds and their "browser" files (the AWS SDK's dist-es with
  // fromUtf8.browser.js and the like), which Node cannot load, so vite transformed and evaluated
  // ~660 of the SDK's modules here per project instead of Node loading the build `npm start` runs.
  environments: {
    __vitest__: { resolve: { conditions: ["node", "development|production"], mainFields: [] } },
  },
  test: {
    experimental: fsModuleCachePath ? { fsModuleCache: true, fsModuleCachePath } : {},
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // vitest's default is one worker per core but one (1 on this 2-core machine: every file in
    // turn). Most suites wait on the Python executor, the stack or a browser, not on the CPU, so
    // three files at a time finish sooner. CODING_ENV_TEST_WORKERS overrides it.
    maxWorkers: Number(process.env.CODING_ENV_TEST_WORKERS) || 3,
    // Project by project (a worker process keeps running files only within one), each project's
    // longest files first (test/longest-first.sequencer.ts).
    sequence: { sequencer: LongestFirstSequencer },
    // A worker runs its files one after another in one process (not a fresh process per file, which
    // re-imported vitest, the AWS SDK and aws-cdk-lib each time: 40% of the workers' CPU). The setup
    // file gives each file the repository's modules afresh and undoes its environment changes, so
    // files do not see each other's module state.
    isolate: false,
    setupFiles: ["test/helpers/file-isolation.setup.ts"],
    // The young generation the stack's processes get (package.json `start`): many files start a
    // stack, or a store, in their worker; a 16 MB one was scavenged often enough to cost 5-10% of
    // the workers' CPU (sdk/test, test/core and test/contract, 2026-12-02: 39-43 -> 37-38 CPU-s).
    execArgv: ["--max-semi-space-size=64"],
    projects: [
      {
        extends: true,
        test: {
          name: "self-contained",
          // Each file starts what it needs itself (dynalite, a runtime, a stack of its own) or nothing.
          include: ["functions/**/*.test.ts", "infra/**/*.test.ts", "test/**/*.test.ts"],
          exclude: [
            ...onSharedStack.filter((glob) => glob !== "test/api/**"),
            // test/api/ is on the shared stack but for the files that start stacks of their own
            // (the launcher, restarts, crashes, the stack's parts).
            "test/api/!(stack|stack-parts).test.ts",
            "**/node_modules/**",
          ],
          // The bundle tests' one shared synthesis with bundling (infra/test/synth.ts: bundledApp).
          globalSetup: ["infra/test/bundled-app.setup.ts"],
          env,
        },
      },
      {
        extends: true,
        test: {
          name: "stack",
          include: onSharedStack.map((glob) => (glob.endsWith("**") ? `${glob}/*.test.ts` : glob)),
          exclude: [
            ...onTwoInstances.filter((file) => file !== "test/api/episodes.test.ts"),
            "test/api/stack.test.ts",
            "test/api/stack-parts.test.ts",
          ],
          // test/global-setup.ts also builds the SDK (sdk/test/build.setup.ts) and launches the one
          // Chromium the browser suites share (test/web/chromium.ts), alongside the stack.
          globalSetup: ["test/global-setup.ts"],
          env,
        },
      },
      {
        extends: true,
        test: {
          name: "two-instances",
          include: onTwoInstances,
          globalSetup: ["test/api/two-instances.setup.ts"],
          env,
        },
      },
    ],
  },
});
