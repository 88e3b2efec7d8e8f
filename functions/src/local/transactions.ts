// TransactWriteItems and TransactGetItems with DynamoDB's semantics (dynalite has neither).
//
// As in DynamoDB, a transaction holds its items from its arrival to its end: another transaction
// touching one of them is cancelled with reason `TransactionConflict`, and a single write to one of
// them fails with TransactionConflictException (ItemLocks). Every condition is checked against the
// state before the transaction, every write is planned first (so nothing is undone), and the
// writes are committed while readers are held back, so no read sees half a transaction.

import {
  commitWrite,
  type DynaliteStore,
  itemId,
  keyOf,
  PlannedConditionFailure,
  type PlannedWrite,
  planWrite,
  runValidated,
  validate,
} from "./dynalite-store.js";
import {
  type AttributeMap,
  type CancellationReason,
  type ChangeRecord,
  changeRecord,
  itemSize,
  MAX_ITEM_BYTES,
  OperationError,
  readUnits,
  transactionCanceled,
  validationError,
  writeUnits,
} from "./dynamodb-rules.js";
import type { ItemLocks, ReadersWriterLock } from "./item-locks.js";

const MAX_TRANSACT_ITEMS = 100;
const MAX_TRANSACT_BYTES = 4 * 1024 * 1024;

/** What a transaction needs from the front. */
export interface TransactionContext {
  readonly store: DynaliteStore;
  readonly locks: ItemLocks;
  readonly commitLock: ReadersWriterLock;
  emit(records: ChangeRecord[]): void;
  /** Called once the transaction holds its items, before it reads them (tests pause here). */
  readonly onTransactionPending?: (ids: readonly string[]) => Promise<void>;
}

type WriteOp = "PutItem" | "UpdateItem" | "DeleteItem" | "ConditionCheck";
type Params = Record<string, unknown> & { TableName: string };
interface Prepared {
  readonly index: number;
  readonly op: WriteOp;
  readonly data: Record<string, unknown>;
  readonly key: AttributeMap;
  readonly id: string;
  readonly returnOldOnFailure: boolean;
}

function opOf(entry: Record<string, unknown>): [WriteOp, Params] {
  const kinds = (["Put", "Update", "Delete", "ConditionCheck"] as const).filter(
    (k) => entry[k] !== undefined,
  );
  if (kinds.length !== 1) {
    throw validationError("TransactItems can only contain one of Check, Put, Update or Delete");
  }
  const kind = kinds[0] as "Put" | "Update" | "Delete" | "ConditionCheck";
  const op = kind === "ConditionCheck" ? "ConditionCheck" : (`${kind}Item` as WriteOp);
  return [op, entry[kind] as Params];
}

/** Bytes of a request as DynamoDB counts them: binary values by their decoded size. */
function requestSize(value: unknown): number {
  if (typeof value === "string") return Buffer.byteLength(value);
  if (Array.isArray(value)) return value.reduce((n: number, v) => n + requestSize(v), 0);
  if (value && typeof value === "object") {
    let n = 0;
    for (const [k, v] of Object.entries(value)) {
      n += Buffer.byteLength(k);
      n += k === "B" && typeof v === "string" ? Buffer.byteLength(v, "base64") : requestSize(v);
    }
    return n;
  }
  return 8;
}

async function prepare(ctx: TransactionContext, items: unknown): Promise<Prepared[]> {
  if (!Array.isArray(items) || items.length === 0 || items.length > MAX_TRANSACT_ITEMS) {
    throw validationError(
      `1 validation error detected: Value at 'transactItems' failed to satisfy constraint: Member must have length less than or equal to ${MAX_TRANSACT_ITEMS}`,
    );
  }
  if (requestSize(items) > MAX_TRANSACT_BYTES) {
    throw validationError("Transaction request cannot be larger than 4 MB");
  }
  const prepared: Prepared[] = [];
  const seen = new Set<string>();
  for (let index = 0; index < items.length; index++) {
    const [op, params] = opOf(items[index] as Record<string, unknown>);
    const { ReturnValuesOnConditionCheckFailure, ...rest } = params;
    // A condition check is validated as the delete it resembles (key + condition).
    const data = validate(ctx.store, op === "ConditionCheck" ? "DeleteItem" : op, rest);
    if (op === "PutItem" && itemSize(params.Item as AttributeMap) > MAX_ITEM_BYTES) {
      throw validationError("Item size has exceeded the maximum allowed size");
    }
    const key =
      op === "PutItem"
        ? await keyOf(ctx.store, params.TableName, params.Item as AttributeMap)
        : (params.Key as AttributeMap);
    const id = itemId(params.TableName, key);
    if (seen.has(id))
      throw validationError("Transaction request cannot include multiple operations on one item");
    seen.add(id);
    prepared.push({
      index,
      op,
      data,
      key,
      id,
      returnOldOnFailure: ReturnValuesOnConditionCheckFailure === "ALL_OLD",
    });
  }
  return prepared;
}

/** TransactWriteItems: all or nothing, conflicting with any other transaction on its items. */
export async function transactWriteItems(
  ctx: TransactionContext,
  input: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  const prepared = await prepare(ctx, input.TransactItems);
  const reasons: CancellationReason[] = prepared.map(() => ({ Code: "None" }));
  for (const p of prepared) {
    if (ctx.locks.inTransaction(p.id)) {
      reasons[p.index] = { Code: "TransactionConflict", Message: "Transaction is ongoing for the item" };
    }
  }
  if (reasons.some((r) => r.Code !== "None")) throw transactionCanceled(reasons);

  const ids = prepared.map((p) => p.id);
  const txn = ctx.locks.begin(ids);
  try {
    // Single writes already under way on these items finish first (new ones are refused now).
    const releases = await Promise.all(ids.map((id) => ctx.locks.acquire(id)));
    try {
      await ctx.onTransactionPending?.(ids);
      const plans = await Promise.all(
        prepared.map(async (p): Promise<PlannedWrite | undefined> => {
          try {
            const op = p.op === "ConditionCheck" ? "DeleteItem" : p.op;
            const plan = await planWrite(
              ctx.store,
              op,
              { ...p.data, ReturnValues: "NONE" },
              p.op !== "ConditionCheck",
            );
            if (plan.writes && itemSize(plan.newItem) > MAX_ITEM_BYTES) {
              reasons[p.index] = {
                Code: "ValidationError",
                Message: "Item size to update has exceeded the maximum allowed size",
              };
            }
            return plan;
          } catch (err) {
            if (err instanceof PlannedConditionFailure) {
              reasons[p.index] = {
                Code: "ConditionalCheckFailed",
                Message: "The conditional request failed",
                ...(p.returnOldOnFailure && err.oldItem ? { Item: err.oldItem } : {}),
              };
              return undefined;
            }
            if (err instanceof OperationError) {
              reasons[p.index] = { Code: "ValidationError", Message: String(err.body.message ?? err.type) };
              return undefined;
            }
            throw err;
          }
        }),
      );
      if (reasons.some((r) => r.Code !== "None")) throw transactionCanceled(reasons);
      const done = plans as PlannedWrite[];
      const release = await ctx.commitLock.exclusive();
      try {
        for (const plan of done) await commitWrite(ctx.store, plan);
      } finally {
        release();
      }
      const records: ChangeRecord[] = [];
      for (const [i, plan] of done.entries()) {
        if (!plan.writes) continue;
        const record = changeRecord(
          plan.tableName,
          (prepared[i] as Prepared).key,
          plan.oldItem,
          plan.newItem,
        );
        if (record) records.push(record);
      }
      if (records.length > 0) ctx.emit(records);
      return consumedCapacity(
        input.ReturnConsumedCapacity,
        done,
        (plan) => 2 * writeUnits(plan.oldItem, plan.newItem),
      );
    } finally {
      for (const release of releases) release();
    }
  } finally {
    ctx.locks.end(ids, txn);
  }
}

/** TransactGetItems: a consistent snapshot; an item held by a transaction cancels it. */
export async function transactGetItems(
  ctx: TransactionContext,
  input: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  const items = input.TransactItems as Array<{ Get?: Params }> | undefined;
  if (!Array.isArray(items) || items.length === 0 || items.length > MAX_TRANSACT_ITEMS) {
    throw validationError(
      `1 validation error detected: Value at 'transactItems' failed to satisfy constraint: Member must have length less than or equal to ${MAX_TRANSACT_ITEMS}`,
    );
  }
  const gets = items.map((entry) => {
    if (!entry.Get) throw validationError("TransactItems can only contain Get");
    const data = validate(ctx.store, "GetItem", { ...entry.Get, ConsistentRead: true });
    return { data, id: itemId(entry.Get.TableName, entry.Get.Key as AttributeMap) };
  });
  const reasons: CancellationReason[] = gets.map((g) =>
    ctx.locks.inTransaction(g.id)
      ? { Code: "TransactionConflict", Message: "Transaction is ongoing for the item" }
      : { Code: "None" },
  );
  if (reasons.some((r) => r.Code !== "None")) throw transactionCanceled(reasons);
  const release = await ctx.commitLock.shared();
  try {
    const results = await Promise.all(gets.map((g) => runValidated(ctx.store, "GetItem", g.data)));
    const plans = results.map((r, i) => ({
      tableName: String(gets[i]?.data.TableName),
      item: r.Item as AttributeMap | undefined,
    }));
    return {
      Responses: results.map((r) => (r.Item ? { Item: r.Item } : {})),
      ...consumedCapacity(input.ReturnConsumedCapacity, plans, (p) => 2 * readUnits(p.item, true)),
    };
  } finally {
    release();
  }
}

function consumedCapacity<T extends { tableName: string }>(
  mode: unknown,
  entries: readonly T[],
  units: (entry: T) => number,
): Record<string, unknown> {
  if (mode !== "TOTAL" && mode !== "INDEXES") return {};
  const byTable = new Map<string, number>();
  for (const e of entries) byTable.set(e.tableName, (byTable.get(e.tableName) ?? 0) + units(e));
  return {
    ConsumedCapacity: [...byTable].map(([TableName, CapacityUnits]) => ({
      TableName,
      CapacityUnits,
      ...(mode === "INDEXES" ? { Table: { CapacityUnits } } : {}),
    })),
  };
}
