// Single and batch item operations of the local DynamoDB front: each write planned by dynalite,
// checked against DynamoDB's rules (400 KB in UTF-8 bytes, items held by a transaction), committed,
// and reported to the change feed; BatchGetItem with DynamoDB's response size limit.

import {
  commitWrite,
  itemId,
  keyOf,
  PlannedConditionFailure,
  planWrite,
  runAction,
  validate,
} from "./dynalite-store.js";
import {
  type AttributeMap,
  changeRecord,
  itemSize,
  MAX_ITEM_BYTES,
  OperationError,
  readUnits,
  transactionConflict,
  validationError,
  writeUnits,
} from "./dynamodb-rules.js";
import type { TransactionContext } from "./transactions.js";

export interface ItemOperationsContext extends TransactionContext {
  /** Response size at which BatchGetItem stops and returns UnprocessedKeys. */
  readonly batchGetMaxBytes: number;
  /** Whether anyone listens to the change feed (records are not built otherwise). */
  hasListeners(): boolean;
}

export type SingleWrite = (
  op: "PutItem" | "UpdateItem" | "DeleteItem",
  input: Record<string, unknown>,
  byTtl?: boolean,
) => Promise<Record<string, unknown>>;

export function itemOperations(ctx: ItemOperationsContext): {
  singleWrite: SingleWrite;
  batchWriteItem(input: Record<string, unknown>): Promise<Record<string, unknown>>;
  batchGetItem(input: Record<string, unknown>): Promise<Record<string, unknown>>;
} {
  const { store, locks, emit, batchGetMaxBytes } = ctx;
  /** PutItem, UpdateItem or DeleteItem: one write, refused while a transaction holds the item. */
  const singleWrite = async (
    op: "PutItem" | "UpdateItem" | "DeleteItem",
    input: Record<string, unknown>,
    byTtl = false,
  ): Promise<Record<string, unknown>> => {
    const data = validate(store, op, input);
    const tableName = String(input.TableName);
    if (op === "PutItem" && itemSize(input.Item as AttributeMap) > MAX_ITEM_BYTES) {
      throw validationError("Item size has exceeded the maximum allowed size");
    }
    const key =
      op === "PutItem"
        ? await keyOf(store, tableName, input.Item as AttributeMap)
        : (input.Key as AttributeMap);
    const id = itemId(tableName, key);
    if (locks.inTransaction(id)) throw transactionConflict();
    const release = await locks.acquire(id);
    try {
      if (locks.inTransaction(id)) throw transactionConflict();
      let plan: Awaited<ReturnType<typeof planWrite>>;
      try {
        plan = await planWrite(store, op, data);
      } catch (err) {
        if (!(err instanceof PlannedConditionFailure)) throw err;
        if (input.ReturnValuesOnConditionCheckFailure === "ALL_OLD" && err.oldItem) {
          throw new OperationError(err.failure.statusCode, { ...err.failure.body, Item: err.oldItem });
        }
        throw err.failure;
      }
      if (itemSize(plan.newItem) > MAX_ITEM_BYTES) {
        throw validationError("Item size to update has exceeded the maximum allowed size");
      }
      await commitWrite(store, plan);
      const record = ctx.hasListeners()
        ? changeRecord(tableName, key, plan.oldItem, plan.newItem, byTtl)
        : undefined;
      if (record) emit([record]);
      const result = { ...plan.result };
      if (input.ReturnConsumedCapacity === "TOTAL" || input.ReturnConsumedCapacity === "INDEXES") {
        const units = writeUnits(plan.oldItem, plan.newItem);
        result.ConsumedCapacity = {
          TableName: tableName,
          CapacityUnits: units,
          ...(input.ReturnConsumedCapacity === "INDEXES" ? { Table: { CapacityUnits: units } } : {}),
        };
      } else delete result.ConsumedCapacity;
      return result;
    } finally {
      release();
    }
  };

  const batchWriteItem = async (input: Record<string, unknown>): Promise<Record<string, unknown>> => {
    validate(store, "BatchWriteItem", input);
    const requests = input.RequestItems as Record<
      string,
      Array<{ PutRequest?: { Item: AttributeMap }; DeleteRequest?: { Key: AttributeMap } }>
    >;
    const unprocessed: Record<string, unknown[]> = {};
    const units = new Map<string, number>();
    for (const [tableName, list] of Object.entries(requests)) {
      for (const request of list) {
        const single = request.PutRequest
          ? singleWrite("PutItem", {
              TableName: tableName,
              Item: request.PutRequest.Item,
              ReturnConsumedCapacity: "TOTAL",
            })
          : singleWrite("DeleteItem", {
              TableName: tableName,
              Key: request.DeleteRequest?.Key,
              ReturnConsumedCapacity: "TOTAL",
            });
        try {
          const out = await single;
          const used = (out.ConsumedCapacity as { CapacityUnits: number }).CapacityUnits;
          units.set(tableName, (units.get(tableName) ?? 0) + used);
        } catch (err) {
          // An item held by a transaction is left for the caller to retry, as DynamoDB does.
          if (!(err instanceof OperationError && err.type.endsWith("TransactionConflictException")))
            throw err;
          unprocessed[tableName] ??= [];
          unprocessed[tableName].push(request);
        }
      }
    }
    return {
      UnprocessedItems: unprocessed,
      ...(input.ReturnConsumedCapacity === "TOTAL" || input.ReturnConsumedCapacity === "INDEXES"
        ? { ConsumedCapacity: [...units].map(([TableName, CapacityUnits]) => ({ TableName, CapacityUnits })) }
        : {}),
    };
  };

  /** BatchGetItem: at most `batchGetMaxBytes` of items (at least one), the other keys unprocessed. */
  const batchGetItem = async (input: Record<string, unknown>): Promise<Record<string, unknown>> => {
    validate(store, "BatchGetItem", input);
    const requests = input.RequestItems as Record<string, Record<string, unknown> & { Keys: AttributeMap[] }>;
    const responses: Record<string, AttributeMap[]> = {};
    const unprocessed: Record<string, Record<string, unknown> & { Keys: AttributeMap[] }> = {};
    const units = new Map<string, number>();
    let bytes = 0;
    let returned = 0;
    for (const [tableName, { Keys, ...shape }] of Object.entries(requests)) {
      responses[tableName] = [];
      for (const key of Keys) {
        if (returned > 0 && bytes >= batchGetMaxBytes) {
          unprocessed[tableName] ??= { ...shape, Keys: [] };
          unprocessed[tableName].Keys.push(key);
          continue;
        }
        const got = await runAction(store, "GetItem", { TableName: tableName, Key: key, ...shape });
        const item = got.Item as AttributeMap | undefined;
        units.set(tableName, (units.get(tableName) ?? 0) + readUnits(item, shape.ConsistentRead === true));
        if (!item) continue;
        const size = itemSize(item);
        if (returned > 0 && bytes + size > batchGetMaxBytes) {
          bytes = batchGetMaxBytes;
          unprocessed[tableName] ??= { ...shape, Keys: [] };
          unprocessed[tableName].Keys.push(key);
          continue;
        }
        bytes += size;
        returned++;
        responses[tableName].push(item);
      }
    }
    return {
      Responses: responses,
      UnprocessedKeys: unprocessed,
      ...(input.ReturnConsumedCapacity === "TOTAL" || input.ReturnConsumedCapacity === "INDEXES"
        ? { ConsumedCapacity: [...units].map(([TableName, CapacityUnits]) => ({ TableName, CapacityUnits })) }
        : {}),
    };
  };

  return { singleWrite, batchWriteItem, batchGetItem };
}
