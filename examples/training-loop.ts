// A training-loop style rollout: many episodes stepped concurrently, a fork per episode to try
// several continuations from the same Python state, and every trajectory saved as JSONL.
//
//   CODING_ENV_URL=http://localhost:8000 npx tsx examples/training-loop.ts
//   EPISODES=32 CONCURRENCY=8 OUT=/tmp/trajectories.jsonl npx tsx examples/training-loop.ts
//
// The "policy" here is a fixed list of candidate programs (some wrong) so the example runs without
// a model; in a real loop it is your LLM proposing code from the observation so far.
import { appendFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type CodingEnv, createEpisodes, mapConcurrent, type StepResult, stepBatch } from "@coding-env/sdk";

const episodes = Number(process.env.EPISODES ?? 8);
const concurrency = Number(process.env.CONCURRENCY ?? 4);
const out = process.env.OUT ?? join(tmpdir(), "coding-env-trajectories.jsonl");

// The task each episode solves: define `triangle(n)` = 1 + 2 + ... + n.
const setup = "import math\ncases = [(0, 0), (1, 1), (4, 10), (100, 5050)]";
const candidates = [
  "def triangle(n):\n    return n * (n + 1) // 2",
  "def triangle(n):\n    return sum(range(n))", // off by one
  "def triangle(n):\n    return math.comb(n + 1, 2)",
  "def triangle(n)\n    return n", // syntax error
];
const check = "sum(triangle(n) == want for n, want in cases) / len(cases)";

/** Our task reward on top of OpenEnv's: the fraction of test cases passed (0 on an error). */
function passRate(result: StepResult): number {
  return result.observation.exit_code === 0 ? Number(result.observation.stdout) : 0;
}

/** Tries one candidate on a fork of `env` and scores it; the fork is deleted afterwards. */
async function tryCandidate(env: CodingEnv, code: string) {
  const branch = await env.fork();
  try {
    const defined = await branch.step(code);
    const checked = await branch.step(check);
    const score = (defined.reward ?? 0) + passRate(checked);
    return { code, score, trajectory: await branch.history() };
  } finally {
    await branch.close();
  }
}

const started = performance.now();
const envs = await createEpisodes(episodes, {}, { seed: 0 }, { concurrency });
try {
  // Step 1 in every episode at once (bounded parallelism).
  const setupOutcomes = await stepBatch(envs, () => setup, { concurrency });
  const failedSetups = setupOutcomes.filter((o) => !o.ok).length;

  // Step 2: each episode explores the candidates on forks of its post-setup state, keeps the best.
  writeFileSync(out, "");
  const rollouts = await mapConcurrent(
    envs,
    async (env, index) => {
      const order = candidates.map((_, i) => candidates[(i + index) % candidates.length] as string);
      let best: Awaited<ReturnType<typeof tryCandidate>> | undefined;
      for (const code of order) {
        const tried = await tryCandidate(env, code);
        appendFileSync(
          out,
          `${JSON.stringify({ episode: index, score: tried.score, ...tried.trajectory })}\n`,
        );
        if (best === undefined || tried.score > best.score) best = tried;
      }
      // Commit the best candidate in the episode itself.
      await env.step((best as { code: string }).code);
      return best as NonNullable<typeof best>;
    },
    { concurrency },
  );

  const scores = rollouts.flatMap((o) => (o.ok ? [o.value.score] : []));
  const errors = rollouts.filter((o) => !o.ok);
  const seconds = (performance.now() - started) / 1000;
  console.log(`episodes: ${episodes}, concurrency: ${concurrency}, failed setups: ${failedSetups}`);
  console.log(`rollouts ok: ${scores.length}, errors: ${errors.length}`);
  console.log(`best score per episode: ${scores.map((s) => s.toFixed(2)).join(" ")}`);
  console.log(`trajectories: ${out} (${episodes * candidates.length} forks) in ${seconds.toFixed(1)} s`);
  for (const e of errors) if (!e.ok) console.error(`episode ${e.index}:`, e.error);
  if (errors.length > 0 || failedSetups > 0) process.exitCode = 1;
} finally {
  await mapConcurrent(envs, (env) => env.close(), { concurrency });
}
