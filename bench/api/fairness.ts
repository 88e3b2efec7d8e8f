// Fair sharing benchmark (issue 10 point 7): tenant B's step latency while tenant A floods the API,
// against B's latency alone. Target: B's p50 under the flood within 2x its p50 alone.
//   1. a local stack with keys on, in this process; one key per tenant;
//   2. B alone: sequential POST /step `print(1)` on one episode (p50/p99);
//   3. A floods from a separate process: hundreds of concurrent steps that hold their connection
//      (`time.sleep(0.2)`), on one episode (most answered 409) and on many episodes (beyond its
//      share answered 429), each loop starting its next step at once, for as long as step 4 lasts;
//   4. B again, the same way, under the flood.
// By default A's loops wait the Retry-After of a refusal, as the SDK does: a flood of concurrent
// steps. `--aggressive` makes them retry at once: then the flood is also a request-rate flood,
// which one API process on two cores cannot absorb (API Gateway's stage throttling does in AWS).
// Prints a table and writes bench/results/fairness-<timestamp>.json.
//
// Run: npx tsx bench/api/fairness.ts [--steps 300] [--hammer 200] [--episodes 60] [--per-episode 2]
//      [--aggressive] [--quick]
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { type LocalStack, startLocalStack } from "../../functions/src/local/stack.js";
import { dynamoDbApiKeyStore } from "../../functions/src/store/dynamodb-api-keys.js";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const { values: args } = parseArgs({
  options: {
    steps: { type: "string", default: "300" },
    hammer: { type: "string", default: "200" },
    episodes: { type: "string", default: "60" },
    "per-episode": { type: "string", default: "2" },
    aggressive: { type: "boolean", default: false },
    quick: { type: "boolean", default: false },
  },
  strict: false,
});
const quick = args.quick === true;
const STEPS = quick ? 100 : Number(args.steps);
const HAMMER = Number(args.hammer);
const EPISODES = quick ? 30 : Number(args.episodes);
const PER_EPISODE = Number(args["per-episode"]);
const AGGRESSIVE = args.aggressive === true;
const FLOOD_CODE = "import time\ntime.sleep(0.2)\nprint(1)";

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

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const idx = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, idx)] as number;
}

interface Latency {
  p50: number;
  p99: number;
  mean: number;
  n: number;
  failed: number;
}

async function latency(baseUrl: string, key: string, episodeId: string): Promise<Latency> {
  const body = { action: { code: "print(1)" }, episode_id: episodeId };
  const times: number[] = [];
  let failed = 0;
  for (let i = 0; i < STEPS; i++) {
    const t0 = performance.now();
    const r = await post(baseUrl, key, "/step", body);
    times.push(performance.now() - t0);
    if (r.status !== 200) failed++;
  }
  times.sort((a, b) => a - b);
  return {
    p50: percentile(times, 50),
    p99: percentile(times, 99),
    mean: times.reduce((a, b) => a + b, 0) / times.length,
    n: times.length,
    failed,
  };
}

/** The flood: a plain Node process (its own event loop and connections) stepping until stdin closes. */
const FLOOD_SCRIPT = `
const { baseUrl, key, hammered, spread, hammer, perEpisode, code, aggressive } = JSON.parse(process.env.FLOOD);
let stop = false;
process.stdin.on("end", () => { stop = true; });
process.stdin.resume();
const counts = {};
let sent = 0;
const t0 = performance.now();
async function loop(episodeId) {
  while (!stop) {
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
      if (res.status === 429 || res.status === 409) {
        const wait = aggressive ? 1 : Number(res.headers.get("retry-after") ?? 1) * 1000;
        await new Promise((r) => setTimeout(r, wait));
      }
    } catch {
      counts.network_error = (counts.network_error ?? 0) + 1;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
const loops = [];
for (let i = 0; i < hammer; i++) loops.push(loop(hammered));
for (const id of spread) for (let i = 0; i < perEpisode; i++) loops.push(loop(id));
await Promise.all(loops);
process.stdout.write(JSON.stringify({ counts, sent, seconds: (performance.now() - t0) / 1000 }) + "\\n");
`;

function startFlood(env: Record<string, unknown>): {
  child: ChildProcess;
  done: Promise<Record<string, unknown>>;
} {
  const child = spawn(process.execPath, ["--input-type=module", "-e", FLOOD_SCRIPT], {
    env: { ...process.env, FLOOD: JSON.stringify(env) },
    stdio: ["pipe", "pipe", "inherit"],
  });
  const done = new Promise<Record<string, unknown>>((res, rej) => {
    let out = "";
    child.stdout?.on("data", (c: Buffer) => {
      out += c.toString();
    });
    child.once("exit", (code) => {
      try {
        res(JSON.parse(out.trim()) as Record<string, unknown>);
      } catch {
        rej(new Error(`flood exited (code ${code}) without a summary: ${out.slice(0, 300)}`));
      }
    });
  });
  return { child, done };
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
    env: {
      // Only the API's own fair sharing limits the flood (not the tenancy quotas).
      CODING_ENV_QUOTA_CONCURRENT_STEPS: "100000",
      CODING_ENV_QUOTA_STEPS_PER_DAY: "100000000",
      CODING_ENV_QUOTA_ACTIVE_EPISODES: "5000",
    },
  });
  const client = tableClient(stack);
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

    console.log(`B alone: ${STEPS} sequential steps...`);
    const alone = await latency(stack.baseUrl, keyB, bEpisode);

    console.log(
      `A floods: ${HAMMER} loops on one episode + ${PER_EPISODE} on each of ${EPISODES} episodes` +
        ` (${AGGRESSIVE ? "retrying refusals at once" : "honouring Retry-After"})...`,
    );
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
    await new Promise((r) => setTimeout(r, 2000));
    console.log(`B under the flood: ${STEPS} sequential steps...`);
    const flooded = await latency(stack.baseUrl, keyB, bEpisode);
    flood.child.stdin?.end();
    const floodSummary = await flood.done;

    const ratioP50 = flooded.p50 / alone.p50;
    const ratioP99 = flooded.p99 / alone.p99;
    const fmt = (n: number) => n.toFixed(2).padStart(8);
    console.log("\nTenant B, POST /step print(1), ms");
    console.log("                 p50       p99      mean   failed");
    console.log(`alone        ${fmt(alone.p50)}  ${fmt(alone.p99)}  ${fmt(alone.mean)}   ${alone.failed}`);
    console.log(
      `under flood  ${fmt(flooded.p50)}  ${fmt(flooded.p99)}  ${fmt(flooded.mean)}   ${flooded.failed}`,
    );
    console.log(`ratio        ${fmt(ratioP50)}  ${fmt(ratioP99)}   (target p50 <= 2.00)`);
    const seconds = Number(floodSummary.seconds);
    console.log(
      `\nTenant A's flood: ${floodSummary.sent} answers in ${seconds.toFixed(1)} s (${(Number(floodSummary.sent) / seconds).toFixed(0)}/s):`,
    );
    for (const [k, v] of Object.entries(floodSummary.counts as Record<string, number>))
      console.log(`  ${k}: ${v}`);

    const outDir = join(repoRoot, "bench", "results");
    mkdirSync(outDir, { recursive: true });
    const file = join(outDir, `fairness-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
    writeFileSync(
      file,
      `${JSON.stringify(
        {
          steps: STEPS,
          flood: {
            hammer: HAMMER,
            episodes: EPISODES,
            perEpisode: PER_EPISODE,
            code: FLOOD_CODE,
            aggressive: AGGRESSIVE,
            ...floodSummary,
          },
          alone,
          flooded,
          ratio: { p50: ratioP50, p99: ratioP99 },
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
