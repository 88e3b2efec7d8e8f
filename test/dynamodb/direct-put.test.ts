// The local DynamoDB plans a PutItem directly (dynalite-store.ts planPut) instead of running
// dynalite's putItem action against a dry store. Each case runs on two stores holding the same
// items: one through the front's plan and commit, the other through dynalite's own action. The
// answers, the refusals (and the item a failed condition was checked against) and the stored
// items must be the same.
import { describe, expect, it } from "vitest";
import {
  commitWrite,
  createStore,
  type DynaliteStore,
  PlannedConditionFailure,
  planWrite,
  runAction,
  validate,
} from "../../functions/src/local/dynalite-store.js";
import { OperationError } from "../../functions/src/local/dynamodb-rules.js";
import { createEpisodesTable, TableName } from "./episodes-table.js";

async function made(): Promise<DynaliteStore> {
  const store = createStore(null);
  await createEpisodesTable(store);
  await runAction(store, "PutItem", {
    TableName,
    Item: { pk: { S: "EP#a" }, sk: { S: "META" }, version: { N: "3" }, big: { S: "x".repeat(3000) } },
  });
  return store;
}

const outcome = async (run: () => Promise<unknown>) => {
  try {
    return { ok: await run() };
  } catch (err) {
    if (err instanceof PlannedConditionFailure) return { refused: err.failure.body, checked: err.oldItem };
    if (err instanceof OperationError) return { refused: err.body };
    throw err;
  }
};

const head = { pk: { S: "EP#a" }, sk: { S: "META" } };
const cases: Array<[string, Record<string, unknown>]> = [
  ["a new item", { Item: { pk: { S: "EP#a" }, sk: { S: "M#1" }, v: { N: "1" } } }],
  ["a replaced item, ALL_OLD", { Item: { ...head, version: { N: "4" } }, ReturnValues: "ALL_OLD" }],
  [
    "consumed capacity of a replacement",
    { Item: { ...head, version: { N: "4" } }, ReturnConsumedCapacity: "TOTAL" },
  ],
  [
    "consumed capacity INDEXES",
    { Item: { pk: { S: "EP#b" }, sk: { S: "M#1" } }, ReturnConsumedCapacity: "INDEXES" },
  ],
  [
    "a condition that holds",
    {
      Item: { ...head, version: { N: "4" } },
      ConditionExpression: "version = :v",
      ExpressionAttributeValues: { ":v": { N: "3" } },
    },
  ],
  [
    "attribute_not_exists on a new item",
    { Item: { pk: { S: "EP#a" }, sk: { S: "M#2" } }, ConditionExpression: "attribute_not_exists(pk)" },
  ],
  [
    "attribute_not_exists on an existing item",
    { Item: { ...head }, ConditionExpression: "attribute_not_exists(pk)" },
  ],
  [
    "a failed condition with ALL_OLD on failure",
    {
      Item: { ...head },
      ConditionExpression: "version = :v",
      ExpressionAttributeValues: { ":v": { N: "9" } },
      ReturnValuesOnConditionCheckFailure: "ALL_OLD",
    },
  ],
  ["a failed legacy Expected", { Item: { ...head }, Expected: { version: { Value: { N: "9" } } } }],
  ["a missing sort key", { Item: { pk: { S: "EP#a" } } }],
  ["a key of the wrong type", { Item: { pk: { S: "EP#a" }, sk: { N: "1" } } }],
  ["an empty string key", { Item: { pk: { S: "" }, sk: { S: "x" } } }],
  ["an unknown table", { TableName: "nowhere", Item: { ...head } }],
];

describe("direct PutItem plan", () => {
  it.each(cases)("%s: the same as dynalite's own putItem", async (_name, input) => {
    const ours = await made();
    const theirs = await made();
    const request = { TableName, ...input };
    const planned = await outcome(async () => {
      const plan = await planWrite(ours, "PutItem", validate(ours, "PutItem", structuredClone(request)));
      await commitWrite(ours, plan);
      return plan.result;
    });
    const direct = await outcome(() => runAction(theirs, "PutItem", structuredClone(request)));
    // dynalite's action does not say which item a condition was checked against: compare the rest.
    const { checked, ...rest } = planned as { checked?: unknown };
    expect(rest).toEqual(direct);
    if (
      "refused" in planned &&
      String((planned.refused as { __type: string }).__type).endsWith("ConditionalCheckFailedException")
    ) {
      expect(checked).toEqual((await runAction(theirs, "GetItem", { TableName, Key: head })).Item);
    }
    const all = async (store: DynaliteStore) => (await runAction(store, "Scan", { TableName })).Items;
    expect(await all(ours)).toEqual(await all(theirs));
  });
});
