import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["functions/**/*.test.ts", "infra/**/*.test.ts", "sdk/test/**/*.test.ts", "test/**/*.test.ts"],
    // One real local stack (dynalite + Python executor + API) is started for the whole run.
    globalSetup: ["test/global-setup.ts"],
    // The AWS SDK warns once per process that its 2027 releases need Node 22 (we pin today's).
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true" },
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
