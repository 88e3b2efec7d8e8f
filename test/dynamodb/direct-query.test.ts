// The local DynamoDB reads a Query's (and a Scan's) items straight from dynalite's LevelDB iterator
// (dynalite-query.ts) instead of dynalite's stream pipeline. Every answer must be the one dynalite
// itself gives: the same items in the same order, Count and ScannedCount, LastEvaluatedKey at Limit
// and at 1 MB, filters, projections, ExclusiveStartKey in both directions, consumed capacity, and
// the same refusals. Each query runs through both implementations against one store, in memory
// (tests, benchmarks) and on disk (`npm start`'s LevelDB).
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createStore, type DynaliteStore, runAction } from "../../functions/src/local/dynalite-store.js";
import { OperationError } from "../../functions/src/local/dynamodb-rules.js";
import { createEpisodesTable, TableName } from "./episodes-table.js";

const require = createRequire(import.meta.url);
type QueryTable = (...args: unknown[]) => void;
const db = require("dynalite/db") as { queryTable: QueryTable & { original?: QueryTable } };

/** dynalite's answer (or refusal) with its own queryTable, then with the direct one. */
async function both(
  store: DynaliteStore,
  input: Record<string, unknown>,
  op = "Query",
): Promise<[unknown, unknown]> {
  const direct = db.queryTable;
  const answer = async () => {
    try {
      return await runAction(store, op, structuredClone(input));
    } catch (err) {
      if (err instanceof OperationError) return { refused: err.body };
      throw err;
    }
  };
  expect(direct.original).toBeTypeOf("function");
  db.queryTable = direct.original as QueryTable;
  let theirs: unknown;
  try {
    theirs = await answer();
  } finally {
    db.queryTable = direct;
  }
  return [theirs, await answer()];
}

async function fill(store: DynaliteStore): Promise<void> {
  await createEpisodesTable(store);
  // Two partitions side by side (a read must not run into the neighbour), steps and a head item.
  for (const pk of ["EP#a", "EP#b"]) {
    for (let v = 1; v <= 30; v++) {
      await runAction(store, "PutItem", {
        TableName,
        Item: {
          pk: { S: pk },
          sk: { S: `M#${String(v).padStart(4, "0")}` },
          v: { N: String(v) },
          odd: { BOOL: v % 2 === 1 },
          nested: { M: { a: { S: `x${v}` }, b: { L: [{ N: "1" }, { S: "y" }] } } },
        },
      });
    }
    await runAction(store, "PutItem", {
      TableName,
      Item: { pk: { S: pk }, sk: { S: "META" }, head: { S: "h" } },
    });
  }
  // A partition whose items pass 1 MB in all: a page stops there.
  for (let i = 0; i < 8; i++) {
    await runAction(store, "PutItem", {
      TableName,
      Item: { pk: { S: "BIG" }, sk: { S: `S#${i}` }, blob: { S: "z".repeat(200_000) } },
    });
  }
}

const between = {
  KeyConditionExpression: "pk = :pk AND sk BETWEEN :lo AND :hi",
  ExpressionAttributeValues: { ":pk": { S: "EP#a" }, ":lo": { S: "M#" }, ":hi": { S: "META" } },
};

const cases: Array<[string, Record<string, unknown>]> = [
  [
    "a step's read: newest two, backward, consistent",
    { ...between, Limit: 2, ScanIndexForward: false, ConsistentRead: true },
  ],
  [
    "the whole partition forward",
    { KeyConditionExpression: "pk = :pk", ExpressionAttributeValues: { ":pk": { S: "EP#a" } } },
  ],
  [
    "the whole partition backward",
    {
      KeyConditionExpression: "pk = :pk",
      ExpressionAttributeValues: { ":pk": { S: "EP#a" } },
      ScanIndexForward: false,
    },
  ],
  [
    "a partition with nothing in it",
    { KeyConditionExpression: "pk = :pk", ExpressionAttributeValues: { ":pk": { S: "EP#none" } } },
  ],
  ["Limit exactly the number of items", { ...between, Limit: 31 }],
  ["Limit past the number of items", { ...between, Limit: 50 }],
  ["Limit 1", { ...between, Limit: 1 }],
  [
    "begins_with",
    {
      KeyConditionExpression: "pk = :pk AND begins_with(sk, :p)",
      ExpressionAttributeValues: { ":pk": { S: "EP#b" }, ":p": { S: "M#001" } },
    },
  ],
  [
    "sk < and backward with Limit",
    {
      KeyConditionExpression: "pk = :pk AND sk < :s",
      ExpressionAttributeValues: { ":pk": { S: "EP#b" }, ":s": { S: "M#0010" } },
      ScanIndexForward: false,
      Limit: 3,
    },
  ],
  [
    "sk <=",
    {
      KeyConditionExpression: "pk = :pk AND sk <= :s",
      ExpressionAttributeValues: { ":pk": { S: "EP#b" }, ":s": { S: "M#0010" } },
    },
  ],
  [
    "sk >",
    {
      KeyConditionExpression: "pk = :pk AND sk > :s",
      ExpressionAttributeValues: { ":pk": { S: "EP#b" }, ":s": { S: "M#0028" } },
    },
  ],
  [
    "sk >=",
    {
      KeyConditionExpression: "pk = :pk AND sk >= :s",
      ExpressionAttributeValues: { ":pk": { S: "EP#b" }, ":s": { S: "M#0028" } },
    },
  ],
  [
    "sk =",
    {
      KeyConditionExpression: "pk = :pk AND sk = :s",
      ExpressionAttributeValues: { ":pk": { S: "EP#b" }, ":s": { S: "META" } },
    },
  ],
  [
    "ExclusiveStartKey forward",
    { ...between, Limit: 4, ExclusiveStartKey: { pk: { S: "EP#a" }, sk: { S: "M#0007" } } },
  ],
  [
    "ExclusiveStartKey backward",
    {
      ...between,
      Limit: 4,
      ScanIndexForward: false,
      ExclusiveStartKey: { pk: { S: "EP#a" }, sk: { S: "M#0007" } },
    },
  ],
  [
    "a filter (Count below ScannedCount)",
    {
      ...between,
      Limit: 10,
      FilterExpression: "odd = :t",
      ExpressionAttributeValues: { ...between.ExpressionAttributeValues, ":t": { BOOL: true } },
    },
  ],
  [
    "a legacy QueryFilter",
    {
      KeyConditions: { pk: { ComparisonOperator: "EQ", AttributeValueList: [{ S: "EP#a" }] } },
      QueryFilter: { v: { ComparisonOperator: "GT", AttributeValueList: [{ N: "25" }] } },
    },
  ],
  [
    "a projection with a nested path",
    {
      ...between,
      Limit: 5,
      ProjectionExpression: "v, nested.b[1], #h",
      ExpressionAttributeNames: { "#h": "head" },
    },
  ],
  [
    "AttributesToGet",
    {
      KeyConditions: { pk: { ComparisonOperator: "EQ", AttributeValueList: [{ S: "EP#a" }] } },
      AttributesToGet: ["sk", "v"],
      Limit: 3,
    },
  ],
  ["Select COUNT", { ...between, Select: "COUNT" }],
  [
    "consumed capacity TOTAL, consistent",
    { ...between, ReturnConsumedCapacity: "TOTAL", ConsistentRead: true },
  ],
  [
    "consumed capacity INDEXES, eventually consistent",
    { ...between, Limit: 7, ReturnConsumedCapacity: "INDEXES" },
  ],
  [
    "a page that stops at 1 MB",
    {
      KeyConditionExpression: "pk = :pk",
      ExpressionAttributeValues: { ":pk": { S: "BIG" } },
      ReturnConsumedCapacity: "TOTAL",
    },
  ],
  [
    "the 1 MB page backward",
    {
      KeyConditionExpression: "pk = :pk",
      ExpressionAttributeValues: { ":pk": { S: "BIG" } },
      ScanIndexForward: false,
    },
  ],
  ["refused: a filter on a key attribute", { ...between, FilterExpression: "sk = :lo" }],
  [
    "refused: a start key outside the range",
    { ...between, ExclusiveStartKey: { pk: { S: "EP#a" }, sk: { S: "A" } } },
  ],
  ["refused: an unknown index", { ...between, IndexName: "nope" }],
];

const scans: Array<[string, Record<string, unknown>]> = [
  ["the whole table in 1 MB pages", {}],
  ["Limit", { Limit: 5 }],
  ["Limit and a start key", { Limit: 5, ExclusiveStartKey: { pk: { S: "EP#a" }, sk: { S: "M#0003" } } }],
  ["a filter", { FilterExpression: "v > :n", ExpressionAttributeValues: { ":n": { N: "27" } } }],
  [
    "a projection and consumed capacity",
    { ProjectionExpression: "pk, v", ReturnConsumedCapacity: "TOTAL", Limit: 12 },
  ],
  ["segment 0 of 3", { Segment: 0, TotalSegments: 3 }],
  ["segment 2 of 3", { Segment: 2, TotalSegments: 3 }],
];

describe.each([
  ["in memory", false],
  ["on disk", true],
])("direct Query read, %s", (_where, onDisk) => {
  const dir = onDisk ? mkdtempSync(join(tmpdir(), "direct-query-")) : null;
  const store = createStore(dir);
  beforeAll(() => fill(store));
  afterAll(async () => {
    await new Promise<void>((resolve) => store.db.close(() => resolve()));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it.each(cases)("%s: the same answer as dynalite's own read", async (_name, input) => {
    const [theirs, ours] = await both(store, { TableName, ...input });
    expect(ours).toEqual(theirs);
  });

  it.each(scans)("Scan, %s: the same answer as dynalite's own read", async (_name, input) => {
    const [theirs, ours] = await both(store, { TableName, ...input }, "Scan");
    expect(ours).toEqual(theirs);
  });

  it("a page stopped at 1 MB says where to continue, and the next page goes on from there", async () => {
    const input = {
      TableName,
      KeyConditionExpression: "pk = :pk",
      ExpressionAttributeValues: { ":pk": { S: "BIG" } },
    };
    const first = await runAction(store, "Query", input);
    expect((first.Items as unknown[]).length).toBeLessThan(8);
    expect(first.LastEvaluatedKey).toBeDefined();
    const rest = await runAction(store, "Query", { ...input, ExclusiveStartKey: first.LastEvaluatedKey });
    expect((first.Items as unknown[]).length + (rest.Items as unknown[]).length).toBe(8);
  });
});
