// Runs only the tenancy tests, without the repository's global local stack:
//   npx vitest run --config test/tenancy/vitest.config.ts
// (`npm run test:ts` runs them too, with the root config.)
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

export default defineConfig({
  root: fileURLToPath(new URL("../..", import.meta.url)),
  test: {
    include: ["test/tenancy/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
