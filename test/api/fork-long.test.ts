// A fork of a long episode with large outputs through the local stack's HTTP API: the history is
// copied page by page (test/store/fork-bounded.test.ts checks the paging and the clean-up on the
// repository), every step arrives in the fork, in order and whole, and the fork runs on.
import { describe, expect, inject, it } from "vitest";
import { call, Episode, type StepBody } from "../helpers/api.js";

const baseUrl = inject("baseUrl");
/** Steps of the source: more than three of the fork's pages of 25. */
const STEPS = 80;
/** 64 K random hex digits per step: kept whole in the history (the cap is 64 K characters). */
const bigOutput = "import random\nprint(''.join(random.choices('0123456789abcdef', k=65536)), end='')";

interface HistoryPage {
  steps: { step: number; observation: { stdout: string } }[];
  next_cursor: string | null;
}

async function history(id: string): Promise<HistoryPage["steps"]> {
  const steps: HistoryPage["steps"] = [];
  let cursor: string | null = null;
  do {
    const query: string = cursor ? `?cursor=${encodeURIComponent(cursor)}` : "";
    const page = await call<HistoryPage>(baseUrl, "GET", `/episodes/${id}/history${query}`);
    expect(page.status).toBe(200);
    steps.push(...page.body.steps);
    cursor = page.body.next_cursor;
  } while (cursor);
  return steps;
}

describe("fork of a long episode with large outputs", () => {
  it("copies all 80 steps (79 of them 64 K characters of output), in order and whole, and the fork runs on its own", async () => {
    const source = await Episode.reset(baseUrl);
    await source.run("n = 0");
    for (let i = 2; i <= STEPS; i++) {
      const out = await source.run(bigOutput);
      expect(out.observation.stdout).toHaveLength(65536);
    }

    const forked = await call<StepBody>(baseUrl, "POST", `/episodes/${source.id}/fork`);
    expect(forked.status, forked.text).toBe(201);
    expect(forked.body).toMatchObject({ step_count: STEPS, forked_from: source.id });
    const forkId = forked.body.episode_id;

    const [sourceSteps, forkSteps] = [await history(source.id), await history(forkId)];
    expect(forkSteps.map((s) => s.step)).toEqual(Array.from({ length: STEPS }, (_, i) => i + 1));
    expect(forkSteps.map((s) => s.observation.stdout)).toEqual(sourceSteps.map((s) => s.observation.stdout));

    // The fork has the state and diverges; the source is unchanged.
    const fork = await call<StepBody>(baseUrl, "POST", "/step", {
      episode_id: forkId,
      action: { code: "n += 1\nprint(n)" },
    });
    expect(fork.status).toBe(200);
    expect(fork.body).toMatchObject({ step_count: STEPS + 1, observation: { stdout: "1\n" } });
    expect((await source.run("print(n)")).observation.stdout).toBe("0\n");
    expect((await call(baseUrl, "DELETE", `/episodes/${forkId}`)).status).toBe(204);
  });
});
