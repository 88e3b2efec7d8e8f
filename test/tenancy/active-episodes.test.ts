import { DeleteCommand, PutCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  batchGetLiveEpisodes,
  dynamoDbActiveEpisodes,
} from "../../functions/src/store/dynamodb-active-episodes.js";
import {
  type ActiveEpisodes,
  type LiveEpisodeLookup,
  QuotaExceededError,
} from "../../functions/src/tenancy/index.js";
import { startTestTable, type TestTable } from "./helpers/dynalite-table.js";

let table: TestTable;
const clockMs = Date.parse("2026-11-27T12:00:00Z");
const nowS = () => Math.floor(clockMs / 1000);

beforeAll(async () => {
  table = await startTestTable();
});
afterAll(async () => {
  await table.stop();
});

const episodeKey = (_tenantId: string, id: string) => ({ pk: { S: `EP#${id}` }, sk: { S: "META" } });

function activeFor(lookupLive?: LiveEpisodeLookup): ActiveEpisodes {
  return dynamoDbActiveEpisodes({
    client: table.client,
    tableName: table.tableName,
    lookupLive:
      lookupLive ??
      batchGetLiveEpisodes({
        client: table.client,
        tableName: table.tableName,
        episodeKey,
        now: () => new Date(clockMs),
      }),
  });
}

/** Reserves a slot: "ok", or "condition_failed" for the 429 (after reserve's own prune). */
async function reserve(
  active: ActiveEpisodes,
  tenantId: string,
  id: string,
  limit: number,
): Promise<"ok" | "condition_failed"> {
  try {
    await active.reserve(tenantId, id, limit, new Date(clockMs));
    return "ok";
  } catch (err) {
    if (err instanceof QuotaExceededError) return "condition_failed";
    throw err;
  }
}

/** What a reset does: reserve a slot, and write the episode only if the reservation held. */
async function createEpisode(
  active: ActiveEpisodes,
  tenantId: string,
  id: string,
  limit: number,
  ttlS = 3600,
): Promise<"ok" | "condition_failed"> {
  const reserved = await reserve(active, tenantId, id, limit);
  if (reserved === "ok") {
    await table.doc.send(
      new PutCommand({
        TableName: table.tableName,
        Item: { pk: `EP#${id}`, sk: "META", tenant_id: tenantId, expires_at: nowS() + ttlS },
      }),
    );
  }
  return reserved;
}

describe("active episodes", () => {
  it("admits up to the limit, refuses the next, and lets a reset replace an episode at the limit", async () => {
    const active = activeFor();
    for (const id of ["a1", "a2", "a3"]) expect(await createEpisode(active, "t-a", id, 3)).toBe("ok");
    expect(await createEpisode(active, "t-a", "a4", 3)).toBe("condition_failed");
    expect(await createEpisode(active, "t-a", "a2", 3)).toBe("ok"); // same id: replaces, no new slot
    expect((await active.listed("t-a")).ids.sort()).toEqual(["a1", "a2", "a3"]);
    // Nothing is dead, so pruning frees nothing and the 429 says when the first live one expires.
    const pruned = await active.prune("t-a");
    expect(pruned.pruned).toEqual([]);
    expect(pruned.live).toBe(3);
    expect(pruned.earliestExpiry?.getTime()).toBe((nowS() + 3600) * 1000);
    const err = active.quotaError(3, pruned.earliestExpiry, new Date(clockMs));
    expect(err).toBeInstanceOf(QuotaExceededError);
    expect(err.status).toBe(429);
    expect(err.details).toMatchObject({ quota: "active_episodes", limit: 3 });
    expect(err.headers?.["Retry-After"]).toBe("3600");
  });

  it("does not drift when TTL deletes or expires episodes behind its back: prune frees their slots", async () => {
    // Prepare: limit 3, all taken
    const active = activeFor();
    for (const id of ["b1", "b2", "b3"]) expect(await createEpisode(active, "t-b", id, 3, 60)).toBe("ok");
    // TTL deletes b1 (no hook runs), and b2 passes its expires_at but is not deleted yet.
    await table.doc.send(new DeleteCommand({ TableName: table.tableName, Key: { pk: "EP#b1", sk: "META" } }));
    await table.doc.send(
      new PutCommand({
        TableName: table.tableName,
        Item: { pk: "EP#b2", sk: "META", tenant_id: "t-b", expires_at: nowS() - 1 },
      }),
    );
    // Act: the set still counts them (never too low); the reset's reserve prunes them and goes through
    expect((await active.listed("t-b")).ids.sort()).toEqual(["b1", "b2", "b3"]);
    expect(await createEpisode(active, "t-b", "b4", 3)).toBe("ok");
    // Assess
    expect((await active.listed("t-b")).ids.sort()).toEqual(["b3", "b4"]);
    expect(await createEpisode(active, "t-b", "b5", 3)).toBe("ok");
    expect(await createEpisode(active, "t-b", "b6", 3)).toBe("condition_failed");
    expect((await active.listed("t-b")).ids.sort()).toEqual(["b3", "b4", "b5"]);
  });

  it("does not count another tenant's episode that reuses the id space", async () => {
    const active = activeFor();
    expect(await createEpisode(active, "t-c", "c1", 1)).toBe("ok");
    // The item under that key now belongs to someone else (e.g. the id was freed and taken).
    await table.doc.send(
      new PutCommand({
        TableName: table.tableName,
        Item: { pk: "EP#c1", sk: "META", tenant_id: "t-other", expires_at: nowS() + 60 },
      }),
    );
    expect((await active.prune("t-c")).pruned).toEqual(["c1"]);
  });

  it("release takes the id out of the set", async () => {
    const active = activeFor();
    expect(await createEpisode(active, "t-d", "d1", 1)).toBe("ok");
    await active.release("t-d", "d1");
    expect((await active.listed("t-d")).ids).toEqual([]);
    expect(await createEpisode(active, "t-d", "d2", 1)).toBe("ok");
  });

  it("never admits more than the limit under concurrent resets", async () => {
    const active = activeFor();
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => createEpisode(active, "t-e", `e${i}`, 5)),
    );
    expect(results.filter((r) => r === "ok")).toHaveLength(5);
    expect((await active.listed("t-e")).ids).toHaveLength(5);
  });

  it("prune never removes an id that a concurrent reset re-created after prune read the set", async () => {
    // Prepare: f1 is dead (deleted by TTL) and listed
    const base = activeFor();
    expect(await createEpisode(base, "t-f", "f1", 2)).toBe("ok");
    await table.doc.send(new DeleteCommand({ TableName: table.tableName, Key: { pk: "EP#f1", sk: "META" } }));
    const realLookup = batchGetLiveEpisodes({
      client: table.client,
      tableName: table.tableName,
      episodeKey,
      now: () => new Date(clockMs),
    });
    let calls = 0;
    // Act: between prune's read of the set and its write, a reset re-creates f1.
    const racing = activeFor(async (tenantId, ids) => {
      const answer = await realLookup(tenantId, ids);
      if (calls++ === 0) expect(await createEpisode(base, "t-f", "f1", 2)).toBe("ok");
      return answer;
    });
    const pruned = await racing.prune("t-f");
    // Assess: the stale "f1 is dead" was not written; the second attempt saw f1 alive.
    expect(calls).toBe(2);
    expect(pruned.pruned).toEqual([]);
    expect((await base.listed("t-f")).ids).toEqual(["f1"]);
  });

  it("reads many listed episodes in batches of 100", async () => {
    const active = activeFor();
    for (let i = 0; i < 130; i++) expect(await createEpisode(active, "t-g", `g${i}`, 200)).toBe("ok");
    for (let i = 0; i < 130; i += 2) {
      await table.doc.send(
        new DeleteCommand({ TableName: table.tableName, Key: { pk: `EP#g${i}`, sk: "META" } }),
      );
    }
    const pruned = await active.prune("t-g");
    expect(pruned.pruned).toHaveLength(65);
    expect(pruned.live).toBe(65);
  });
});
