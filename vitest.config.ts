import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["functions/**/*.test.ts", "infra/**/*.test.ts", "sdk/test/**/*.test.ts", "test/**/*.test.ts"],
    // One real local stack (dynalite + Python executor + API) is started for the whole run.
    globalSetup: ["test/global-setup.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
