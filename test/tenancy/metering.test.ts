import type { AttributeValue } from "@aws-sdk/client-dynamodb";
import { GetCommand, PutCommand, QueryCommand } from "@aws-sdk/lib-dynamodb";
import { marshall } from "@aws-sdk/util-dynamodb";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { processStreamBatch, type StreamRecord } from "../../functions/src/metering/stream-aggregator.js";
import { episodePk, HEAD_SK, versionSk } from "../../functions/src/store/layout.js";
import {
  billedMs,
  formatScaled,
  gbSeconds,
  nextUtcMidnight,
  parseScaled,
  usageDay,
} from "../../functions/src/tenancy/index.js";
import { startTestTable, type TestTable } from "./helpers/dynalite-table.js";
import { executionInserted, headInserted, insertOf, stepInserted } from "./helpers/stream-records.js";

let table: TestTable;

beforeAll(async () => {
  table = await startTestTable();
});
afterAll(async () => {
  await table.stop();
});

async function usageItem(tenantId: string, day: string): Promise<Record<string, unknown> | undefined> {
  const out = await table.doc.send(
    new GetCommand({
      TableName: table.tableName,
      Key: { pk: `TENANT#${tenantId}`, sk: `USAGE#${day}` },
      ConsistentRead: true,
    }),
  );
  return out.Item;
}

const at = new Date("2026-11-27T23:59:59.500Z");

describe("usage arithmetic", () => {
  it("books on the UTC day and resets at the next UTC midnight", () => {
    expect(usageDay(at)).toBe("2026-11-27");
    expect(nextUtcMidnight(at).toISOString()).toBe("2026-11-28T00:00:00.000Z");
    expect(nextUtcMidnight(new Date("2026-12-31T10:00:00Z")).toISOString()).toBe("2027-01-01T00:00:00.000Z");
  });

  it("bills whole milliseconds, rounded up", () => {
    expect(billedMs(0.42)).toBe(1);
    expect(billedMs(12)).toBe(12);
    expect(billedMs(-3)).toBe(0);
    expect(billedMs(Number.NaN)).toBe(0);
  });

  it("computes GB-seconds exactly: ms x MB / 1 024 000", () => {
    expect(gbSeconds(1000, 1024)).toBe("1");
    expect(gbSeconds(1, 1024)).toBe("0.001");
    expect(gbSeconds(1, 1)).toBe("0.0000009765625");
    expect(gbSeconds(0, 1024)).toBe("0");
    expect(() => gbSeconds(1.5, 1024)).toThrow();
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10_000_000 }), fc.integer({ min: 1, max: 10_240 }), (ms, mb) => {
        // Exact: the decimal times 1 024 000 gives back ms x MB.
        const scaled = parseScaled(gbSeconds(ms, mb), 13);
        expect(scaled * 1_024_000n).toBe(BigInt(ms) * BigInt(mb) * 10n ** 13n);
      }),
    );
  });

  it("parses and formats DynamoDB decimals", () => {
    expect(parseScaled("1.5", 3)).toBe(1500n);
    expect(parseScaled("1E-3", 3)).toBe(1n);
    expect(parseScaled("2.5e2", 0)).toBe(250n);
    expect(parseScaled("-0.25", 2)).toBe(-25n);
    expect(parseScaled("0.0001", 2)).toBe(0n);
    expect(formatScaled(1234n, 3)).toBe("1.234");
    expect(formatScaled(1000n, 3)).toBe("1");
    expect(formatScaled(5n, 3)).toBe("0.005");
    expect(() => parseScaled("abc", 2)).toThrow();
  });
});

describe("processStreamBatch: usage rolled up from the change stream", () => {
  const roll = (records: StreamRecord[], executorMemoryMb = 1024) =>
    processStreamBatch(records, { doc: table.doc, tableName: table.tableName, executorMemoryMb });

  it("adds committed steps and uncommitted executions per tenant and day, one update per tenant-day", async () => {
    // Prepare: 3 steps and 1 lost race of t-add on one day, 1 step the next day, 1 step of another tenant
    const records = [
      stepInserted("t-add", "2026-11-27T10:00:00Z", 2, 300),
      stepInserted("t-add", "2026-11-27T11:00:00Z", 3, 300),
      stepInserted("t-add", "2026-11-27T23:59:59Z", 1, 0),
      executionInserted("t-add", "2026-11-27T12:00:00Z", 4),
      stepInserted("t-add", "2026-11-28T00:00:00Z", 7, 1),
      stepInserted("t-other", "2026-11-27T10:00:00Z", 9, 9),
    ];
    const before = table.requests();
    // Act
    await roll(records, 512);
    // Assess
    expect(table.requests() - before).toBe(3);
    expect(await usageItem("t-add", "2026-11-27")).toMatchObject({
      steps: 3,
      executions: 4,
      executor_ms: 10,
      gb_seconds: Number(gbSeconds(10, 512)),
      state_bytes: 600,
      episodes_created: 0,
      tenant_id: "t-add",
      usage_date: "2026-11-27",
    });
    expect(await usageItem("t-add", "2026-11-28")).toMatchObject({ steps: 1, executions: 1, executor_ms: 7 });
    expect(await usageItem("t-other", "2026-11-27")).toMatchObject({ steps: 1, executor_ms: 9 });
  });

  it("counts every step of concurrent batches exactly (ADD, no read-modify-write)", async () => {
    const batches = Array.from({ length: 20 }, () =>
      roll(Array.from({ length: 5 }, () => stepInserted("t-race", "2026-11-27T10:00:00Z", 3, 10))),
    );
    await Promise.all(batches);
    expect(await usageItem("t-race", "2026-11-27")).toMatchObject({
      steps: 100,
      executor_ms: 300,
      state_bytes: 1000,
    });
  });

  it("counts a new incarnation of a head as an episode created, not a TTL refresh nor a fork's copied steps", async () => {
    const created = headInserted("t-eps", "e1", "2026-11-27T10:00:00Z", "000000000001aaaaaaaa", 50);
    const image = created.dynamodb.NewImage as Record<string, AttributeValue>;
    const refreshed: StreamRecord = {
      eventName: "MODIFY",
      dynamodb: {
        Keys: created.dynamodb.Keys,
        OldImage: image,
        NewImage: { ...image, expires_at: { N: "99" } },
      },
    };
    const replaced: StreamRecord = {
      eventName: "MODIFY",
      dynamodb: {
        Keys: created.dynamodb.Keys,
        OldImage: image,
        NewImage: { ...image, incarnation: { S: "000000000002bbbbbbbb" } },
      },
    };
    // A fork's copy of a step: no usage attributes.
    const copied = insertOf({
      pk: episodePk("t-eps", "e2"),
      sk: versionSk("000000000003cccccccc", 1),
      at: 1,
      rec: "{}",
    });
    await roll([created, refreshed, replaced, copied]);
    expect(await usageItem("t-eps", "2026-11-27")).toMatchObject({
      episodes_created: 2,
      state_bytes: 100,
      steps: 0,
    });
  });

  it("ignores items outside episode partitions (API keys, usage, connections)", async () => {
    const before = table.requests();
    await roll([
      insertOf({ pk: "KEY#abc", sk: HEAD_SK, tenant_id: "t-keys", day: "2026-11-27", incarnation: "x" }),
      insertOf({
        pk: "TENANT#t-keys",
        sk: "USAGE#2026-11-27",
        steps: 5,
        tenant: "t-keys",
        day: "2026-11-27",
        executor_ms: 5,
      }),
      insertOf({ pk: "WS#c1", sk: "CONN", tenant: "t-keys", day: "2026-11-27", executor_ms: 5 }),
    ]);
    expect(table.requests()).toBe(before);
    expect(await usageItem("t-keys", "2026-11-27")).toBeUndefined();
  });

  it("deletes an episode's history when TTL removes its head, sparing a newer incarnation and user deletes", async () => {
    // Prepare: incarnation A (expired) with 2 steps, then B (a reset after the expiry) with 1
    const pk = episodePk("t-ttl", "e1");
    const incA = "000000000001aaaaaaaa";
    const incB = "000000000002bbbbbbbb";
    for (const [inc, v] of [
      [incA, 1],
      [incA, 2],
      [incB, 1],
    ] as const) {
      await table.doc.send(
        new PutCommand({ TableName: table.tableName, Item: { pk, sk: versionSk(inc, v), rec: "{}" } }),
      );
    }
    const oldHead = marshall({ pk, sk: HEAD_SK, tenant_id: "t-ttl", incarnation: incA, expires_at: 1 });
    const removal = (byTtl: boolean): StreamRecord => ({
      eventName: "REMOVE",
      dynamodb: { Keys: marshall({ pk, sk: HEAD_SK }), OldImage: oldHead },
      ...(byTtl ? { userIdentity: { type: "Service", principalId: "dynamodb.amazonaws.com" } as const } : {}),
    });
    // Act + Assess: a user's delete is the API's to clean up; a TTL removal is ours
    await roll([removal(false)]);
    expect(await versionSks(pk)).toHaveLength(3);
    await roll([removal(true)]);
    expect(await versionSks(pk)).toEqual([versionSk(incB, 1)]);
  });
});

async function versionSks(pk: string): Promise<string[]> {
  const out = await table.doc.send(
    new QueryCommand({
      TableName: table.tableName,
      KeyConditionExpression: "pk = :pk",
      ExpressionAttributeValues: { ":pk": pk },
      ConsistentRead: true,
    }),
  );
  return (out.Items ?? []).map((i) => String(i.sk));
}
