import { afterEach, describe, expect, it } from "vitest";
import { CodingEnv, createEpisodes, type FetchLike, mapConcurrent, stepBatch } from "../src/index.js";
import { stackUrl } from "./helpers.js";

/** The real fetch, counting how many /step calls are in flight at once. */
function countingFetch(): { fetch: FetchLike; maxInFlight: () => number } {
  let inFlight = 0;
  let max = 0;
  return {
    fetch: async (input, init) => {
      const isStep = input.endsWith("/step");
      if (isStep) max = Math.max(max, ++inFlight);
      try {
        return await fetch(input, init);
      } finally {
        if (isStep) inFlight--;
      }
    },
    maxInFlight: () => max,
  };
}

const opened: CodingEnv[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((env) => env.close().catch(() => undefined)));
});

describe("batch helpers against the local stack", () => {
  it("createEpisodes + stepBatch step many episodes with bounded parallelism, results in order", async () => {
    // Prepare
    const counter = countingFetch();
    const envs = await createEpisodes(
      6,
      { baseUrl: stackUrl(), fetch: counter.fetch },
      {},
      { concurrency: 3 },
    );
    opened.push(...envs);
    await stepBatch(envs, (_env, i) => `i = ${i}`, { concurrency: 3 });

    // Act: each episode sleeps a little so the calls overlap, then reports its own variable.
    const outcomes = await stepBatch(envs, () => "import time\ntime.sleep(0.2)\ni * 10", { concurrency: 2 });

    // Assess
    expect(new Set(envs.map((env) => env.episodeId)).size).toBe(6);
    expect(outcomes.map((o) => (o.ok ? o.value.observation.stdout : "error"))).toEqual([
      "0",
      "10",
      "20",
      "30",
      "40",
      "50",
    ]);
    expect(counter.maxInFlight()).toBeLessThanOrEqual(3);
    expect(counter.maxInFlight()).toBeGreaterThanOrEqual(2);
  });

  it("one failing episode does not stop the others", async () => {
    const envs = await createEpisodes(3, { baseUrl: stackUrl(), retry: false });
    opened.push(...envs);
    const gone = envs[1] as CodingEnv;
    await new CodingEnv({ baseUrl: stackUrl(), episodeId: gone.episodeId }).close();

    const outcomes = await stepBatch(envs, ["1", "2", "3"]);

    expect(outcomes.map((o) => o.ok)).toEqual([true, false, true]);
    const failed = outcomes[1];
    expect(failed && !failed.ok ? (failed.error as { code: string }).code : "").toBe("episode_not_found");
  });

  it("stepBatch needs one action per env", () => {
    expect(() => stepBatch([new CodingEnv({ baseUrl: stackUrl() })], [])).toThrow(RangeError);
  });
});

describe("mapConcurrent", () => {
  it("never runs more than `concurrency` items at once and keeps input order", async () => {
    let running = 0;
    let peak = 0;
    const items = Array.from({ length: 20 }, (_, i) => i);

    const outcomes = await mapConcurrent(
      items,
      async (n) => {
        peak = Math.max(peak, ++running);
        await new Promise((resolve) => setTimeout(resolve, (n % 3) * 5));
        running--;
        if (n === 7) throw new Error("seven");
        return n * n;
      },
      { concurrency: 4 },
    );

    expect(peak).toBe(4);
    expect(outcomes.map((o) => o.index)).toEqual(items);
    expect(outcomes.filter((o) => !o.ok)).toHaveLength(1);
    expect(outcomes[8]).toEqual({ ok: true, index: 8, value: 64 });
  });

  it("stops starting items once the signal aborts", async () => {
    const controller = new AbortController();
    const started: number[] = [];

    const outcomes = await mapConcurrent(
      [0, 1, 2, 3, 4],
      async (n) => {
        started.push(n);
        if (n === 1) controller.abort(new Error("enough"));
        return n;
      },
      { concurrency: 1, signal: controller.signal },
    );

    expect(started).toEqual([0, 1]);
    expect(outcomes.filter((o) => o.ok)).toHaveLength(2);
    await expect(mapConcurrent([], async () => 0, { concurrency: 0 })).rejects.toThrow(RangeError);
  });
});
