// `npm run bench`: every benchmark, one after another (they share two cores, so never in parallel).
// Each prints its own table and writes JSON under bench/results/. Extra arguments go to each one,
// e.g. `npm run bench -- --quick` is understood by the runtime benchmark only; pass a name to run one:
// `npm run bench -- runtime`, `npm run bench -- api` (with `s3-state`), `npm run bench -- sdk`,
// `OPENENV_SRC=<seed-era OpenEnv checkout> npm run bench -- reference`.
import { spawnSync } from "node:child_process";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const benches = {
  runtime: ["node", ["bench/runtime/run-bench.mjs"]],
  api: ["npx", ["tsx", "bench/api/run.ts"]],
  // Part of `api` (below): restore + save of 10 and 100 MiB of state through the local S3.
  "s3-state": ["npx", ["tsx", "bench/api/s3-state.ts"]],
  sdk: ["npm", ["run", "bench", "-w", "sdk"]],
  // Needs OPENENV_SRC (a seed-era OpenEnv checkout); says so and skips without it.
  reference: ["npx", ["tsx", "bench/api/reference.ts"]],
};
const wanted = process.argv.slice(2).filter((a) => a in benches);
const names = (wanted.length > 0 ? wanted : Object.keys(benches).filter((n) => n !== "s3-state")).flatMap(
  (n) => (n === "api" ? ["api", "s3-state"] : [n]),
);
let failed = 0;
for (const name of names) {
  const [cmd, args] = benches[name];
  console.log(`\n=== bench: ${name} ===`);
  const run = spawnSync(cmd, args, { cwd: repoRoot, stdio: "inherit" });
  if (run.status !== 0) {
    console.error(`bench ${name} failed (exit ${run.status ?? run.signal})`);
    failed += 1;
  }
}
process.exit(failed === 0 ? 0 : 1);
