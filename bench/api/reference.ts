// coding-env against the seed-era OpenEnv coding_env server, side by side in one run.
//
// The reference is OpenEnv's own FastAPI server (stateful HTTP /reset, /step, /state; one session,
// in-process, not durable), run from a checkout with Debian's python3 (apt-get install
// python3-fastapi python3-uvicorn python3-pydantic). Its source is never copied here: OPENENV_SRC
// names a checkout whose src/ holds the seed-era layout (src/core/env_server/http_server.py,
// src/envs/coding_env/server/app.py), e.g. from a clone of github.com/meta-pytorch/OpenEnv:
//   git -C OpenEnv archive d6036ada src | tar -x -C /tmp/openenv-seed && OPENENV_SRC=/tmp/openenv-seed
// (the current OpenEnv serves coding_env over WebSocket only; d6036ada is the last seed-era HTTP one).
// smolagents is not in Debian: when it cannot be imported, bench/api/reference/smolagents.py stands
// in (plain exec, strictly cheaper than smolagents' interpreter: our ratio is conservative).
//
// Both servers get the same client (one keep-alive connection, sequential POST /step print(1)),
// interleaved in rounds so a busy moment of the machine hits both alike. coding-env runs as
// `npm start` does, durable: LevelDB files in a temporary data folder (--memory: in memory).
// Reports p50/p99 of each, the ratios against the targets (p50 <= 3x, p99 <= 5x), each server's CPU
// time per step (its process tree) and the load average. Without a reference source it says so and
// exits 0. Writes bench/results/reference-<timestamp>.json.
//
// Run: OPENENV_SRC=<checkout> npx tsx bench/api/reference.ts [--rounds 20] [--per-round 100] [--memory]
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import {
  agent,
  loadAverage,
  percentile,
  post,
  repoRoot,
  send,
  startStackProcess,
  stopProcess,
  treeCpuMs,
} from "./client.js";

const { values: args } = parseArgs({
  options: {
    rounds: { type: "string", default: "20" },
    "per-round": { type: "string", default: "100" },
    memory: { type: "boolean", default: false },
    quick: { type: "boolean", default: false },
  },
  strict: false,
});
const ROUNDS = args.quick === true ? 6 : Number(args.rounds);
const PER_ROUND = Number(args["per-round"]);
const python = process.env.OPENENV_PYTHON ?? "/usr/bin/python3";
const TARGET_P50_RATIO = 3;
const TARGET_P99_RATIO = 5;

function skip(why: string): never {
  console.log(`reference benchmark skipped: ${why}`);
  process.exit(0);
}

const source = process.env.OPENENV_SRC;
if (!source) skip("OPENENV_SRC is not set (a seed-era OpenEnv checkout; see bench/api/reference.ts)");
const srcDir = resolve(source, "src");
if (
  !existsSync(join(srcDir, "envs/coding_env/server/app.py")) ||
  !existsSync(join(srcDir, "core/env_server/http_server.py"))
) {
  skip(
    `${source} has no seed-era coding_env (src/envs/coding_env/server/app.py and src/core/env_server/http_server.py); ` +
      "the current OpenEnv is WebSocket-only: use `git archive d6036ada src` of a clone",
  );
}
const importCheck = spawnSync(python, ["-c", "import fastapi, uvicorn, pydantic"], { encoding: "utf8" });
if (importCheck.status !== 0) {
  skip(
    `${python} cannot import fastapi/uvicorn/pydantic (apt-get install python3-fastapi python3-uvicorn python3-pydantic)`,
  );
}
const hasSmolagents = spawnSync(python, ["-c", "import smolagents"]).status === 0;

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once("error", rej);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => res(typeof addr === "object" && addr ? addr.port : 0));
    });
  });
}

async function startReference(): Promise<{ child: ChildProcess; baseUrl: string }> {
  const port = await freePort();
  const pythonPath = [srcDir, ...(hasSmolagents ? [] : [join(repoRoot, "bench/api/reference")])].join(":");
  const child = spawn(
    python,
    [
      "-m",
      "uvicorn",
      "envs.coding_env.server.app:app",
      "--host",
      "127.0.0.1",
      "--port",
      String(port),
      "--log-level",
      "warning",
    ],
    { cwd: srcDir, env: { ...process.env, PYTHONPATH: pythonPath }, stdio: ["ignore", "inherit", "inherit"] },
  );
  const baseUrl = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`reference server exited (code ${child.exitCode})`);
    try {
      const r = await send("GET", baseUrl, "/health");
      if (r.status === 200) return { child, baseUrl };
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) throw new Error("reference server did not answer /health within 30 s");
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface Side {
  name: string;
  baseUrl: string;
  pid: number;
  body: unknown;
  times: number[];
  cpuMs: number;
}

async function stepOnce(side: Side): Promise<number> {
  const t0 = performance.now();
  const r = await post(side.baseUrl, "/step", side.body);
  const dt = performance.now() - t0;
  if (r.status !== 200) throw new Error(`${side.name} step failed: ${r.status} ${r.body.slice(0, 300)}`);
  const out = JSON.parse(r.body) as { observation?: { stdout?: string } };
  if (out.observation?.stdout !== "1\n")
    throw new Error(`${side.name} step printed ${JSON.stringify(out.observation)}`);
  return dt;
}

async function runRound(side: Side): Promise<void> {
  const cpu0 = treeCpuMs(side.pid);
  for (let i = 0; i < PER_ROUND; i++) side.times.push(await stepOnce(side));
  side.cpuMs += treeCpuMs(side.pid) - cpu0;
}

function summary(side: Side) {
  const sorted = [...side.times].sort((a, b) => a - b);
  return {
    p50_ms: +percentile(sorted, 50).toFixed(3),
    p99_ms: +percentile(sorted, 99).toFixed(3),
    mean_ms: +(sorted.reduce((a, b) => a + b, 0) / sorted.length).toFixed(3),
    max_ms: +(sorted[sorted.length - 1] as number).toFixed(3),
    over_20ms: sorted.filter((t) => t > 20).length,
    n: sorted.length,
    cpu_ms_per_step: +(side.cpuMs / sorted.length).toFixed(3),
  };
}

const dataDir = args.memory === true ? null : mkdtempSync(join(tmpdir(), "coding-env-bench-"));
const ref = await startReference();
let ours: { child: ChildProcess; baseUrl: string } | undefined;
try {
  ours = await startStackProcess({ dataDir });
  const resetRef = await post(ref.baseUrl, "/reset", {});
  if (resetRef.status !== 200) throw new Error(`reference reset failed: ${resetRef.status}`);
  const resetOurs = await post(ours.baseUrl, "/reset", {});
  if (resetOurs.status !== 200)
    throw new Error(`coding-env reset failed: ${resetOurs.status} ${resetOurs.body}`);
  const episodeId = (JSON.parse(resetOurs.body) as { episode_id: string }).episode_id;
  const sides: Side[] = [
    {
      name: "OpenEnv reference",
      baseUrl: ref.baseUrl,
      pid: ref.child.pid as number,
      body: { action: { code: "print(1)" } },
      times: [],
      cpuMs: 0,
    },
    {
      name: "coding-env",
      baseUrl: ours.baseUrl,
      pid: ours.child.pid as number,
      body: { action: { code: "print(1)" }, episode_id: episodeId },
      times: [],
      cpuMs: 0,
    },
  ];
  // Warm-up: connections, JIT, the warm worker.
  for (const side of sides) for (let i = 0; i < 200; i++) await stepOnce(side);
  const loadBefore = loadAverage();
  for (let round = 0; round < ROUNDS; round++) {
    // Alternate who goes first so neither always follows the other's GC or flush.
    const order = round % 2 === 0 ? sides : [...sides].reverse();
    for (const side of order) await runRound(side);
  }
  const loadAfter = loadAverage();
  const [refSide, oursSide] = sides as [Side, Side];
  const r = summary(refSide);
  const o = summary(oursSide);
  const result = {
    date: new Date().toISOString(),
    machine: { cpus: (await import("node:os")).cpus().length, node: process.version },
    load_average_before: loadBefore,
    load_average_after: loadAfter,
    steps_each: o.n,
    rounds: ROUNDS,
    reference: {
      ...r,
      source: resolve(source),
      smolagents: hasSmolagents ? "real" : "stand-in (plain exec)",
    },
    coding_env: { ...o, storage: dataDir === null ? "in memory" : "LevelDB files (durable)" },
    ratio: {
      p50: +(o.p50_ms / r.p50_ms).toFixed(2),
      p99: +(o.p99_ms / r.p99_ms).toFixed(2),
      cpu_per_step: +(o.cpu_ms_per_step / r.cpu_ms_per_step).toFixed(2),
    },
    targets: { p50_ratio: TARGET_P50_RATIO, p99_ratio: TARGET_P99_RATIO },
  };
  console.log(`\ncoding-env vs OpenEnv reference, POST /step print(1), ${o.n} steps each, interleaved`);
  const row = (what: string, a: string, b: string, c: string) =>
    console.log(`  ${what.padEnd(22)} ${a.padEnd(20)} ${b.padEnd(20)} ${c}`);
  row("", "reference", "coding-env", "ratio (target)");
  row("p50", `${r.p50_ms} ms`, `${o.p50_ms} ms`, `${result.ratio.p50}x (<= ${TARGET_P50_RATIO}x)`);
  row("p99", `${r.p99_ms} ms`, `${o.p99_ms} ms`, `${result.ratio.p99}x (<= ${TARGET_P99_RATIO}x)`);
  row("mean / max", `${r.mean_ms} / ${r.max_ms} ms`, `${o.mean_ms} / ${o.max_ms} ms`, "");
  row("steps > 20 ms", `${r.over_20ms}`, `${o.over_20ms}`, "");
  row("CPU per step", `${r.cpu_ms_per_step} ms`, `${o.cpu_ms_per_step} ms`, `${result.ratio.cpu_per_step}x`);
  console.log(
    `  reference smolagents: ${result.reference.smolagents}; coding-env storage: ${result.coding_env.storage}`,
  );
  console.log(`  load average ${loadBefore.join(" ")} before, ${loadAfter.join(" ")} after`);
  const dir = join(repoRoot, "bench", "results");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `reference-${result.date.replace(/[:.]/g, "-")}.json`);
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`  written ${file}`);
} finally {
  if (ours) await stopProcess(ours.child);
  await stopProcess(ref.child, "SIGTERM");
  agent.destroy();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
}
