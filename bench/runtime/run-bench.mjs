// Runs the Python runtime benchmark with the resolved interpreter (`--quick` for fewer rounds).
// Prints a table and writes bench/results/runtime-<timestamp>.json.
import { spawnSync } from "node:child_process";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { resolvePython } from "../../scripts/python.mjs";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const python = await resolvePython();
const run = spawnSync(python, ["bench/runtime/bench_runtime.py", ...process.argv.slice(2)], {
  cwd: repoRoot,
  stdio: "inherit",
});
process.exit(run.status ?? 1);
