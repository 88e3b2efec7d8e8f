// Large state through the local S3 (issue 13 point 3): restore + save of a numpy array of 10 MiB
// and 100 MiB, as a step on another executor instance sees it (no warm worker, no cached copy):
// the executor's parent downloads the state object from a pre-signed GET URL, a fresh worker
// restores it, the cell changes the array, the new state is pickled, compressed and uploaded to a
// pre-signed PUT URL. Target: 100 MiB restore + save under 2 s on the dev machine.
// Also the warm case (the executor holds the state it wrote: no download, no restore).
// Real parts: the local S3 server (s3rver on a temporary folder), the local executor.
// Prints a table and writes bench/results/s3-state-<timestamp>.json.
//
// The restore + save step's CPU seconds are reported too: the executor's process tree (runtime and
// worker, from /proc) and this process (the local S3 server and the clients), steadier than wall
// time on a loaded machine.
// Run: npx tsx bench/api/s3-state.ts [--rounds 3] [--data random|arange] (also part of
// `npm run bench -- api`). The largest Invoke request + reply is reported too: it never holds the state.
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { InvokeCommand, LambdaClient } from "@aws-sdk/client-lambda";
import { MAX_STATE_BYTES_IN_S3 } from "../../functions/src/config.js";
import type { StateObjectRef } from "../../functions/src/core/episode-repository.js";
import { startExecutor, stopExecutor } from "../../functions/src/local/executor-process.js";
import { startLocalS3 } from "../../functions/src/local/s3-server.js";
import { createStateS3Client, S3StateStore } from "../../functions/src/store/s3-state.js";
import { S3_INLINE_MAX_BYTES } from "../../functions/src/store/s3-state-items.js";

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const { values: args } = parseArgs({
  options: { rounds: { type: "string", default: "3" }, data: { type: "string", default: "random" } },
});
const rounds = Number(args.rounds);
const MiB = 1024 * 1024;
const credentials = {
  accessKeyId: randomBytes(16).toString("hex"),
  secretAccessKey: randomBytes(30).toString("hex"),
};
const dir = mkdtempSync(join(tmpdir(), "coding-env-s3-bench-"));
const s3 = await startLocalS3({ directory: dir, bucket: "bench", credentials });
const client = createStateS3Client({ region: "us-east-1", endpoint: s3.endpoint, credentials });
const store = new S3StateStore({ client, bucket: "bench" });
const executor = await startExecutor({
  repoRoot,
  mode: "local",
  log: false,
  maxWarmWorkers: 4,
  accessKeyId: credentials.accessKeyId,
});
const lambda = new LambdaClient({
  region: "us-east-1",
  endpoint: executor.endpoint,
  credentials,
  maxAttempts: 1,
});

async function invoke(event: Record<string, unknown>): Promise<Record<string, unknown>> {
  const out = await lambda.send(
    new InvokeCommand({ FunctionName: "coding-env-executor", Payload: Buffer.from(JSON.stringify(event)) }),
  );
  const text = Buffer.from(out.Payload ?? new Uint8Array()).toString("utf8");
  if (out.FunctionError) throw new Error(text.slice(0, 500));
  return JSON.parse(text) as Record<string, unknown>;
}

/** CPU seconds (user + system) of the executor's process tree: its runtime, zygotes and workers,
 * live or reaped (a worker's CPU counts from its fork). Linux /proc; 0 elsewhere. */
function executorCpuSeconds(): number {
  const root = executor.child.pid;
  if (root === undefined) return 0;
  const procs = new Map<number, { ppid: number; ticks: number }>();
  let names: string[] = [];
  try {
    names = readdirSync("/proc");
  } catch {
    return 0;
  }
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const fields = readFileSync(`/proc/${name}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
      // utime + stime, and cutime + cstime: a worker or zygote that ended (its CPU moved to
      // whoever reaped it) still counts, so the sum never goes down between two readings.
      const own = Number(fields[11]) + Number(fields[12]);
      const reaped = Number(fields[13]) + Number(fields[14]);
      procs.set(Number(name), { ppid: Number(fields[1]), ticks: own + reaped });
    } catch {
      // gone meanwhile
    }
  }
  let ticks = procs.get(root)?.ticks ?? 0;
  const pending = [root];
  while (pending.length > 0) {
    const parent = pending.pop();
    for (const [pid, p] of procs) {
      if (p.ppid !== parent) continue;
      ticks += p.ticks;
      pending.push(pid);
    }
  }
  return ticks / 100; // USER_HZ
}

/** CPU seconds of this process (the local S3 server and the clients run here). */
function benchCpuSeconds(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

async function step(episodeId: string, version: number, code: string, input: StateObjectRef | null) {
  const state = await store.stateUrls({
    tenantId: "bench",
    episodeId,
    incarnation: "i",
    version: version + 1,
    input,
    inlineMaxBytes: S3_INLINE_MAX_BYTES,
    maxBytes: MAX_STATE_BYTES_IN_S3,
  });
  const started = performance.now();
  const executorCpu = executorCpuSeconds();
  const benchCpu = benchCpuSeconds();
  const reply = await invoke({
    contract_version: 1,
    tenant_id: "bench",
    episode_id: episodeId,
    incarnation: "i",
    state_version: version,
    code,
    policy: { mode: "full" },
    limits: { timeout_ms: 120_000, memory_mb: 2048 },
    state,
  });
  if (reply.exit_code !== 0) throw new Error(String(reply.stderr));
  if (reply.state_location !== "put") throw new Error(`state ${String(reply.state_location)}, expected put`);
  const ref: StateObjectRef = {
    key: state.put_ref,
    bytes: Number(reply.state_bytes),
    sha256: String(reply.state_sha256),
    createdAtMs: Date.now(),
  };
  return {
    ms: performance.now() - started,
    executorCpuS: executorCpuSeconds() - executorCpu,
    s3CpuS: benchCpuSeconds() - benchCpu,
    reply,
    ref,
    payloadBytes: payloadBytes(state, reply),
  };
}

/** Bytes of the Invoke request and reply (the state never rides in them). */
function payloadBytes(state: unknown, reply: Record<string, unknown>): number {
  return Buffer.byteLength(JSON.stringify({ state })) + Buffer.byteLength(JSON.stringify(reply));
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
const rows: Array<Record<string, unknown>> = [];
const loadBefore = loadavg().map((x) => Number(x.toFixed(2)));
try {
  for (const mib of [10, 100]) {
    const make =
      args.data === "arange"
        ? `big = np.arange(${mib} * ${MiB} // 8, dtype=np.int64)`
        : `big = np.frombuffer(np.random.default_rng(1).bytes(${mib} * ${MiB}), dtype=np.uint8).copy()`;
    const cold: number[] = [];
    const warm: number[] = [];
    const coldExecutorCpu: number[] = [];
    const coldS3Cpu: number[] = [];
    let objectBytes = 0;
    let payload = 0;
    for (let round = 0; round < rounds; round++) {
      const episode = `ep_${mib}_${round}`;
      const first = await step(episode, 0, `import numpy as np\n${make}`, null);
      // Another executor's view: no warm worker and no cached copy of the state.
      await invoke({ contract_version: 1, op: "discard", tenant_id: "bench", episode_id: episode });
      const restored = await step(episode, 1, "big[0] += 1", first.ref);
      cold.push(restored.ms);
      coldExecutorCpu.push(restored.executorCpuS);
      coldS3Cpu.push(restored.s3CpuS);
      objectBytes = restored.ref.bytes;
      payload = Math.max(payload, restored.payloadBytes);
      const again = await step(episode, 2, "big[0] += 1", restored.ref);
      if (again.reply.warm !== true) throw new Error("expected the warm worker");
      warm.push(again.ms);
      await store.deleteEpisode("bench", episode);
    }
    rows.push({
      state_mib: mib,
      data: args.data,
      object_mib: Number((objectBytes / MiB).toFixed(1)),
      restore_save_ms_p50: Math.round(median(cold)),
      // CPU of the restore + save step: the executor (runtime, worker) and this process (local S3).
      executor_cpu_s_p50: Number(median(coldExecutorCpu).toFixed(2)),
      s3_cpu_s_p50: Number(median(coldS3Cpu).toFixed(2)),
      warm_save_ms_p50: Math.round(median(warm)),
      invoke_payload_bytes_max: payload,
      rounds,
    });
  }
} finally {
  await stopExecutor(executor);
  await s3.close();
  client.destroy();
  lambda.destroy();
  rmSync(dir, { recursive: true, force: true });
}
console.table(rows);
const loadAfter = loadavg().map((x) => Number(x.toFixed(2)));
console.log(`load average ${loadBefore.join(" ")} before, ${loadAfter.join(" ")} after`);
const out = join(
  repoRoot,
  "bench",
  "results",
  `s3-state-${new Date().toISOString().replace(/[:.]/g, "-")}.json`,
);
mkdirSync(dirname(out), { recursive: true });
writeFileSync(
  out,
  `${JSON.stringify({ rows, load_average: { before: loadBefore, after: loadAfter }, target: "100 MiB restore + save under 2000 ms" }, null, 2)}\n`,
);
console.log(`wrote ${out}`);
