// Fair sharing benchmark (issue 10 point 7): tenant B's step latency while tenant A floods the API,
// against B's latency without the flood in the same run. Target: B's p50 and p99 under the flood
// within 2x of its p50 and p99 without it.
//   1. a local stack with keys on, in this process; one key per tenant;
//   2. rounds of two phases, interleaved so a busy machine weighs on both alike:
//      - normal: B's sequential POST /step `print(1)` on one episode, A idle;
//      - flood: A steps from a separate process (its own event loop and connections): hundreds of
//        loops on one episode (answered 409: one step at a time) and a few on each of many episodes
//        (beyond its share waiting in A's own queue, then 429), each loop starting its next step
//        at once; B steps the same way as in the normal phase;
//   3. B's p50/p99 of all normal phases and of all flood phases, their ratios, and A's throughput
//      (answers by status per second of flood).
// A's cells sleep (`time.sleep(0.2)`: they hold executor workers, not CPU); `--cpu` makes them spin
// for 0.2 s instead. By default A's loops wait the Retry-After of a refusal, as the SDK does;
// `--aggressive` makes them retry at once (a request-rate flood, which API Gateway's stage
// throttling absorbs in AWS).
// Prints a table and writes bench/results/fairness-<timestamp>.json.
//
// Run: npx tsx bench/api/fairness.ts [--rounds 3] [--steps 100] [--hammer 200] [--episodes 60]
//      [--per-episode 2] [--instances 1] [--cpu] [--aggressive] [--quick]
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { type LocalStack, startLocalStack } from "../../functions/src/local/stack.js";
import { dynamoDbApiKeyStore } from "../../functions/src/store/dynamodb-api-keys.js";
import { loadAverage, percentile, repoRoot } from "./client.js";

const { values: args } = parseArgs({
  options: {
    rounds: { type: "string", default: "3" },
    steps: { type: "string", default: "100" },
    hammer: { type: "string", default: "200" },
    episodes: { type: "string", default: "60" },
    "per-episode": { type: "string", default: "2" },
    instances: { type: "string", default: "1" },
    cpu: { type: "boolean", default: false },
    aggressive: { type: "boolean", default: false },
    quick: { type: "boolean", default: false },
  },
  // `npm run bench` may pass other benchmarks' options: ignore them.
  strict: false,
});
const quick = args.quick === true;
const ROUNDS = quick ? 2 : Number(args.rounds);
/** B's steps per phase. */
const STEPS = quick ? 50 : Number(args.steps);
const HAMMER = Number(args.hammer);
const EPISODES = quick ? 30 : Number(args.episodes);
const PER_EPISODE = Number(args["per-episode"]);
const INSTANCES = Number(args.instances);
const AGGRESSIVE = args.aggressive === true;
const FLOOD_CODE =
  args.cpu === true
    ? "import time\nt = time.monotonic()\nwhile time.monotonic() - t < 0.2:\n    pass\nprint(1)"
    : "import time\ntime.sleep(0.2)\nprint(1)";

const agent = new Agent({ keepAlive: true, maxSockets: 16 });

function post(
  baseUrl: string,
  key: string,
  path: string,
  body: unknown,
): Promise<{ status: number; body: string }> {
  const data = JSON.stringify(body);
  return new Promise((res, rej) => {
    const req = request(
      `${baseUrl}${path}`,
      {
        method: "POST",
        agent,
        headers: {
          "content-type": "application/json",
          "content-length": Buffer.byteLength(data),
          authorization: `Bearer ${key}`,
        },
      },
      (resp) => {
        const chunks: Buffer[] = [];
        resp.on("data", (c: Buffer) => chunks.push(c));
        resp.on("end", () =>
          res({ status: resp.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }),
        );
      },
    );
    req.on("error", rej);
    req.end(data);
  });
}

async function reset(baseUrl: string, key: string): Promise<string> {
  const r = await post(baseUrl, key, "/reset", {});
  if (r.status !== 200) throw new Error(`reset failed: ${r.status} ${r.body}`);
  return (JSON.parse(r.body) as { episode_id: string }).episode_id;
}

interface Latency {
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
  n: number;
  failed: number;
}

/** What a phase of B's steps measured. */
interface PhaseTimes {
  /** Each step's wall time, ms. */
  readonly total: number[];
  /** Each step's time in its worker as the executor measured it (`info.duration_ms`), ms. */
  readonly executor: number[];
  failed: number;
}

/** B's sequential steps: the time of each, and how many did not answer 200. */
async function victimSteps(baseUrl: string, key: string, episodeId: string, into: PhaseTimes): Promise<void> {
  const body = { action: { code: "print(1)" }, episode_id: episodeId };
  for (let i = 0; i < STEPS; i++) {
    const t0 = performance.now();
    const r = await post(baseUrl, key, "/step", body);
    into.total.push(performance.now() - t0);
    if (r.status !== 200) {
      into.failed++;
      continue;
    }
    const info = (JSON.parse(r.body) as { info?: { duration_ms?: number } }).info;
    if (typeof info?.duration_ms === "number") into.executor.push(info.duration_ms);
  }
}

function summary(times: number[], failed: number): Latency {
  const sorted = [...times].sort((a, b) => a - b);
  return {
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    max: sorted.at(-1) ?? Number.NaN,
    mean: sorted.reduce((a, b) => a + b, 0) / sorted.length,
    n: sorted.length,
    failed,
  };
}

/**
 * The flood: a plain Node process stepping while told to. Its stdin takes `run` and `pause`; after
 * `pause` it answers `paused` once none of its requests is in flight. Closing stdin ends it with a
 * summary line: answers by status (and error code) while running, and the seconds it ran.
 */
const FLOOD_SCRIPT = `
const { baseUrl, key, hammered, spread, hammer, perEpisode, code, aggressive } = JSON.parse(process.env.FLOOD);
let running = false;
let stop = false;
let inFlight = 0;
let wake = [];
let pausing = false;
let ranMs = 0;
let runSince = 0;
const counts = {};
let sent = 0;
const lines = (await import("node:readline")).createInterface({ input: process.stdin });
function idleCheck() {
  if (pausing && inFlight === 0) { pausing = false; process.stdout.write("paused\\n"); }
}
lines.on("line", (line) => {
  if (line === "run") { running = true; runSince = performance.now(); for (const w of wake.splice(0)) w(); }
  if (line === "pause") { running = false; ranMs += performance.now() - runSince; pausing = true; idleCheck(); }
});
lines.on("close", () => { stop = true; running = false; for (const w of wake.splice(0)) w(); });
async function loop(episodeId) {
  while (!stop) {
    if (!running) { await new Promise((r) => wake.push(r)); continue; }
    inFlight++;
    try {
      const res = await fetch(baseUrl + "/step", {
        method: "POST",
        headers: { "content-type": "application/json", authorization: "Bearer " + key },
        body: JSON.stringify({ action: { code }, episode_id: episodeId }),
      });
      const text = await res.text();
      let errorCode = "";
      try { errorCode = JSON.parse(text).error?.code ?? ""; } catch {}
      const k = res.status + (errorCode ? " " + errorCode : "");
      counts[k] = (counts[k] ?? 0) + 1;
      sent++;
      inFlight--;
      idleCheck();
      if (res.status === 429 || res.status === 409) {
        const wait = aggressive ? 1 : Number(res.headers.get("retry-after") ?? 1) * 1000;
        await new Promise((r) => setTimeout(r, wait));
      }
    } catch {
      inFlight--;
      idleCheck();
      counts.network_error = (counts.network_error ?? 0) + 1;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
const loops = [];
for (let i = 0; i < hammer; i++) loops.push(loop(hammered));
for (const id of spread) for (let i = 0; i < perEpisode; i++) loops.push(loop(id));
await Promise.all(loops);
process.stdout.write(JSON.stringify({ counts, sent, seconds: ranMs / 1000 }) + "\\n");
`;

interface Flood {
  run(): void;
  /** Resolves once none of the flood's requests is in flight. */
  pause(): Promise<void>;
  /** Ends the flood: its summary. */
  end(): Promise<{ counts: Record<string, number>; sent: number; seconds: number }>;
}

function startFlood(env: Record<string, unknown>): Flood {
  const child: ChildProcess = spawn(process.execPath, ["--input-type=module", "-e", FLOOD_SCRIPT], {
    env: { ...process.env, FLOOD: JSON.stringify(env) },
    stdio: ["pipe", "pipe", "inherit"],
  });
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  let onPaused: (() => void) | undefined;
  let last = "";
  lines.on("line", (line) => {
    if (line === "paused") onPaused?.();
    else last = line;
  });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  return {
    run: () => child.stdin?.write("run\n"),
    pause: () =>
      new Promise<void>((r) => {
        onPaused = r;
        child.stdin?.write("pause\n");
      }),
    end: async () => {
      child.stdin?.end();
      await exited;
      try {
        return JSON.parse(last) as { counts: Record<string, number>; sent: number; seconds: number };
      } catch {
        throw new Error(`the flood ended without a summary: ${last.slice(0, 300)}`);
      }
    },
  };
}

function tableClient(stack: LocalStack): DynamoDBClient {
  // The local services check the stack's start-up credentials.
  return new DynamoDBClient({
    endpoint: stack.dynamodbEndpoint,
    region: "us-east-1",
    credentials: stack.credentials,
  });
}

async function main(): Promise<void> {
  const stack = await startLocalStack({
    port: 0,
    dataDir: null,
    auth: true,
    apiInstances: INSTANCES,
    env: {
      // Only the API's own fair sharing limits the flood (not the tenancy quotas).
      CODING_ENV_QUOTA_CONCURRENT_STEPS: "100000",
      CODING_ENV_QUOTA_STEPS_PER_DAY: "100000000",
      CODING_ENV_QUOTA_ACTIVE_EPISODES: "5000",
    },
  });
  const client = tableClient(stack);
  const loadBefore = loadAverage();
  try {
    const keys = dynamoDbApiKeyStore({ client, tableName: stack.tableName });
    const keyA = (await keys.create({ tenantId: "flooder" })).key;
    const keyB = (await keys.create({ tenantId: "bystander" })).key;
    const bEpisode = await reset(stack.baseUrl, keyB);
    for (let i = 0; i < 50; i++)
      await post(stack.baseUrl, keyB, "/step", { action: { code: "print(1)" }, episode_id: bEpisode });
    const hammered = await reset(stack.baseUrl, keyA);
    const spread: string[] = [];
    for (let i = 0; i < EPISODES; i++) spread.push(await reset(stack.baseUrl, keyA));
    const flood = startFlood({
      baseUrl: stack.baseUrl,
      key: keyA,
      hammered,
      spread,
      hammer: HAMMER,
      perEpisode: PER_EPISODE,
      code: FLOOD_CODE,
      aggressive: AGGRESSIVE,
    });
    console.log(
      `${ROUNDS} rounds of ${STEPS} steps of B without, then with A's flood: ${HAMMER} loops on one episode + ` +
        `${PER_EPISODE} on each of ${EPISODES} episodes (${args.cpu ? "spinning" : "sleeping"} 0.2 s, ` +
        `${AGGRESSIVE ? "retrying refusals at once" : "honouring Retry-After"}), ${INSTANCES} API instance(s)`,
    );
    const normalTimes: PhaseTimes = { total: [], executor: [], failed: 0 };
    const floodTimes: PhaseTimes = { total: [], executor: [], failed: 0 };
    // The API's event loop is this process's with one instance: how long its callbacks waited.
    const loopDelay = { normal: monitorEventLoopDelay(), flood: monitorEventLoopDelay() };
    for (let round = 0; round < ROUNDS; round++) {
      loopDelay.normal.enable();
      await victimSteps(stack.baseUrl, keyB, bEpisode, normalTimes);
      loopDelay.normal.disable();
      flood.run();
      // The flood reaches its steady state (queues full, workers busy) before B measures.
      await new Promise((r) => setTimeout(r, 1500));
      loopDelay.flood.enable();
      await victimSteps(stack.baseUrl, keyB, bEpisode, floodTimes);
      loopDelay.flood.disable();
      await flood.pause();
      process.stdout.write(`  round ${round + 1}/${ROUNDS} done\n`);
    }
    const floodSummary = await flood.end();
    const loadAfter = loadAverage();

    const normal = summary(normalTimes.total, normalTimes.failed);
    const flooded = summary(floodTimes.total, floodTimes.failed);
    const inExecutor = {
      normal: summary(normalTimes.executor, 0),
      flooded: summary(floodTimes.executor, 0),
    };
    const eventLoopDelayMs = Object.fromEntries(
      Object.entries(loopDelay).map(([phase, h]) => [
        phase,
        { p50: h.percentile(50) / 1e6, p99: h.percentile(99) / 1e6 },
      ]),
    );
    const ratio = { p50: flooded.p50 / normal.p50, p99: flooded.p99 / normal.p99 };
    const fmt = (n: number) => n.toFixed(2).padStart(8);
    console.log("\nTenant B, POST /step print(1), ms");
    console.log("                 p50       p90       p99       max      mean   failed");
    for (const [name, l] of [
      ["normal      ", normal],
      ["under flood ", flooded],
    ] as const) {
      console.log(
        `${name} ${fmt(l.p50)}  ${fmt(l.p90)}  ${fmt(l.p99)}  ${fmt(l.max)}  ${fmt(l.mean)}   ${l.failed}`,
      );
    }
    console.log(`ratio        ${fmt(ratio.p50)}            ${fmt(ratio.p99)}   (target: both <= 2.00)`);
    console.log(
      `in its worker (executor's duration_ms) p50/p99: normal ${inExecutor.normal.p50.toFixed(2)}/` +
        `${inExecutor.normal.p99.toFixed(2)}, under flood ${inExecutor.flooded.p50.toFixed(2)}/${inExecutor.flooded.p99.toFixed(2)}`,
    );
    if (INSTANCES === 1) {
      // (No max: the first sample after re-enabling a histogram spans the phase it was off.)
      const d = eventLoopDelayMs as Record<string, { p50: number; p99: number }>;
      console.log(
        `API event loop delay p50/p99, ms: normal ${d.normal?.p50.toFixed(1)}/${d.normal?.p99.toFixed(1)}, ` +
          `under flood ${d.flood?.p50.toFixed(1)}/${d.flood?.p99.toFixed(1)}`,
      );
    }
    const seconds = floodSummary.seconds;
    const ok = floodSummary.counts["200"] ?? 0;
    console.log(
      `\nTenant A's flood: ${floodSummary.sent} answers in ${seconds.toFixed(1)} s of flood ` +
        `(${(floodSummary.sent / seconds).toFixed(0)}/s; ${(ok / seconds).toFixed(1)} steps/s ran):`,
    );
    for (const [k, v] of Object.entries(floodSummary.counts)) console.log(`  ${k}: ${v}`);
    console.log(`load average before ${loadBefore.join(" ")}, after ${loadAfter.join(" ")}`);

    const outDir = join(repoRoot, "bench", "results");
    mkdirSync(outDir, { recursive: true });
    const file = join(outDir, `fairness-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
    writeFileSync(
      file,
      `${JSON.stringify(
        {
          rounds: ROUNDS,
          stepsPerPhase: STEPS,
          instances: INSTANCES,
          flood: {
            hammer: HAMMER,
            episodes: EPISODES,
            perEpisode: PER_EPISODE,
            code: FLOOD_CODE,
            aggressive: AGGRESSIVE,
            ...floodSummary,
            stepsPerSecond: ok / seconds,
          },
          normal,
          flooded,
          ratio,
          inExecutor,
          ...(INSTANCES === 1 ? { eventLoopDelayMs } : {}),
          loadAverage: { before: loadBefore, after: loadAfter },
        },
        null,
        2,
      )}\n`,
    );
    console.log(`\nwrote ${file}`);
  } finally {
    client.destroy();
    agent.destroy();
    await stack.stop();
  }
}

await main();
