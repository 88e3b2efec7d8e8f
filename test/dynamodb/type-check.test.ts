// The local DynamoDB checks a request's types with dynalite's checkTypes compiled once per
// operation (dynalite-type-check.ts). Each case runs dynalite's own checkTypes and the compiled one
// on two copies of the same request: the result, the error (message and body) and what is left of
// the request afterwards (both delete unknown fields from the objects they are given) must match.
import { createRequire } from "node:module";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { compileTypes } from "../../functions/src/local/dynalite-type-check.js";

const require = createRequire(import.meta.url);
const { checkTypes } = require("dynalite/validations") as {
  checkTypes(data: unknown, types: unknown): Record<string, unknown>;
};
const operations = [
  "batchGetItem",
  "batchWriteItem",
  "createTable",
  "deleteItem",
  "getItem",
  "putItem",
  "query",
  "scan",
  "updateItem",
] as const;
const typesOf = (op: string) =>
  (require(`dynalite/validations/${op}`) as { types: Record<string, never> }).types;

function outcome(run: () => unknown): unknown {
  try {
    return { ok: run() };
  } catch (err) {
    const e = err as Error & { statusCode?: number; body?: unknown };
    return { error: e.message, statusCode: e.statusCode, body: e.body };
  }
}

function same(op: string, request: Record<string, unknown>): void {
  const types = typesOf(op);
  const a = structuredClone(request);
  const b = structuredClone(request);
  const theirs = outcome(() => checkTypes(a, types));
  const ours = outcome(() => compileTypes(types)(b));
  expect(ours).toEqual(theirs);
  expect(b).toEqual(a);
}

const item = {
  pk: { S: "EP#a" },
  sk: { S: "META" },
  n: { N: "12.50" },
  bin: { B: "AAEC" },
  flag: { BOOL: true },
  none: { NULL: true },
  ss: { SS: ["a", "b"] },
  ns: { NS: ["1", "2"] },
  bs: { BS: ["AA=="] },
  list: { L: [{ S: "x" }, { M: { deep: { N: "1" } } }] },
  map: { M: { a: { S: "y" }, b: { L: [] } } },
};

const cases: Array<[string, string, Record<string, unknown>]> = [
  ["putItem", "a full item", { TableName: "t", Item: item, ConditionExpression: "attribute_not_exists(pk)" }],
  [
    "putItem",
    "unknown fields dropped at every level",
    { TableName: "t", Item: { a: { S: "x", Q: 1 } }, Junk: 1 },
  ],
  [
    "putItem",
    "a Boolean given as a string",
    { TableName: "t", Item: { a: { BOOL: "yes" }, b: { NULL: "0" } } },
  ],
  ["putItem", "a Boolean given as a bad string", { TableName: "t", Item: { a: { BOOL: "maybe" } } }],
  ["putItem", "a Boolean given as a number", { TableName: "t", Item: { a: { BOOL: 1.5 } } }],
  ["putItem", "a string given as a number", { TableName: 5, Item: {} }],
  ["putItem", "a string given as true", { TableName: true, Item: {} }],
  ["putItem", "a string given as a list", { TableName: ["t"], Item: {} }],
  ["putItem", "a string given as a map", { TableName: { a: 1 }, Item: {} }],
  ["putItem", "base64 of a bad length", { TableName: "t", Item: { a: { B: "AAE" } } }],
  ["putItem", "base64 with a bad last character", { TableName: "t", Item: { a: { B: "AB==" } } }],
  ["putItem", "bytes given as a number", { TableName: "t", Item: { a: { B: 12 } } }],
  ["putItem", "an item given as a list", { TableName: "t", Item: [1] }],
  ["putItem", "an item given as a string", { TableName: "t", Item: "x" }],
  ["putItem", "a value given as a string", { TableName: "t", Item: { a: "x" } }],
  ["putItem", "a value given as a list", { TableName: "t", Item: { a: [1] } }],
  ["putItem", "a set given as a string", { TableName: "t", Item: { a: { SS: "x" } } }],
  ["putItem", "a set given as a map", { TableName: "t", Item: { a: { SS: { x: 1 } } } }],
  ["putItem", "a nested bad value", { TableName: "t", Item: { a: { M: { b: { L: [{ N: 1 }] } } } } }],
  [
    "putItem",
    "a legacy Expected",
    { TableName: "t", Item: {}, Expected: { a: { Value: { S: "x" }, Exists: "true" } } },
  ],
  [
    "putItem",
    "an Expected value given as a string",
    { TableName: "t", Item: {}, Expected: { a: { Value: "x" } } },
  ],
  ["putItem", "nulls dropped", { TableName: "t", Item: { a: { S: null, N: "1" } }, ReturnValues: null }],
  [
    "query",
    "a step's query",
    {
      TableName: "t",
      Limit: 2.7,
      ConsistentRead: true,
      ScanIndexForward: "false",
      KeyConditionExpression: "pk = :pk AND sk BETWEEN :lo AND :hi",
      ExpressionAttributeValues: { ":pk": { S: "E" }, ":lo": { S: "M#" }, ":hi": { S: "META" } },
    },
  ],
  ["query", "a Limit given as a string", { TableName: "t", Limit: "2" }],
  ["query", "a Limit given as true", { TableName: "t", Limit: true }],
  ["query", "a Limit given as a list", { TableName: "t", Limit: [2] }],
  ["query", "AttributesToGet given as a map", { TableName: "t", AttributesToGet: { a: 1 } }],
  ["query", "KeyConditions given as a list", { TableName: "t", KeyConditions: [1] }],
  [
    "updateItem",
    "an update",
    {
      TableName: "t",
      Key: { pk: { S: "a" } },
      UpdateExpression: "ADD n :one",
      ExpressionAttributeValues: { ":one": { N: "1" } },
      ExpressionAttributeNames: { "#a": "a" },
    },
  ],
  [
    "updateItem",
    "legacy AttributeUpdates",
    { TableName: "t", Key: {}, AttributeUpdates: { a: { Action: "PUT", Value: { N: "1" } } } },
  ],
  [
    "updateItem",
    "names given as numbers",
    { TableName: "t", Key: {}, ExpressionAttributeNames: { "#a": 1 } },
  ],
  [
    "batchGetItem",
    "two tables",
    { RequestItems: { t: { Keys: [{ pk: { S: "a" } }], ConsistentRead: "1" }, u: { Keys: [] } } },
  ],
  ["batchGetItem", "keys given as a map", { RequestItems: { t: { Keys: { a: 1 } } } }],
  [
    "batchWriteItem",
    "puts and deletes",
    { RequestItems: { t: [{ PutRequest: { Item: item } }, { DeleteRequest: { Key: { pk: { S: "a" } } } }] } },
  ],
  ["batchWriteItem", "a request given as a string", { RequestItems: { t: ["x"] } }],
  [
    "createTable",
    "a table",
    {
      TableName: "t",
      AttributeDefinitions: [{ AttributeName: "pk", AttributeType: "S" }],
      KeySchema: [{ AttributeName: "pk", KeyType: "HASH" }],
      ProvisionedThroughput: { ReadCapacityUnits: 1.9, WriteCapacityUnits: 1 },
      GlobalSecondaryIndexes: [{ IndexName: "i", KeySchema: [], Projection: { ProjectionType: "ALL" } }],
    },
  ],
  [
    "createTable",
    "capacity given as a string",
    { TableName: "t", ProvisionedThroughput: { ReadCapacityUnits: "1" } },
  ],
  ["deleteItem", "a key", { TableName: "t", Key: { pk: { N: "1" } }, ReturnValues: "ALL_OLD" }],
  ["getItem", "a projection", { TableName: "t", Key: { pk: { S: "a" } }, ProjectionExpression: "a, b.c" }],
  ["scan", "segments", { TableName: "t", Segment: 1.5, TotalSegments: 2 }],
];

describe("dynalite's checkTypes, compiled", () => {
  for (const [op, name, request] of cases) {
    it(`${op}: ${name}: the same result, error and request afterwards as dynalite's`, () =>
      same(op, request));
  }

  it("random requests: the same as dynalite's for every operation", () => {
    const attributeValue = fc.letrec((tie) => ({
      value: fc.oneof(
        { depthSize: "small" },
        fc.record({ S: fc.oneof(fc.string(), fc.integer(), fc.boolean()) }, { requiredKeys: [] }),
        fc.record({ N: fc.oneof(fc.string(), fc.double()) }),
        fc.record({ B: fc.oneof(fc.base64String(), fc.string()) }),
        fc.record({ BOOL: fc.oneof(fc.boolean(), fc.constantFrom("yes", "no", "1", "x"), fc.integer()) }),
        fc.record({ SS: fc.oneof(fc.array(fc.string()), fc.string()) }),
        fc.record({ L: fc.array(tie("value"), { maxLength: 3 }) }),
        fc.record({ M: fc.dictionary(fc.string(), tie("value"), { maxKeys: 3 }) }),
        fc.jsonValue({ maxDepth: 2 }),
      ),
    })).value;
    const map = fc.oneof(
      fc.dictionary(fc.string(), attributeValue, { maxKeys: 4 }),
      fc.jsonValue({ maxDepth: 2 }),
    );
    const request = fc.record(
      {
        TableName: fc.oneof(fc.string(), fc.jsonValue({ maxDepth: 1 })),
        Item: map,
        Key: map,
        ExpressionAttributeValues: map,
        ExpressionAttributeNames: fc.oneof(
          fc.dictionary(fc.string(), fc.string()),
          fc.jsonValue({ maxDepth: 1 }),
        ),
        Limit: fc.jsonValue({ maxDepth: 1 }),
        ConsistentRead: fc.jsonValue({ maxDepth: 1 }),
        RequestItems: fc.dictionary(
          fc.string(),
          fc.oneof(
            fc.record({ Keys: fc.array(map, { maxLength: 2 }) }),
            fc.array(fc.record({ PutRequest: fc.record({ Item: map }) }), { maxLength: 2 }),
          ),
          { maxKeys: 2 },
        ),
        Other: fc.jsonValue({ maxDepth: 1 }),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(fc.constantFrom(...operations), request, (op, r) => {
        same(op, r as Record<string, unknown>);
      }),
      { numRuns: 400 },
    );
  });
});
