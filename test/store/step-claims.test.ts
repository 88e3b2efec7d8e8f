// The step claim on real dynalite: the conditional PutItem that lets one step of an episode run at
// a time on any number of API instances (store/dynamodb-step-claims.ts), what it costs, and that
// nothing else of the episode sees the claim item.
import { randomBytes } from "node:crypto";
import { GetCommand } from "@aws-sdk/lib-dynamodb";
import { marshall } from "@aws-sdk/util-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Episode, NewEpisode, StepRecord } from "../../functions/src/core/episode-repository.js";
import { DynamoDbEpisodeRepository } from "../../functions/src/store/dynamodb-episode-repository.js";
import { decodeStreamRecords } from "../../functions/src/store/dynamodb-usage-stream.js";
import { CLAIM_SK, episodePk } from "../../functions/src/store/layout.js";
import { startTestTable, type TestTable } from "../tenancy/helpers/dynalite-table.js";

let table: TestTable;
const T = "tenant-claims";
let seq = 0;

beforeAll(async () => {
  table = await startTestTable("coding-env-claims");
});
afterAll(async () => {
  await table.stop();
});

const repository = () =>
  new DynamoDbEpisodeRepository({ doc: table.doc, tableName: table.tableName, maxStateBytes: 1 << 20 });

function spec(nowMs: number, id = `ep_${++seq}_${randomBytes(4).toString("hex")}`): NewEpisode {
  return {
    id,
    tenantId: T,
    policy: "openenv",
    additionalImports: [],
    stepTimeoutS: 30,
    ttlS: 86_400,
    createdAtMs: nowMs,
    snapshot: null,
  };
}

function record(step: number): StepRecord {
  return {
    step,
    code: "print(1)",
    observation: { stdout: "1\n", stderr: "", exit_code: 0 },
    reward: 0.1,
    done: false,
    metadata: { last_code: "print(1)" },
    info: {
      duration_ms: 0.6,
      timed_out: false,
      stdout_truncated: false,
      stderr_truncated: false,
      dropped_variables: [],
    },
    started_at: new Date().toISOString(),
    duration_ms: 3,
  };
}

async function commit(repo: DynamoDbEpisodeRepository, before: Episode, nowMs: number): Promise<Episode> {
  const out = await repo.commitStep({
    before,
    snapshot: null,
    lastExitCode: 0,
    nowMs,
    record: record(before.version + 1),
    usage: { executorMs: 1, stateBytes: 0 },
  });
  if (out.kind !== "committed") throw new Error(out.kind);
  return out.episode;
}

const claimItem = async (ep: Episode) =>
  (
    await table.doc.send(
      new GetCommand({
        TableName: table.tableName,
        Key: { pk: episodePk(ep.tenantId, ep.id), sk: CLAIM_SK },
        ConsistentRead: true,
      }),
    )
  ).Item;

describe("the step claim on DynamoDB", () => {
  it("is one conditional write of 1 WRU; a second attempt on the same version is refused and told whose it is", async () => {
    // Prepare
    const repo = repository();
    const now = Date.now();
    const { episode } = await repo.create(spec(now), { replaceExisting: false, nowMs: now });
    // Act
    const before = { ...repo.stats };
    const first = await repo.claimStep({ episode, nowMs: now, untilMs: now + 38_000, requestId: "r-1" });
    const units = repo.stats.writeUnits - before.writeUnits;
    const other = await repo.claimStep({ episode, nowMs: now + 1, untilMs: now + 38_001 });
    const twin = await repo.claimStep({ episode, nowMs: now + 1, untilMs: now + 38_001, requestId: "r-1" });
    // Assert
    expect(first.kind).toBe("claimed");
    expect(units).toBe(1);
    expect(other).toEqual({ kind: "held", sameRequest: false, untilMs: now + 38_000 });
    expect(twin).toEqual({ kind: "held", sameRequest: true, untilMs: now + 38_000 });
  });

  it("a committed step's claim is superseded by the next version without a release", async () => {
    const repo = repository();
    const now = Date.now();
    const { episode } = await repo.create(spec(now), { replaceExisting: false, nowMs: now });
    expect((await repo.claimStep({ episode, nowMs: now, untilMs: now + 60_000 })).kind).toBe("claimed");
    const next = await commit(repo, episode, now);
    // A step that read the old version (stale) is still refused; one that read the new one runs.
    expect((await repo.claimStep({ episode, nowMs: now, untilMs: now + 60_000 })).kind).toBe("held");
    expect((await repo.claimStep({ episode: next, nowMs: now, untilMs: now + 60_000 })).kind).toBe("claimed");
  });

  it("a lapsed claim (its attempt crashed) does not block; a release frees only its own attempt's claim", async () => {
    const repo = repository();
    const now = Date.now();
    const { episode } = await repo.create(spec(now), { replaceExisting: false, nowMs: now });
    const lost = await repo.claimStep({ episode, nowMs: now, untilMs: now + 1_000 });
    const later = await repo.claimStep({ episode, nowMs: now + 1_001, untilMs: now + 60_000 });
    if (lost.kind !== "claimed" || later.kind !== "claimed") throw new Error("not claimed");
    // The crashed attempt's late release must not free the claim its successor holds.
    await repo.releaseStep(episode, lost.claim);
    expect((await repo.claimStep({ episode, nowMs: now + 2_000, untilMs: now + 60_000 })).kind).toBe("held");
    await repo.releaseStep(episode, later.claim);
    expect(await claimItem(episode)).toBeUndefined();
    expect((await repo.claimStep({ episode, nowMs: now + 2_000, untilMs: now + 60_000 })).kind).toBe(
      "claimed",
    );
  });

  it("a claim of the incarnation before a reset does not block the new one; a stale step of the old one is refused", async () => {
    const repo = repository();
    const now = Date.now();
    const id = `ep_reset_${randomBytes(4).toString("hex")}`;
    const { episode: old } = await repo.create(spec(now, id), { replaceExisting: true, nowMs: now });
    expect((await repo.claimStep({ episode: old, nowMs: now, untilMs: now + 60_000 })).kind).toBe("claimed");
    const { episode: fresh } = await repo.create(spec(now + 5, id), {
      replaceExisting: true,
      nowMs: now + 5,
    });
    expect((await repo.claimStep({ episode: fresh, nowMs: now + 6, untilMs: now + 60_000 })).kind).toBe(
      "claimed",
    );
    expect((await repo.claimStep({ episode: old, nowMs: now + 7, untilMs: now + 60_000 })).kind).toBe("held");
  });

  it("the local expiry sweep removes a lapsed claim and keeps a live one", async () => {
    const repo = repository();
    const now = Date.now();
    const { episode: lapsed } = await repo.create(spec(now), { replaceExisting: false, nowMs: now });
    const { episode: live } = await repo.create(spec(now), { replaceExisting: false, nowMs: now });
    await repo.claimStep({ episode: lapsed, nowMs: now, untilMs: now - 5_000 });
    await repo.claimStep({ episode: live, nowMs: now, untilMs: now + 60_000 });
    await repo.sweepExpired(now);
    expect(await claimItem(lapsed)).toBeUndefined();
    expect(await claimItem(live)).toBeDefined();
  });

  it("is invisible to the rest of the episode: load, history, and the usage roll-up; delete removes it", async () => {
    const repo = repository();
    const now = Date.now();
    const { episode } = await repo.create(spec(now), { replaceExisting: false, nowMs: now });
    const one = await commit(repo, episode, now);
    expect((await repo.claimStep({ episode: one, nowMs: now, untilMs: now + 60_000 })).kind).toBe("claimed");
    const loaded = await repo.load(T, one.id, { nowMs: now });
    expect(loaded?.episode.version).toBe(1);
    expect((await repo.historyPage(one, { afterStep: 0, limit: 10, maxBytes: 1 << 20 })).steps).toHaveLength(
      1,
    );
    const item = await claimItem(one);
    expect(item).toBeDefined();
    const decoded = decodeStreamRecords([
      {
        eventName: "INSERT",
        dynamodb: {
          Keys: marshall({ pk: item?.pk, sk: item?.sk }),
          NewImage: marshall(item ?? {}),
        },
      },
    ]);
    expect(decoded).toEqual({ usage: [], expired: [] });
    expect(await repo.delete(one)).toBe(true);
    expect(await claimItem(one)).toBeUndefined();
  });
});
