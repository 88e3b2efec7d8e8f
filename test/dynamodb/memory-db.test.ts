// Without a data folder the local DynamoDB keeps its data in an ordered in-memory store
// (dynalite-memory-db.ts) instead of dynalite's memory-level. The same operations run on a store of
// each kind, through dynalite's own actions and the front's direct paths (planned PutItem and its
// commit, the direct Query): every answer, refusal and the final contents must be the same.
import { describe, expect, it } from "vitest";
import {
  commitWrite,
  createStore,
  type DynaliteStore,
  memoryDbOf,
  PlannedConditionFailure,
  planWrite,
  runAction,
  validate,
} from "../../functions/src/local/dynalite-store.js";
import { OperationError } from "../../functions/src/local/dynamodb-rules.js";
import { createEpisodesTable, TableName } from "./episodes-table.js";

type Op = [string, Record<string, unknown>];

/** The answer without what differs between any two tables (creation times, random ids). */
function comparable(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(comparable);
  if (value === null || typeof value !== "object") return value;
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => [k, /DateTime$|^TableId$/.test(k) ? "-" : comparable(v)]),
  );
}

async function answer(store: DynaliteStore, op: Op): Promise<unknown> {
  const got = comparable(await rawAnswer(store, op)) as { Responses?: Record<string, unknown[]> };
  // dynalite's BatchGetItem answers its reads in the order they complete (DynamoDB: in no order).
  if (op[0] === "BatchGetItem" && got.Responses) {
    for (const items of Object.values(got.Responses))
      items.sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));
  }
  return got;
}

async function rawAnswer(store: DynaliteStore, [op, input]: Op): Promise<unknown> {
  try {
    if (op === "FrontPut") {
      const plan = await planWrite(store, "PutItem", validate(store, "PutItem", structuredClone(input)));
      await commitWrite(store, plan);
      return { planned: plan.result, old: plan.oldItem ?? null };
    }
    return await runAction(store, op, structuredClone(input));
  } catch (err) {
    if (err instanceof PlannedConditionFailure) return { refused: err.failure.body, checked: err.oldItem };
    if (err instanceof OperationError) return { refused: err.body };
    throw err;
  }
}

async function bothStores(): Promise<[DynaliteStore, DynaliteStore]> {
  const ours = createStore(null);
  const theirs = createStore(null, { memory: "dynalite" });
  expect(memoryDbOf(ours)).toBeDefined();
  expect(memoryDbOf(theirs)).toBeUndefined();
  await createEpisodesTable(ours);
  await createEpisodesTable(theirs);
  return [ours, theirs];
}

const key = (pk: string, sk: string) => ({ pk: { S: pk }, sk: { S: sk } });
const everything = (): Op[] => [
  ["Scan", { TableName }],
  [
    "Query",
    { TableName, KeyConditionExpression: "pk = :p", ExpressionAttributeValues: { ":p": { S: "EP#a" } } },
  ],
  [
    "Query",
    { TableName, KeyConditionExpression: "pk = :p", ExpressionAttributeValues: { ":p": { S: "EP#b" } } },
  ],
  ["ListTables", {}],
];

describe("the ordered in-memory store", () => {
  it("answers a scripted sequence as dynalite's memory-level store does", async () => {
    const [ours, theirs] = await bothStores();
    const ops: Op[] = [
      ["DescribeTable", { TableName }],
      ["PutItem", { TableName, Item: { ...key("EP#a", "META"), v: { N: "1.50" }, l: { L: [{ S: "x" }] } } }],
      [
        "FrontPut",
        {
          TableName,
          Item: { ...key("EP#a", "M#1"), r: { B: "AAEC" } },
          ConditionExpression: "attribute_not_exists(pk)",
        },
      ],
      [
        "FrontPut",
        {
          TableName,
          Item: { ...key("EP#a", "M#1") },
          ConditionExpression: "attribute_not_exists(pk)",
          ReturnValuesOnConditionCheckFailure: "ALL_OLD",
        },
      ],
      [
        "FrontPut",
        {
          TableName,
          Item: { ...key("EP#a", "META"), v: { N: "2" } },
          ReturnValues: "ALL_OLD",
          ReturnConsumedCapacity: "TOTAL",
        },
      ],
      ["FrontPut", { TableName: "nowhere", Item: key("EP#a", "x") }],
      [
        "GetItem",
        { TableName, Key: key("EP#a", "META"), ConsistentRead: true, ReturnConsumedCapacity: "TOTAL" },
      ],
      ["GetItem", { TableName, Key: key("EP#a", "none") }],
      ["GetItem", { TableName: "nowhere", Key: key("EP#a", "none") }],
      ["DescribeTable", { TableName: "nowhere" }],
      [
        "Query",
        {
          TableName: "nowhere",
          KeyConditionExpression: "pk = :p",
          ExpressionAttributeValues: { ":p": { S: "x" } },
        },
      ],
      [
        "UpdateItem",
        {
          TableName,
          Key: key("EP#a", "META"),
          UpdateExpression: "ADD v :one SET m = :m",
          ExpressionAttributeValues: { ":one": { N: "1" }, ":m": { M: { a: { S: "y" } } } },
          ReturnValues: "ALL_NEW",
        },
      ],
      [
        "UpdateItem",
        {
          TableName,
          Key: key("EP#b", "M#9"),
          UpdateExpression: "SET n = :n",
          ConditionExpression: "attribute_exists(pk)",
          ExpressionAttributeValues: { ":n": { N: "1" } },
        },
      ],
      ["PutItem", { TableName, Item: { ...key("EP#b", "M#2"), s: { SS: ["a", "b"] } } }],
      ["PutItem", { TableName, Item: { ...key("EP#b", "M#1") } }],
      [
        "BatchGetItem",
        {
          RequestItems: {
            [TableName]: { Keys: [key("EP#a", "META"), key("EP#b", "M#2"), key("EP#z", "x")] },
          },
        },
      ],
      [
        "BatchWriteItem",
        {
          RequestItems: {
            [TableName]: [
              { PutRequest: { Item: key("EP#c", "A") } },
              { DeleteRequest: { Key: key("EP#b", "M#1") } },
            ],
          },
        },
      ],
      [
        "Query",
        {
          TableName,
          Limit: 1,
          ScanIndexForward: false,
          KeyConditionExpression: "pk = :p AND sk BETWEEN :lo AND :hi",
          ExpressionAttributeValues: { ":p": { S: "EP#a" }, ":lo": { S: "M#" }, ":hi": { S: "META" } },
        },
      ],
      [
        "Query",
        {
          TableName,
          ExclusiveStartKey: key("EP#a", "M#1"),
          KeyConditionExpression: "pk = :p",
          ExpressionAttributeValues: { ":p": { S: "EP#a" } },
        },
      ],
      ["Scan", { TableName, Limit: 2 }],
      ["Scan", { TableName, FilterExpression: "attribute_exists(v)", ReturnConsumedCapacity: "TOTAL" }],
      ["DeleteItem", { TableName, Key: key("EP#a", "M#1"), ReturnValues: "ALL_OLD" }],
      ["DeleteItem", { TableName, Key: key("EP#a", "M#1"), ConditionExpression: "attribute_exists(pk)" }],
      [
        "CreateTable",
        {
          TableName: "other",
          AttributeDefinitions: [{ AttributeName: "id", AttributeType: "N" }],
          KeySchema: [{ AttributeName: "id", KeyType: "HASH" }],
          BillingMode: "PAY_PER_REQUEST",
        },
      ],
      ...everything(),
    ];
    for (const op of ops) expect(await answer(ours, op), op[0]).toEqual(await answer(theirs, op));
    await new Promise((r) => setTimeout(r, 20));
    for (const op of [
      ["PutItem", { TableName: "other", Item: { id: { N: "-3.5" }, x: { S: "y" } } }],
      ["PutItem", { TableName: "other", Item: { id: { N: "12" } } }],
      ["Scan", { TableName: "other" }],
      ["DeleteTable", { TableName: "other" }],
    ] as Op[]) {
      expect(await answer(ours, op), op[0]).toEqual(await answer(theirs, op));
    }
    await new Promise((r) => setTimeout(r, 50));
    for (const op of [...everything(), ["DescribeTable", { TableName: "other" }] as Op]) {
      expect(await answer(ours, op), op[0]).toEqual(await answer(theirs, op));
    }
  });

  it("answers random writes and reads as dynalite's memory-level store does", async () => {
    const [ours, theirs] = await bothStores();
    let seed = 7;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const pks = ["EP#a", "EP#b", "EP#c"];
    const sks = ["CLAIM", "META", "M#1", "M#2", "M#3", "M#10"];
    for (let i = 0; i < 300; i++) {
      const pk = pks[rand(pks.length)] as string;
      const sk = sks[rand(sks.length)] as string;
      const ops: Op[] = [
        [
          "FrontPut",
          {
            TableName,
            Item: { ...key(pk, sk), v: { N: String(i) } },
            ConditionExpression: "attribute_not_exists(pk) OR v < :v",
            ExpressionAttributeValues: { ":v": { N: String(rand(400)) } },
            ReturnValuesOnConditionCheckFailure: "ALL_OLD",
          },
        ],
        [
          "PutItem",
          { TableName, Item: { ...key(pk, sk), w: { S: "x".repeat(rand(3000)) } }, ReturnValues: "ALL_OLD" },
        ],
        [
          "UpdateItem",
          {
            TableName,
            Key: key(pk, sk),
            UpdateExpression: "ADD n :one",
            ExpressionAttributeValues: { ":one": { N: "1" } },
            ReturnValues: "UPDATED_NEW",
          },
        ],
        ["DeleteItem", { TableName, Key: key(pk, sk), ReturnValues: "ALL_OLD" }],
        ["GetItem", { TableName, Key: key(pk, sk), ConsistentRead: true }],
        [
          "Query",
          {
            TableName,
            Limit: 1 + rand(4),
            ScanIndexForward: rand(2) === 0,
            ConsistentRead: true,
            KeyConditionExpression: "pk = :p AND sk BETWEEN :lo AND :hi",
            ExpressionAttributeValues: { ":p": { S: pk }, ":lo": { S: "M#" }, ":hi": { S: "META" } },
            ReturnConsumedCapacity: "TOTAL",
          },
        ],
        [
          "Query",
          {
            TableName,
            KeyConditionExpression: "pk = :p AND begins_with(sk, :m)",
            ExpressionAttributeValues: { ":p": { S: pk }, ":m": { S: "M#1" } },
          },
        ],
      ];
      const op = ops[rand(ops.length)] as Op;
      expect(await answer(ours, op), `${i} ${op[0]}`).toEqual(await answer(theirs, op));
    }
    for (const op of everything()) expect(await answer(ours, op)).toEqual(await answer(theirs, op));
  });

  it("hands dynalite's actions copies: changing an answer changes nothing stored", async () => {
    const [ours] = await bothStores();
    await runAction(ours, "PutItem", { TableName, Item: { ...key("EP#a", "META"), v: { N: "1" } } });
    const got = (await runAction(ours, "GetItem", { TableName, Key: key("EP#a", "META") })) as {
      Item: Record<string, { N?: string }>;
    };
    (got.Item.v as { N: string }).N = "99";
    const again = (await runAction(ours, "GetItem", { TableName, Key: key("EP#a", "META") })) as {
      Item: Record<string, { N?: string }>;
    };
    expect(again.Item.v).toEqual({ N: "1" });
  });
});

describe("dynalite's item keys with memoised hash prefixes", () => {
  it("are the keys dynalite's own createKey makes", async () => {
    const { createRequire } = await import("node:module");
    const require = createRequire(import.meta.url);
    type CreateKey = ((item: unknown, table: unknown) => string) & {
      original?: (item: unknown, table: unknown) => string;
    };
    const { createKey } = require("dynalite/db") as { createKey: CreateKey };
    expect(createKey.original).toBeTypeOf("function");
    const table = (hash: string, range?: string) => ({
      AttributeDefinitions: [
        { AttributeName: "h", AttributeType: hash },
        ...(range ? [{ AttributeName: "r", AttributeType: range }] : []),
      ],
      KeySchema: [
        { AttributeName: "h", KeyType: "HASH" },
        ...(range ? [{ AttributeName: "r", KeyType: "RANGE" }] : []),
      ],
    });
    const items: Array<[ReturnType<typeof table>, Record<string, unknown>]> = [
      [table("S", "S"), { h: { S: "EP#a" }, r: { S: "M#1" } }],
      [table("S", "S"), { h: { S: "EP#a" }, r: { S: "é☃😀" } }],
      [table("N"), { h: { N: "-12.5" } }],
      [table("N"), { h: { N: "0" } }],
      [table("N", "N"), { h: { N: "1e30" }, r: { N: "-0.001" } }],
      [table("B", "S"), { h: { B: "AAEC" }, r: { S: "x" } }],
    ];
    for (const [t, item] of items) {
      for (let i = 0; i < 2; i++) expect(createKey(item, t)).toBe(createKey.original?.(item, t));
    }
  });
});
