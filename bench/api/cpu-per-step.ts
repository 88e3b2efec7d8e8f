// CPU per trivial step (`POST /step print(1)`, sequential, one episode), robust to a loaded
// machine: wall time on shared cores says little, the CPU a process spent on N steps does not
// depend on how long it waited for a core. The stack runs in its own process (`npm start`'s entry
// point, in-memory dynalite on the API thread), so that process's CPU is the API's plus dynalite's,
// and its executor child's tree is the Python side's.
//
// A/B: `--baseline <checkout>` (e.g. `git archive <commit> | tar -x -C /tmp/base`, with a
// node_modules symlink) is measured in rounds interleaved with this checkout; the medians compare.
// `--cpu-prof <dir>` profiles this checkout's stack process (node --cpu-prof).
//
// Run: npx tsx bench/api/cpu-per-step.ts [--steps 2000] [--warmup 500] [--rounds 1] [--baseline DIR]...
import { readFileSync } from "node:fs";
import { basename, resolve } from "node:path";
import { parseArgs } from "node:util";
import {
  loadAverage,
  median,
  post,
  processTree,
  repoRoot,
  startStackProcess,
  stopProcess,
} from "./client.js";

const { values: args } = parseArgs({
  options: {
    steps: { type: "string", default: "2000" },
    warmup: { type: "string", default: "500" },
    rounds: { type: "string", default: "1" },
    baseline: { type: "string", multiple: true },
    "cpu-prof": { type: "string" },
  },
  // `npm run bench` may pass other benchmarks' options: ignore them.
  strict: false,
});
const STEPS = Number(args.steps);
const WARMUP = Number(args.warmup);
const ROUNDS = Number(args.rounds);

const clockTicksPerS = 100; // USER_HZ on Linux

/** CPU ms (user + system, all threads) of one process; its waited-for children included when asked. */
export function processCpuMs(pid: number, withReapedChildren: boolean): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(f[11]) + Number(f[12]) + (withReapedChildren ? Number(f[13]) + Number(f[14]) : 0);
    return (ticks * 1000) / clockTicksPerS;
  } catch {
    return 0;
  }
}

/** The stack process's own CPU (API + dynalite) and its children's trees (the executor). */
export function cpuSplit(pid: number): { api: number; executor: number } {
  const executor = processTree(pid)
    .filter((p) => p !== pid)
    .reduce((n, p) => n + processCpuMs(p, true), 0);
  return { api: processCpuMs(pid, false), executor };
}

export interface CpuPerStep {
  /** CPU ms per step of the API process (API + in-thread dynalite). */
  readonly apiMs: number;
  /** CPU ms per step of the executor process tree. */
  readonly executorMs: number;
}

/** Starts a stack from `root`, warms up, and measures CPU per step over `steps` sequential steps. */
export async function measureCpuPerStep(
  root: string,
  opts: { steps: number; warmup: number; nodeArgs?: string[] },
): Promise<CpuPerStep> {
  const { child, baseUrl } = await startStackProcess({ root, nodeArgs: opts.nodeArgs ?? [] });
  try {
    const reset = await post(baseUrl, "/reset", {});
    if (reset.status !== 200) throw new Error(`reset failed: ${reset.status} ${reset.body}`);
    const id = (JSON.parse(reset.body) as { episode_id: string }).episode_id;
    const step = async () => {
      const r = await post(baseUrl, "/step", { action: { code: "print(1)" }, episode_id: id });
      if (r.status !== 200) throw new Error(`step failed: ${r.status} ${r.body}`);
    };
    for (let i = 0; i < opts.warmup; i++) await step();
    const pid = child.pid as number;
    const before = cpuSplit(pid);
    for (let i = 0; i < opts.steps; i++) await step();
    const after = cpuSplit(pid);
    return {
      apiMs: (after.api - before.api) / opts.steps,
      executorMs: (after.executor - before.executor) / opts.steps,
    };
  } finally {
    await stopProcess(child);
  }
}

async function main(): Promise<void> {
  const variants: { name: string; root: string; nodeArgs: string[] }[] = [];
  // Each --baseline checkout is a variant, named by its folder.
  const baselines = Array.isArray(args.baseline)
    ? args.baseline.filter((b): b is string => typeof b === "string")
    : [];
  for (const b of baselines) variants.push({ name: basename(resolve(b)), root: resolve(b), nodeArgs: [] });
  const prof =
    typeof args["cpu-prof"] === "string" ? ["--cpu-prof", `--cpu-prof-dir=${resolve(args["cpu-prof"])}`] : [];
  variants.push({ name: "this checkout", root: repoRoot, nodeArgs: prof });
  const results = new Map<string, CpuPerStep[]>(variants.map((v) => [v.name, []]));
  const load0 = loadAverage()[0];
  for (let round = 1; round <= ROUNDS; round++) {
    // Alternate which variant goes first, so a trend in the machine's load favours neither.
    const order = round % 2 ? variants : [...variants].reverse();
    for (const v of order) {
      const r = await measureCpuPerStep(v.root, { steps: STEPS, warmup: WARMUP, nodeArgs: v.nodeArgs });
      results.get(v.name)?.push(r);
      console.log(
        `round ${round} ${v.name.padEnd(14)} API ${r.apiMs.toFixed(2)} ms CPU/step, executor ${r.executorMs.toFixed(2)} ms`,
      );
    }
  }
  console.log(
    `\nCPU per trivial step, median of ${ROUNDS} round(s) of ${STEPS} steps (after ${WARMUP} warm-up):`,
  );
  for (const v of variants) {
    const rs = results.get(v.name) ?? [];
    // The executor's code is the same in both variants: API/executor CPU cancels much of what a
    // loaded machine adds to both (cache and core contention inflate every CPU figure).
    console.log(
      `  ${v.name.padEnd(14)} API ${median(rs.map((r) => r.apiMs)).toFixed(2)} ms   executor ${median(rs.map((r) => r.executorMs)).toFixed(2)} ms   API/executor ${median(rs.map((r) => r.apiMs / r.executorMs)).toFixed(2)}`,
    );
  }
  console.log(`  load average ${load0.toFixed(1)} -> ${loadAverage()[0].toFixed(1)}`);
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
