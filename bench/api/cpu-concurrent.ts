// CPU per step under concurrency: N episodes (default 64) stepping `print(1)` at once against a
// local stack in its own process, as phase 3 of bench/api/run.ts does, with the CPU each process
// spent per step (from /proc, robust to a shared machine's load, unlike the steps/s figure):
// the API process (API + in-thread DynamoDB front; split into its main thread and the rest:
// libuv pool, GC helpers), the executor's server process (Invoke API, runtime parent), its zygotes
// and their workers (workers that exited count through their zygote), and this client process.
// 2 cores / (CPU per step of all of them) is the steps/s a quiet 2-core machine can reach.
//
// A/B: `--baseline <checkout>` rounds interleave with this checkout's (as cpu-per-step.ts).
// `--variant "name=<node args>|<ENV=value ...>"` adds this checkout with other node flags or
// settings (e.g. `"semi64=--max-semi-space-size=64"`, `"worker=|CODING_ENV_DYNAMODB_THREAD=worker"`).
// `--cpu-prof <dir>` profiles this checkout's stack process (node --cpu-prof). `--threads` also
// prints the CPU per step of each other thread of the API process (V8's GC helpers, a worker).
//
// Run: npx tsx bench/api/cpu-concurrent.ts [--episodes 64] [--steps 40] [--warmup 10] [--rounds 1]
import { readdirSync, readFileSync } from "node:fs";
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
    episodes: { type: "string", default: "64" },
    steps: { type: "string", default: "40" },
    warmup: { type: "string", default: "10" },
    rounds: { type: "string", default: "1" },
    baseline: { type: "string", multiple: true },
    "cpu-prof": { type: "string" },
    threads: { type: "boolean", default: false },
    // Settings of every variant's stack: `--env NAME=value` (repeatable).
    env: { type: "string", multiple: true },
    variant: { type: "string", multiple: true },
  },
  strict: false,
});
const EPISODES = Number(args.episodes);
/** Steps per episode measured (after the warm-up steps of each). */
const STEPS = Number(args.steps);
const WARMUP = Number(args.warmup);
const ROUNDS = Number(args.rounds);

const clockTicksPerS = 100; // USER_HZ on Linux

interface Stat {
  readonly ppid: number;
  readonly ownMs: number;
  readonly reapedMs: number;
}

function stat(path: string): Stat | undefined {
  try {
    const s = readFileSync(path, "utf8");
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    const tick = 1000 / clockTicksPerS;
    return {
      ppid: Number(f[1]),
      ownMs: (Number(f[11]) + Number(f[12])) * tick,
      reapedMs: (Number(f[13]) + Number(f[14])) * tick,
    };
  } catch {
    return undefined;
  }
}

/** CPU ms so far of each part of the stack; a part's figure includes its reaped children's. */
type Parts = Record<string, number>;

function partsOf(stackPid: number): Parts {
  const parts: Parts = { apiMain: 0, apiOther: 0, server: 0, zygotes: 0, workers: 0 };
  const depth = new Map<number, number>([[stackPid, 0]]);
  const tree = processTree(stackPid);
  const stats = new Map(tree.map((p) => [p, stat(`/proc/${p}/stat`)]));
  const depthOf = (p: number): number => {
    const known = depth.get(p);
    if (known !== undefined) return known;
    const parent = stats.get(p)?.ppid;
    const d = parent === undefined || !stats.has(parent) ? 99 : depthOf(parent) + 1;
    depth.set(p, d);
    return d;
  };
  for (const [pid, s] of stats) {
    if (!s) continue;
    const d = depthOf(pid);
    if (d === 0) {
      // The API process's threads: its main thread (task id = pid) and the others.
      let main = 0;
      for (const t of readdirSync(`/proc/${pid}/task`)) {
        const ts = stat(`/proc/${pid}/task/${t}/stat`);
        if (!ts) continue;
        if (Number(t) === pid) main = ts.ownMs;
      }
      parts.apiMain = main;
      // The process's own figure: it still counts threads that exited between the readings.
      parts.apiOther = s.ownMs - main;
      if (args.threads === true) {
        for (const t of readdirSync(`/proc/${pid}/task`)) {
          const ts = stat(`/proc/${pid}/task/${t}/stat`);
          const comm = `${readFileSync(`/proc/${pid}/task/${t}/comm`, "utf8").trim()}#${Number(t) - pid}`;
          if (ts && Number(t) !== pid) parts[`t:${comm}`] = (parts[`t:${comm}`] ?? 0) + ts.ownMs;
        }
      }
      // Its reaped children: none but the executor's short-lived helpers.
      parts.server = (parts.server ?? 0) + s.reapedMs;
    } else if (d === 1) parts.server = (parts.server ?? 0) + s.ownMs + s.reapedMs;
    else if (d === 2) {
      parts.zygotes = (parts.zygotes ?? 0) + s.ownMs;
      parts.workers = (parts.workers ?? 0) + s.reapedMs;
    } else parts.workers = (parts.workers ?? 0) + s.ownMs + s.reapedMs;
  }
  // The server's own figure above includes its reaped zygotes (rare); close enough.
  return parts;
}

function clientMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

interface Result {
  readonly perStep: Parts;
  readonly stepsPerS: number;
  readonly errors: number;
}

async function measure(root: string, nodeArgs: string[], env: Record<string, string>): Promise<Result> {
  const { child, baseUrl } = await startStackProcess({ root, nodeArgs, env });
  try {
    const ids = await Promise.all(
      Array.from({ length: EPISODES }, async () => {
        const r = await post(baseUrl, "/reset", {});
        if (r.status !== 200) throw new Error(`reset failed: ${r.status} ${r.body}`);
        return (JSON.parse(r.body) as { episode_id: string }).episode_id;
      }),
    );
    let errors = 0;
    const sample: string[] = [];
    // As run.ts phase 3: each episode's state changes on every step.
    const run = (steps: number) =>
      Promise.all(
        ids.map(async (id, i) => {
          for (let n = 0; n < steps; n++) {
            const r = await post(baseUrl, "/step", {
              action: { code: `x${i} = ${n}\nprint(x${i})` },
              episode_id: id,
            });
            if (r.status !== 200) {
              errors++;
              if (sample.length < 3) sample.push(`${r.status} ${r.body.slice(0, 200)}`);
            }
          }
        }),
      );
    await run(WARMUP);
    const pid = child.pid as number;
    const before = partsOf(pid);
    const c0 = clientMs();
    const t0 = performance.now();
    errors = 0;
    await run(STEPS);
    const seconds = (performance.now() - t0) / 1000;
    const after = partsOf(pid);
    const steps = EPISODES * STEPS;
    const perStep: Parts = {};
    for (const k of Object.keys(after)) perStep[k] = ((after[k] ?? 0) - (before[k] ?? 0)) / steps;
    perStep.client = (clientMs() - c0) / steps;
    for (const s of sample) console.error(`  error sample: ${s}`);
    return { perStep, stepsPerS: steps / seconds, errors };
  } finally {
    await stopProcess(child);
  }
}

const stackMs = (p: Parts) =>
  (p.apiMain ?? 0) + (p.apiOther ?? 0) + (p.server ?? 0) + (p.zygotes ?? 0) + (p.workers ?? 0);

function line(name: string, p: Parts, extra: string): string {
  const f = (k: string) => (p[k] ?? 0).toFixed(2);
  return `${name.padEnd(14)} stack ${stackMs(p).toFixed(2)} ms/step = API ${f("apiMain")} + ${f("apiOther")} (other threads), executor server ${f("server")}, zygotes ${f("zygotes")}, workers ${f("workers")}; client ${f("client")}${extra}${Object.keys(
    p,
  )
    .filter((k) => k.startsWith("t:"))
    .map((k) => `\n    ${k.slice(2)} ${f(k)}`)
    .join("")}`;
}

async function main(): Promise<void> {
  const extraEnv: Record<string, string> = {};
  for (const e of Array.isArray(args.env) ? args.env : []) {
    if (typeof e !== "string") continue;
    const i = e.indexOf("=");
    if (i > 0) extraEnv[e.slice(0, i)] = e.slice(i + 1);
  }
  const variants: { name: string; root: string; nodeArgs: string[]; env: Record<string, string> }[] = [];
  const baselines = Array.isArray(args.baseline)
    ? args.baseline.filter((b): b is string => typeof b === "string")
    : [];
  for (const b of baselines)
    variants.push({ name: basename(resolve(b)), root: resolve(b), nodeArgs: [], env: extraEnv });
  const prof =
    typeof args["cpu-prof"] === "string" ? ["--cpu-prof", `--cpu-prof-dir=${resolve(args["cpu-prof"])}`] : [];
  variants.push({ name: "this checkout", root: repoRoot, nodeArgs: prof, env: extraEnv });
  for (const spec of Array.isArray(args.variant) ? args.variant : []) {
    if (typeof spec !== "string") continue;
    const eq = spec.indexOf("=");
    const [nodePart = "", envPart = ""] = spec.slice(eq + 1).split("|");
    const env: Record<string, string> = { ...extraEnv };
    for (const kv of envPart.split(" ").filter(Boolean)) {
      const i = kv.indexOf("=");
      env[kv.slice(0, i)] = kv.slice(i + 1);
    }
    variants.push({
      name: spec.slice(0, eq),
      root: repoRoot,
      nodeArgs: nodePart.split(" ").filter(Boolean),
      env,
    });
  }
  const results = new Map<string, Result[]>(variants.map((v) => [v.name, []]));
  const load0 = loadAverage()[0];
  for (let round = 1; round <= ROUNDS; round++) {
    const order = round % 2 ? variants : [...variants].reverse();
    for (const v of order) {
      const r = await measure(v.root, v.nodeArgs, v.env);
      results.get(v.name)?.push(r);
      console.log(
        line(
          `round ${round} ${v.name}`,
          r.perStep,
          `; ${r.stepsPerS.toFixed(0)} steps/s wall, ${r.errors} errors, load ${loadAverage()[0].toFixed(1)}`,
        ),
      );
    }
  }
  console.log(
    `\nCPU per step, ${EPISODES} episodes at once, median of ${ROUNDS} round(s) of ${STEPS} steps each (after ${WARMUP}):`,
  );
  for (const v of variants) {
    const rs = results.get(v.name) ?? [];
    const keys = Object.keys(rs[0]?.perStep ?? {});
    const med: Parts = {};
    for (const k of keys) med[k] = median(rs.map((r) => r.perStep[k] ?? 0));
    const total = median(rs.map((r) => stackMs(r.perStep)));
    console.log(
      line(v.name, med, `; 2 cores / ${total.toFixed(2)} ms = ${(2000 / total).toFixed(0)} steps/s`),
    );
  }
  console.log(`load average ${load0.toFixed(1)} -> ${loadAverage()[0].toFixed(1)}`);
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
