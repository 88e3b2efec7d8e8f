// The episode and retry suites with N=2 API instances (see two-instances.setup.ts).
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

export default defineConfig({
  root: fileURLToPath(new URL("../..", import.meta.url)),
  test: {
    include: ["test/api/episodes.test.ts", "test/api/concurrency.test.ts", "test/api/two-instances.test.ts"],
    globalSetup: ["test/api/two-instances.setup.ts"],
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true" },
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
