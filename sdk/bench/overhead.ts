// SDK benchmark against a real local stack (in-memory dynalite, Python executor, API), in-process:
//   1. sequential POST /step `print(1)` on one episode: raw fetch vs CodingEnv.step (p50/p99), so
//      the SDK's own cost (request id, JSON, StepResult, retry wrapper) is visible;
//   2. stepBatch over many episodes: aggregate steps/s at a given concurrency vs one at a time.
// Prints a table and a JSON line.
//
// Run: npx tsx sdk/bench/overhead.ts [--steps 300] [--episodes 16] [--concurrency 8] [--rounds 5]
import { parseArgs } from "node:util";
import { CodingEnv, createEpisodes, stepBatch } from "../src/index.js";

const { values: args } = parseArgs({
  options: {
    steps: { type: "string", default: "300" },
    episodes: { type: "string", default: "16" },
    concurrency: { type: "string", default: "8" },
    rounds: { type: "string", default: "5" },
  },
});
const STEPS = Number(args.steps);
const EPISODES = Number(args.episodes);
const CONCURRENCY = Number(args.concurrency);
const ROUNDS = Number(args.rounds);

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}
function summary(samples: number[]) {
  const sorted = [...samples].sort((a, b) => a - b);
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
}

// The stack belongs to functions/; imported by path so the SDK's type-check does not follow it.
const stackModule = "../../functions/src/local/stack.js";
const { startLocalStack } = (await import(stackModule)) as {
  startLocalStack(opts: { port: number; dataDir: null }): Promise<{ baseUrl: string; stop(): Promise<void> }>;
};
const stack = await startLocalStack({ port: 0, dataDir: null });
try {
  const baseUrl = stack.baseUrl;

  // 1. Raw fetch vs SDK, interleaved so both see the same warm executor.
  const env = new CodingEnv({ baseUrl });
  await env.reset();
  const episodeId = env.episodeId as string;
  const raw: number[] = [];
  const sdk: number[] = [];
  for (let i = 0; i < 20; i++) await env.step("print(1)"); // warm-up
  for (let i = 0; i < STEPS; i++) {
    let t = performance.now();
    const res = await fetch(`${baseUrl}/step`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ action: { code: "print(1)" }, episode_id: episodeId, request_id: `raw-${i}` }),
    });
    await res.json();
    raw.push(performance.now() - t);
    t = performance.now();
    await env.step("print(1)");
    sdk.push(performance.now() - t);
  }
  await env.close();

  // 2. Batch throughput.
  const envs = await createEpisodes(EPISODES, { baseUrl }, {}, { concurrency: CONCURRENCY });
  await stepBatch(envs, () => "x = 1", { concurrency: CONCURRENCY }); // warm the workers
  const timeRounds = async (concurrency: number) => {
    const t = performance.now();
    let errors = 0;
    for (let r = 0; r < ROUNDS; r++) {
      const outcomes = await stepBatch(envs, () => "x += 1", { concurrency });
      errors += outcomes.filter((o) => !o.ok).length;
    }
    return { stepsPerS: (EPISODES * ROUNDS) / ((performance.now() - t) / 1000), errors };
  };
  const sequential = await timeRounds(1);
  const concurrent = await timeRounds(CONCURRENCY);
  await Promise.all(envs.map((e) => e.close()));

  const rawS = summary(raw);
  const sdkS = summary(sdk);
  const fmt = (n: number) => n.toFixed(2).padStart(8);
  console.log(`step print(1), ${STEPS} sequential steps each      p50 ms   p99 ms`);
  console.log(`  raw fetch                                  ${fmt(rawS.p50)} ${fmt(rawS.p99)}`);
  console.log(`  CodingEnv.step                             ${fmt(sdkS.p50)} ${fmt(sdkS.p99)}`);
  console.log(`stepBatch, ${EPISODES} episodes x ${ROUNDS} rounds              steps/s  errors`);
  console.log(
    `  concurrency 1                              ${fmt(sequential.stepsPerS)} ${sequential.errors}`,
  );
  console.log(
    `  concurrency ${String(CONCURRENCY).padEnd(31)}${fmt(concurrent.stepsPerS)} ${concurrent.errors}`,
  );
  console.log(
    JSON.stringify({ bench: "sdk", steps: STEPS, raw: rawS, sdk: sdkS, batch: { sequential, concurrent } }),
  );
} finally {
  await stack.stop();
}
