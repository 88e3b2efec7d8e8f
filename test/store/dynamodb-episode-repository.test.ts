// The DynamoDB episode repository against real dynalite: what a step reads and writes (and what
// DynamoDB would bill for it), races between two instances, large state, the 400 KB item limit,
// the head's lazy TTL, resets of an id, history pages and unprocessed batch keys.
import { randomBytes } from "node:crypto";
import { DynamoDBDocumentClient, GetCommand, QueryCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { NewEpisode, StepRecord } from "../../functions/src/core/episode-repository.js";
import { startDynalite } from "../../functions/src/local/dynalite-server.js";
import { DynamoDbEpisodeRepository } from "../../functions/src/store/dynamodb-episode-repository.js";
import { itemBytes } from "../../functions/src/store/item-size.js";
import { episodePk, HEAD_SK, versionSk } from "../../functions/src/store/layout.js";
import { HISTORY_OUTPUT_CHARS } from "../../functions/src/store/record-codec.js";
import {
  clientFor,
  createServiceTable,
  startTestTable,
  type TestTable,
} from "../tenancy/helpers/dynalite-table.js";

let table: TestTable;
const T = "tenant-s";
let seq = 0;

beforeAll(async () => {
  table = await startTestTable("coding-env-store");
});
afterAll(async () => {
  await table.stop();
});

function repository(maxStateBytes = 3 * 1024 * 1024) {
  return new DynamoDbEpisodeRepository({ doc: table.doc, tableName: table.tableName, maxStateBytes });
}

function spec(nowMs: number, over: Partial<NewEpisode> = {}): NewEpisode {
  return {
    id: `ep_${++seq}_${randomBytes(4).toString("hex")}`,
    tenantId: T,
    policy: "openenv",
    additionalImports: [],
    stepTimeoutS: 30,
    ttlS: 86_400,
    createdAtMs: nowMs,
    snapshot: null,
    ...over,
  };
}

/** The record the core stores for `print(1)` (shape of core/step-result.ts). */
function record(step: number, code = "print(1)", stdout = "1\n", requestId?: string): StepRecord {
  return {
    step,
    code,
    observation: { stdout, stderr: "", exit_code: 0 },
    reward: 0.1,
    done: false,
    metadata: { last_code: code },
    info: {
      duration_ms: 0.6,
      timed_out: false,
      stdout_truncated: false,
      stderr_truncated: false,
      dropped_variables: [],
    },
    ...(requestId !== undefined ? { request_id: requestId } : {}),
    started_at: new Date().toISOString(),
    duration_ms: 3,
  };
}

/** A trivial state: the size of the runtime's snapshot after `print(1)` (120 bytes). */
const SMALL_SNAPSHOT = randomBytes(120).toString("base64");

async function load(repo: DynamoDbEpisodeRepository, id: string, nowMs = Date.now(), requestId?: string) {
  const got = await repo.load(T, id, { nowMs, ...(requestId !== undefined ? { requestId } : {}) });
  if (!got) throw new Error("no episode");
  return got;
}

describe("a trivial step's cost (DynamoDB's billing rules on item sizes)", () => {
  it("is one strongly consistent read of at most 4 KB and one conditional write of at most 1 KB", async () => {
    // Prepare: an episode with a few steps with request ids (the recent-request set is full-ish)
    const repo = repository();
    const now = Date.now();
    const { episode } = await repo.create(spec(now), { replaceExisting: false, nowMs: now });
    let current = episode;
    for (let i = 0; i < 20; i++) {
      const rid = `8f14e45f-ceea-467f-a0e6-${String(i).padStart(12, "0")}`;
      const out = await repo.commitStep({
        before: current,
        snapshot: SMALL_SNAPSHOT,
        lastExitCode: 0,
        nowMs: now,
        record: record(current.version + 1, "print(1)", "1\n", rid),
        requestId: rid,
        usage: { executorMs: 0.6, stateBytes: 120 },
      });
      if (out.kind !== "committed") throw new Error(out.kind);
      current = (await load(repo, episode.id, now, rid)).episode;
    }
    // Act: one more step, measured
    const before = { ...repo.stats };
    const loaded = await load(repo, episode.id, now, "a-new-request-id-0000000000000000000");
    const afterRead = { ...repo.stats };
    const out = await repo.commitStep({
      before: loaded.episode,
      snapshot: SMALL_SNAPSHOT,
      lastExitCode: 0,
      nowMs: now,
      record: record(loaded.episode.version + 1, "print(1)", "1\n", "a-new-request-id-0000000000000000000"),
      requestId: "a-new-request-id-0000000000000000000",
      usage: { executorMs: 0.6, stateBytes: 120 },
    });
    // Assess
    expect(out.kind).toBe("committed");
    expect(afterRead.reads - before.reads).toBe(1);
    expect(afterRead.readUnits - before.readUnits).toBe(1);
    expect(repo.stats.writes - afterRead.writes).toBe(1);
    expect(repo.stats.writeUnits - afterRead.writeUnits).toBe(1);
    // The items themselves, as stored: head + latest version under 4 KB, the version item under 1 KB.
    const pk = episodePk(T, episode.id);
    const head = (
      await table.doc.send(new GetCommand({ TableName: table.tableName, Key: { pk, sk: HEAD_SK } }))
    ).Item;
    const latest = (
      await table.doc.send(
        new GetCommand({ TableName: table.tableName, Key: { pk, sk: versionSk(episode.incarnation, 21) } }),
      )
    ).Item;
    expect(itemBytes(latest ?? {})).toBeLessThanOrEqual(1024);
    expect(itemBytes(head ?? {}) + itemBytes(latest ?? {})).toBeLessThanOrEqual(4096);
    // No TTL on history; usage on the item for the roll-up.
    expect(latest).toMatchObject({ tenant: T, executor_ms: 1, state_bytes: 120 });
    expect(latest?.expires_at).toBeUndefined();
  });
});

describe("two instances on one table", () => {
  it("a lost race is a conflict; a twin with the same request id gets the winner's record", async () => {
    const a = repository();
    const b = repository();
    const now = Date.now();
    const { episode } = await a.create(spec(now), { replaceExisting: false, nowMs: now });
    const seenByA = (await load(a, episode.id)).episode;
    const seenByB = (await load(b, episode.id)).episode;
    const commit = (
      repo: DynamoDbEpisodeRepository,
      before: typeof seenByA,
      code: string,
      requestId?: string,
    ) =>
      repo.commitStep({
        before,
        snapshot: SMALL_SNAPSHOT,
        lastExitCode: 0,
        nowMs: now,
        record: record(1, code, `${code}\n`, requestId),
        ...(requestId !== undefined ? { requestId } : {}),
        usage: { executorMs: 1, stateBytes: 120 },
      });
    expect((await commit(b, seenByB, "b", "r1")).kind).toBe("committed");
    expect(await commit(a, seenByA, "a")).toEqual({ kind: "conflict" });
    const twin = await commit(a, seenByA, "b", "r1");
    expect(twin.kind).toBe("duplicate");
    expect(twin.kind === "duplicate" && twin.record.observation.stdout).toBe("b\n");
    // A fresh read on A sees B's step: a stale copy never commits over it.
    const fresh = await load(a, episode.id);
    expect(fresh.episode.version).toBe(1);
    expect(fresh.episode.snapshot).toBe(SMALL_SNAPSHOT);
  });
});

describe("large state and large records", () => {
  it("keeps a large snapshot in chunks; the instance that wrote it skips re-reading them", async () => {
    const a = repository();
    const b = repository();
    const now = Date.now();
    const { episode } = await a.create(spec(now), { replaceExisting: false, nowMs: now });
    const big = randomBytes(800 * 1024).toString("base64");
    const out = await a.commitStep({
      before: episode,
      snapshot: big,
      lastExitCode: 0,
      nowMs: now,
      record: record(1),
      usage: { executorMs: 1, stateBytes: 800 * 1024 },
    });
    expect(out.kind).toBe("committed");
    const readsA = a.stats.reads;
    expect((await load(a, episode.id)).episode.snapshot).toBe(big);
    expect(a.stats.reads - readsA).toBe(1); // the Query only: chunks from this process's copy
    const readsB = b.stats.reads;
    const seenByB = (await load(b, episode.id)).episode;
    expect(seenByB.snapshot).toBe(big);
    expect(b.stats.reads - readsB).toBe(2); // the Query and one BatchGetItem of the chunks
    // A's copy is now stale: B commits version 2; A's next read serves B's state, not its copy.
    const newer = randomBytes(700 * 1024).toString("base64");
    await b.commitStep({
      before: seenByB,
      snapshot: newer,
      lastExitCode: 0,
      nowMs: now,
      record: record(2),
      usage: { executorMs: 1, stateBytes: 700 * 1024 },
    });
    const again = (await load(a, episode.id)).episode;
    expect(again.version).toBe(2);
    expect(again.snapshot).toBe(newer);
  });

  it("refuses a state over the limit; cuts code and outputs of a huge step in the record (flagged)", async () => {
    const repo = repository(1000);
    const now = Date.now();
    const { episode } = await repo.create(spec(now), { replaceExisting: false, nowMs: now });
    await expect(
      repo.commitStep({
        before: episode,
        snapshot: randomBytes(2000).toString("base64"),
        lastExitCode: 0,
        nowMs: now,
        record: record(1),
        usage: { executorMs: 1, stateBytes: 2000 },
      }),
    ).rejects.toMatchObject({ status: 413, code: "state_too_large" });
    // ~1 MB of random code (incompressible) and 2 MB of output
    const code = randomBytes(512 * 1024).toString("hex");
    const stdout = randomBytes(1024 * 1024).toString("hex");
    const out = await repo.commitStep({
      before: episode,
      snapshot: SMALL_SNAPSHOT,
      lastExitCode: 0,
      nowMs: now,
      record: record(1, code, stdout),
      usage: { executorMs: 1, stateBytes: 120 },
    });
    expect(out.kind).toBe("committed");
    const page = await repo.historyPage((await load(repo, episode.id)).episode, {
      afterStep: 0,
      limit: 10,
      maxBytes: 1e9,
    });
    const stored = page.steps[0];
    expect(stored?.history_truncated).toBe(true);
    expect(stored?.observation.stdout).toBe(stdout.slice(0, HISTORY_OUTPUT_CHARS));
    expect(code.startsWith(stored?.code ?? "x")).toBe(true);
    expect(stored?.metadata.last_code).toBe(stored?.code);
  });
});

describe("lifetime", () => {
  it("refreshes the head's TTL lazily: at most once per tenth of the ttl, never below the real expiry", async () => {
    const repo = repository();
    const t0 = Date.parse("2026-11-27T12:00:00Z");
    const { episode } = await repo.create(spec(t0, { ttlS: 1000 }), { replaceExisting: false, nowMs: t0 });
    const pk = episodePk(T, episode.id);
    const headTtl = async () =>
      Number(
        (await table.doc.send(new GetCommand({ TableName: table.tableName, Key: { pk, sk: HEAD_SK } }))).Item
          ?.expires_at,
      );
    expect(await headTtl()).toBe(t0 / 1000 + 1000);
    let current = (await load(repo, episode.id, t0)).episode;
    const writesPerStep: number[] = [];
    for (const atS of [0, 100, 150, 199, 250]) {
      const nowMs = t0 + atS * 1000;
      current = (await load(repo, episode.id, nowMs)).episode;
      const writes = repo.stats.writes;
      await repo.commitStep({
        before: current,
        snapshot: SMALL_SNAPSHOT,
        lastExitCode: 0,
        nowMs,
        record: record(current.version + 1),
        usage: { executorMs: 1, stateBytes: 120 },
      });
      writesPerStep.push(repo.stats.writes - writes);
      expect(await headTtl()).toBeGreaterThanOrEqual(nowMs / 1000 + 1000);
    }
    expect(writesPerStep).toEqual([1, 2, 1, 1, 2]);
    // The episode's own expiry is exact: ttl after its last step.
    expect((await load(repo, episode.id, t0 + 250_000)).episode.expiresAt).toBe(t0 / 1000 + 250 + 1000);
    expect(await repo.load(T, episode.id, { nowMs: t0 + 1_250_000 })).toBeNull();
  });

  it("a reset of an id starts a newer incarnation: old steps and request ids are gone", async () => {
    const repo = repository();
    const now = Date.now();
    const first = await repo.create(spec(now, { id: "reused" }), { replaceExisting: true, nowMs: now });
    await repo.commitStep({
      before: first.episode,
      snapshot: SMALL_SNAPSHOT,
      lastExitCode: 0,
      nowMs: now,
      record: record(1, "x", "", "once"),
      requestId: "once",
      usage: { executorMs: 1, stateBytes: 120 },
    });
    // The clock goes back a little (another instance): the new incarnation still sorts after.
    const second = await repo.create(spec(now - 5000, { id: "reused" }), {
      replaceExisting: true,
      nowMs: now - 5000,
    });
    expect(second.replaced).toBe(first.episode.incarnation);
    expect(second.episode.incarnation > first.episode.incarnation).toBe(true);
    const got = await load(repo, "reused", now, "once");
    expect(got.replay).toBeNull();
    expect(got.episode.version).toBe(0);
    const items = await table.doc.send(
      new QueryCommand({
        TableName: table.tableName,
        KeyConditionExpression: "pk = :pk",
        ExpressionAttributeValues: { ":pk": episodePk(T, "reused") },
      }),
    );
    expect((items.Items ?? []).map((i) => i.sk)).toEqual([HEAD_SK]);
  });

  it("sweepExpired removes an expired head and its history (what TTL and the roll-up do in AWS)", async () => {
    const repo = repository();
    const t0 = Date.now() - 10_000_000;
    const { episode } = await repo.create(spec(t0, { ttlS: 60 }), { replaceExisting: false, nowMs: t0 });
    await repo.commitStep({
      before: episode,
      snapshot: SMALL_SNAPSHOT,
      lastExitCode: 0,
      nowMs: t0,
      record: record(1),
      usage: { executorMs: 1, stateBytes: 120 },
    });
    await repo.sweepExpired(Date.now());
    const items = await table.doc.send(
      new QueryCommand({
        TableName: table.tableName,
        KeyConditionExpression: "pk = :pk",
        ExpressionAttributeValues: { ":pk": episodePk(T, episode.id) },
      }),
    );
    expect(items.Items).toEqual([]);
  });
});

describe("history pages and batch reads", () => {
  it("pages through many steps, oldest first, ending with a null lastStep", async () => {
    const repo = repository();
    const now = Date.now();
    let { episode } = await repo.create(spec(now), { replaceExisting: false, nowMs: now });
    for (let i = 1; i <= 25; i++) {
      const out = await repo.commitStep({
        before: episode,
        snapshot: SMALL_SNAPSHOT,
        lastExitCode: 0,
        nowMs: now,
        record: record(i, `s${i}`),
        usage: { executorMs: 1, stateBytes: 120 },
      });
      if (out.kind !== "committed") throw new Error(out.kind);
      episode = out.episode;
    }
    const codes: string[] = [];
    let after = 0;
    for (let pages = 0; pages < 10; pages++) {
      const page = await repo.historyPage(episode, { afterStep: after, limit: 10, maxBytes: 1e9 });
      codes.push(...page.steps.map((s) => s.code));
      if (page.lastStep === null) break;
      after = page.lastStep;
    }
    expect(codes).toEqual(Array.from({ length: 25 }, (_, i) => `s${i + 1}`));
    // A byte budget ends a page early (bounded memory per request).
    const small = await repo.historyPage(episode, { afterStep: 0, limit: 25, maxBytes: 1 });
    expect(small.steps).toHaveLength(1);
    expect(small.lastStep).toBe(1);
  });

  it("retries keys a BatchGetItem left unprocessed (the local DynamoDB front answering 64 KB per call)", async () => {
    // Prepare: the stack's own DynamoDB front, which answers a BatchGetItem with at most
    // `batchGetMaxBytes` of items and the rest in UnprocessedKeys, as DynamoDB does past 16 MB
    const front = await startDynalite({ path: null, batchGetMaxBytes: 64 * 1024 });
    const client = clientFor(front.endpoint);
    try {
      await createServiceTable(client, "coding-env-unprocessed");
      const onFront = () =>
        new DynamoDbEpisodeRepository({
          doc: DynamoDBDocumentClient.from(client),
          tableName: "coding-env-unprocessed",
          maxStateBytes: 3 * 1024 * 1024,
        });
      const writer = onFront();
      const now = Date.now();
      const { episode } = await writer.create(spec(now), { replaceExisting: false, nowMs: now });
      const big = randomBytes(900 * 1024).toString("base64");
      await writer.commitStep({
        before: episode,
        snapshot: big,
        lastExitCode: 0,
        nowMs: now,
        record: record(1),
        usage: { executorMs: 1, stateBytes: 900 * 1024 },
      });
      front.requestCounts.clear();
      // Act: another instance (the writer holds the snapshot it committed and reads nothing)
      const got = await load(onFront(), episode.id);
      // Assess: the chunks came back over several calls, each answering what the last left out
      expect(front.requestCounts.get("BatchGetItem") ?? 0).toBeGreaterThan(1);
      expect(got.episode.snapshot).toBe(big);
    } finally {
      client.destroy();
      await front.stop();
    }
  });

  it("keeps no per-request items: a replay comes from the recent request ids of the latest version", async () => {
    const repo = repository();
    const now = Date.now();
    let { episode } = await repo.create(spec(now), { replaceExisting: false, nowMs: now });
    for (let i = 1; i <= 18; i++) {
      const out = await repo.commitStep({
        before: (await load(repo, episode.id)).episode,
        snapshot: SMALL_SNAPSHOT,
        lastExitCode: 0,
        nowMs: now,
        record: record(i, `s${i}`, "", `rid-${i}`),
        requestId: `rid-${i}`,
        usage: { executorMs: 1, stateBytes: 120 },
      });
      if (out.kind !== "committed") throw new Error(out.kind);
      episode = out.episode;
    }
    expect((await load(repo, episode.id, now, "rid-18")).replay?.step).toBe(18);
    expect((await load(repo, episode.id, now, "rid-3")).replay?.code).toBe("s3");
    // 16 recent ids are kept: older ones are not replayed.
    expect((await load(repo, episode.id, now, "rid-2")).replay).toBeNull();
  });
});
