// Runs the Python runtime's unittest suite with the resolved interpreter; exits with its status.
// Extra arguments go to unittest (e.g. `node scripts/run-python-tests.mjs -k timeout`).
import { spawnSync } from "node:child_process";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { resolvePython } from "./python.mjs";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");

let python;
try {
  python = await resolvePython();
} catch (error) {
  console.error(`coding-env: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}
const run = spawnSync(
  python,
  [
    "-m",
    "unittest",
    "discover",
    "-s",
    "python-runtime/tests",
    "-t",
    "python-runtime",
    ...process.argv.slice(2),
  ],
  { cwd: repoRoot, stdio: "inherit" },
);
process.exit(run.status ?? 1);
