import { defineConfig } from "vitest/config";
export default defineConfig({
  root: "/work/main",
  test: { include: ["infra/**/*.test.ts"], testTimeout: 120_000 },
});
