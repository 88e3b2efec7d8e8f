// A fork of a long episode with large outputs, against real dynalite: its history is copied a page
// at a time (each Query page written before the next is read, so memory holds one page however long
// the history), within a time budget inside the request's deadline; a fork that runs out of time is
// answered 413 `fork_too_large`, leaves no item of the fork behind and gives its active-episode slot
// back.
import { randomBytes } from "node:crypto";
import { ScanCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultConfig } from "../../functions/src/config.js";
import type { Episode, StepRecord } from "../../functions/src/core/episode-repository.js";
import { EpisodeService, type EpisodeTenancyHooks } from "../../functions/src/core/episodes.js";
import { ForkTooLargeError } from "../../functions/src/core/errors.js";
import { withDeadline } from "../../functions/src/executor/deadline.js";
import { DynamoDbEpisodeRepository } from "../../functions/src/store/dynamodb-episode-repository.js";
import { episodePk } from "../../functions/src/store/layout.js";
import { ScriptedExecutor } from "../core/scripted-executor.js";
import { startTestTable, type TestTable } from "../tenancy/helpers/dynalite-table.js";

const T = "tenant-fork";
/** Steps of the long episode, each with 64 K characters of random output (kept whole in the history). */
const STEPS = 120;

let table: TestTable;
let repo: DynamoDbEpisodeRepository;
let source: Episode;
/** Partitions of the forks that were made (the first test's). */
const madeForks: string[] = [];

/** Every partition of the test's table. */
async function partitions(): Promise<Set<string>> {
  const pks = new Set<string>();
  let startKey: Record<string, unknown> | undefined;
  do {
    const out = await table.doc.send(
      new ScanCommand({
        TableName: table.tableName,
        ProjectionExpression: "pk",
        ExclusiveStartKey: startKey,
      }),
    );
    for (const item of out.Items ?? []) pks.add(String(item.pk));
    startKey = out.LastEvaluatedKey;
  } while (startKey);
  return pks;
}

/** A step's record with `stdout` as its output. */
function record(step: number, stdout: string): StepRecord {
  return {
    step,
    code: `print(out_${step})`,
    observation: { stdout, stderr: "", exit_code: 0 },
    reward: 0.1,
    done: false,
    metadata: { last_code: `print(out_${step})` },
    info: {
      duration_ms: 1,
      timed_out: false,
      stdout_truncated: false,
      stderr_truncated: false,
      dropped_variables: [],
    },
    started_at: new Date().toISOString(),
    duration_ms: 2,
  };
}

/** Tenancy hooks that keep the active-episode slots taken, as the hosted mode's active set does. */
function slots(): EpisodeTenancyHooks & { held: Set<string> } {
  const held = new Set<string>();
  return {
    held,
    reserveEpisodeSlot: async ({ episodeId }) => void held.add(episodeId),
    releaseEpisodeSlot: async ({ episodeId }) => void held.delete(episodeId),
    beginStep: async () => () => {},
    checkState: () => {},
  };
}

function service(tenancy: EpisodeTenancyHooks) {
  return new EpisodeService({
    repository: repo,
    executor: new ScriptedExecutor(),
    config: defaultConfig,
    tenancy,
    logError: () => {},
  });
}

beforeAll(async () => {
  table = await startTestTable("coding-env-fork");
  repo = new DynamoDbEpisodeRepository({
    doc: table.doc,
    tableName: table.tableName,
    maxStateBytes: 3 * 1024 * 1024,
  });
  // Arrange: a long episode whose every version item is large (random output does not gzip).
  const now = Date.now();
  const id = `ep_long_${randomBytes(4).toString("hex")}`;
  let ep = (
    await repo.create(
      {
        id,
        tenantId: T,
        policy: "openenv",
        additionalImports: [],
        stepTimeoutS: 30,
        ttlS: 86_400,
        createdAtMs: now,
        snapshot: null,
      },
      { replaceExisting: false, nowMs: now },
    )
  ).episode;
  for (let step = 1; step <= STEPS; step++) {
    const committed = await repo.commitStep({
      before: ep,
      snapshot: randomBytes(120).toString("base64"),
      lastExitCode: 0,
      nowMs: now + step,
      record: record(step, randomBytes(48 * 1024).toString("base64")),
      usage: { executorMs: 1, stateBytes: 120 },
    });
    if (committed.kind !== "committed") throw new Error("step not committed");
    ep = committed.episode;
  }
  source = ep;
}, 300_000);

afterAll(async () => {
  await table?.stop();
});

describe("fork of a long episode with large outputs", () => {
  it("copies every step page by page: each page is written before the next is read (memory: one page)", async () => {
    // Record the order of the fork's requests.
    const calls: string[] = [];
    const name = "fork-bounded-test-recorder";
    table.doc.middlewareStack.add(
      (next, context) => async (args) => {
        calls.push(String(context.commandName));
        return next(args);
      },
      { step: "initialize", name },
    );
    let forkId: string;
    try {
      const tenancy = slots();
      const forked = await service(tenancy).fork(T, source.id);
      forkId = forked.episode_id;
      madeForks.push(episodePk(T, forkId));
      expect(forked.step_count).toBe(STEPS);
      expect(tenancy.held).toEqual(new Set([forkId]));
    } finally {
      table.doc.middlewareStack.remove(name);
    }

    const reads = calls.flatMap((c, i) => (c.startsWith("Query") ? [i] : []));
    const writes = calls.flatMap((c, i) => (c.startsWith("BatchWrite") ? [i] : []));
    // Pages of at most 25 items (1 MB of a Query at most): several of them for this history.
    expect(reads.length).toBeGreaterThanOrEqual(STEPS / 25);
    // Streamed: a write comes before the last read (reading everything first held it all in memory).
    expect(Math.min(...writes)).toBeLessThan(Math.max(...reads));
    // Every page read after the first two (the first is the service's own load) follows a write of
    // the page before it: one page in memory at a time.
    for (let k = 2; k < reads.length; k++)
      expect(
        writes.some((w) => w > (reads[k - 1] as number) && w < (reads[k] as number)),
        `page read ${k}`,
      ).toBe(true);

    // The whole history is the fork's, in order, and the fork answers like its source.
    const fork = (await repo.load(T, forkId, { nowMs: Date.now() }))?.episode;
    expect(fork?.version).toBe(STEPS);
    const steps: number[] = [];
    for (let after = 0; ; ) {
      const page = await repo.historyPage(fork as Episode, {
        afterStep: after,
        limit: 1000,
        maxBytes: 4 << 20,
      });
      steps.push(...page.steps.map((s) => s.step));
      if (page.lastStep === null) break;
      after = page.lastStep;
    }
    expect(steps).toEqual(Array.from({ length: STEPS }, (_, i) => i + 1));
  }, 300_000);

  it("a fork out of time inside the request's deadline is a 413 fork_too_large: no item of it is left and its slot is given back", async () => {
    const tenancy = slots();
    // The request's deadline has passed: the copy stops after its first page.
    const err = await withDeadline(Date.now(), () => service(tenancy).fork(T, source.id)).catch((e) => e);
    expect(err).toBeInstanceOf(ForkTooLargeError);
    expect(err).toMatchObject({ status: 413, code: "fork_too_large", details: { total_steps: STEPS } });
    expect(err.details.copied_steps).toBeGreaterThan(0);
    expect(err.details.copied_steps).toBeLessThan(STEPS);

    // Nothing held: no slot, and no item of the failed fork (only the source's and the first test's fork's).
    expect(tenancy.held.size).toBe(0);
    expect(await partitions()).toEqual(new Set([episodePk(T, source.id), ...madeForks]));
  }, 300_000);
});
