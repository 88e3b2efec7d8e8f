// The stream records of the table's layout, read as usage events and TTL expiries (pure: no store).
// The roll-up of these records into usage items against dynalite: test/tenancy/metering.test.ts.
import { marshall } from "@aws-sdk/util-dynamodb";
import { describe, expect, it } from "vitest";
import { decodeStreamRecords, type StreamRecord } from "../../functions/src/store/dynamodb-usage-stream.js";
import { episodePk, HEAD_SK, versionSk } from "../../functions/src/store/layout.js";
import {
  executionInserted,
  headInserted,
  insertOf,
  stepInserted,
} from "../tenancy/helpers/stream-records.js";

const INCARNATION = "0000000000010000aaaa";

describe("decodeStreamRecords", () => {
  it("reads committed steps, uncommitted executions and new heads as usage events", () => {
    const { usage, expired } = decodeStreamRecords([
      stepInserted("acme", "2026-11-01T10:00:00Z", 12, 300),
      executionInserted("acme", "2026-11-01T10:00:01Z", 7),
      headInserted("acme", "e1", "2026-11-02T00:00:00Z", INCARNATION, 50),
    ]);
    expect(usage).toEqual([
      {
        kind: "execution",
        tenantId: "acme",
        day: "2026-11-01",
        executorMs: 12,
        committed: true,
        stateBytes: 300,
      },
      {
        kind: "execution",
        tenantId: "acme",
        day: "2026-11-01",
        executorMs: 7,
        committed: false,
        stateBytes: 0,
      },
      { kind: "episode_created", tenantId: "acme", day: "2026-11-02", stateBytes: 50 },
    ]);
    expect(expired).toEqual([]);
  });

  it("ignores a head's TTL refresh, a fork's copies, updates of written-once items and other partitions", () => {
    const head = headInserted("acme", "e1", "2026-11-02T00:00:00Z", INCARNATION);
    const refresh: StreamRecord = {
      eventName: "MODIFY",
      dynamodb: { ...head.dynamodb, OldImage: head.dynamodb.NewImage },
    };
    const step = stepInserted("acme", "2026-11-01T10:00:00Z", 12, 300);
    const modifiedStep: StreamRecord = { ...step, eventName: "MODIFY" };
    const forkCopy = insertOf({ pk: episodePk("acme", "fork"), sk: versionSk(INCARNATION, 1), rec: "{}" });
    const usageItem = insertOf({ pk: "TENANT#acme", sk: "USAGE#2026-11-01", steps: 1 });
    const keyItem = insertOf({ pk: "KEY#abc", sk: "META", tenant_id: "acme", day: "2026-11-01" });
    const { usage } = decodeStreamRecords([refresh, modifiedStep, forkCopy, usageItem, keyItem]);
    expect(usage).toEqual([]);
  });

  it("reports heads removed by DynamoDB's TTL, not those a user deleted", () => {
    const oldHead = marshall({ pk: episodePk("acme", "e1"), sk: HEAD_SK, incarnation: INCARNATION });
    const keys = marshall({ pk: episodePk("acme", "e1"), sk: HEAD_SK });
    const byTtl: StreamRecord = {
      eventName: "REMOVE",
      dynamodb: { Keys: keys, OldImage: oldHead },
      userIdentity: { type: "Service", principalId: "dynamodb.amazonaws.com" },
    };
    const byUser: StreamRecord = { eventName: "REMOVE", dynamodb: { Keys: keys, OldImage: oldHead } };
    const { usage, expired } = decodeStreamRecords([byTtl, byUser]);
    expect(usage).toEqual([]);
    expect(expired).toEqual([{ tenantId: "acme", episodeId: "e1", incarnation: INCARNATION }]);
  });
});
