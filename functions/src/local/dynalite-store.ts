// dynalite's storage, validation and expression engine, driven write by write: every write is first
// planned (dynalite's own action run against a dry store that records what it would write), checked
// against DynamoDB's rules, then committed. So conditions, update expressions and return values are
// dynalite's, while sizes, transactions and the change feed are ours (see dynalite-server.ts).
import { createRequire } from "node:module";
import { memoiseDynaliteConditionParser } from "./dynalite-expression-cache.js";
import { memoiseDynaliteKeys } from "./dynalite-keys.js";
import {
  installOrderedMemoryDb,
  itemStoreKey,
  type OrderedMemoryDb,
  orderedMemoryDbOf,
} from "./dynalite-memory-db.js";
import { installMemoryGetTable, tableLookup } from "./dynalite-memory-tables.js";
import { installDirectQuery } from "./dynalite-query.js";
import { compileTypes } from "./dynalite-type-check.js";
import { type AttributeMap, OperationError } from "./dynamodb-rules.js";

const require = createRequire(import.meta.url);

type Callback = (err: DynaliteError | null, data?: Record<string, unknown>) => void;
type Action = (store: unknown, data: Record<string, unknown>, cb: Callback) => void;
interface DynaliteError extends Error {
  statusCode?: number;
  body?: { __type: string; message?: string };
}
interface Validation {
  types: Record<string, never>;
  custom?: unknown;
}
interface DynaliteValidations {
  checkValidations(data: unknown, types: unknown, custom: unknown, store: unknown): void;
  toLowerFirst(s: string): string;
}
type NodeCallback<T = void> = (err: (Error & { name?: string }) | null | undefined, value?: T) => void;
export interface ItemDb {
  lock(key: string, fn: (release: <C>(cb: C) => C) => void): void;
  get(key: string, cb: NodeCallback<AttributeMap>): void;
  put(key: string, item: AttributeMap, cb: NodeCallback): void;
  del(key: string, cb: NodeCallback): void;
}
export interface DynaliteStore {
  db: { close(cb: (err?: Error) => void): void; open?(): Promise<void> };
  lifecycleManager?: { gracefulClose(cb: (err?: Error) => void): void; getState(): string };
  getItemDb(tableName: string): ItemDb;
  getTable(
    tableName: string,
    checkStatus: boolean,
    cb: (err: Error | null, table?: TableDescription) => void,
  ): void;
}
interface TableDescription {
  TableName: string;
  TableStatus?: string;
  KeySchema: Array<{ AttributeName: string }>;
  LocalSecondaryIndexes?: unknown[];
  GlobalSecondaryIndexes?: unknown[];
}
interface DynaliteDb {
  create(opts: Record<string, unknown>): DynaliteStore;
  validateItem(item: AttributeMap, table: TableDescription): DynaliteError | undefined;
  createKey(item: AttributeMap, table: TableDescription): string;
  checkConditional(
    data: Record<string, unknown>,
    existing: AttributeMap | undefined,
  ): DynaliteError | undefined;
  addConsumedCapacity(
    data: Record<string, unknown>,
    isRead: boolean,
    newItem: AttributeMap | undefined,
    oldItem: AttributeMap | undefined,
  ): unknown;
  updateIndexes(
    store: DynaliteStore,
    table: TableDescription,
    oldItem: AttributeMap | undefined,
    newItem: AttributeMap | undefined,
    cb: (err?: Error) => void,
  ): void;
}

const validations = require("dynalite/validations") as DynaliteValidations;
const dynaliteDb = require("dynalite/db") as DynaliteDb;
memoiseDynaliteConditionParser();
memoiseDynaliteKeys();
installDirectQuery();

const operations = [
  "BatchGetItem",
  "BatchWriteItem",
  "CreateTable",
  "DeleteItem",
  "DeleteTable",
  "DescribeTable",
  "GetItem",
  "ListTables",
  "PutItem",
  "Query",
  "Scan",
  "UpdateItem",
  "UpdateTable",
] as const;
const actions = new Map<
  string,
  {
    action: Action;
    validation: Validation;
    checkTypes: (data: Record<string, unknown>) => Record<string, unknown>;
  }
>();
for (const op of operations) {
  const name = validations.toLowerFirst(op);
  const validation = require(`dynalite/validations/${name}`) as Validation;
  actions.set(op, {
    action: require(`dynalite/actions/${name}`) as Action,
    validation,
    checkTypes: compileTypes(validation.types),
  });
}

/**
 * dynalite's store: LevelDB in `path`, or in memory (`null`) our ordered store behind dynalite's db
 * (dynalite-memory-db.ts; `memory: "dynalite"` keeps dynalite's own memory-level, for comparisons).
 */
export function createStore(
  path: string | null,
  opts: { memory?: "ordered" | "dynalite" } = {},
): DynaliteStore {
  const store = dynaliteDb.create({
    path: path ?? undefined,
    createTableMs: 0,
    deleteTableMs: 0,
    updateTableMs: 0,
    // dynalite counts string sizes in UTF-16 code units; the front checks DynamoDB's 400 KB itself.
    maxItemSizeKb: 64 * 1024,
  });
  if (path === null && opts.memory !== "dynalite") {
    const isClosed = () => store.lifecycleManager?.getState() === "closed";
    const memory = installOrderedMemoryDb(
      store.db as unknown as Parameters<typeof installOrderedMemoryDb>[0],
      isClosed,
    );
    installMemoryGetTable<TableDescription>(store, memory, isClosed);
  }
  return store;
}

/** The store's ordered in-memory db, when it has one (no data folder). */
export function memoryDbOf(store: DynaliteStore): OrderedMemoryDb | undefined {
  return orderedMemoryDbOf(store.db);
}

/** dynalite's getTable, synchronously on the ordered in-memory db (the same checks and errors). */
function tableSync(memory: OrderedMemoryDb, name: string, checkStatus: boolean): TableDescription {
  const found = tableLookup<TableDescription>(memory, name, checkStatus);
  if ("table" in found) return found.table;
  throw fromDynalite(found.error);
}

function fromDynalite(err: unknown): unknown {
  const e = err as DynaliteError;
  if (e?.statusCode && e.body) return new OperationError(e.statusCode, e.body);
  return err;
}

/** dynalite's own type checks and validations (parses the expressions); throws `OperationError`. */
export function validate(store: object, op: string, input: Record<string, unknown>): Record<string, unknown> {
  const entry = actions.get(op);
  if (!entry) {
    throw new OperationError(400, {
      __type: "com.amazon.coral.service#UnknownOperationException",
      message: `Unknown operation ${op}`,
    });
  }
  try {
    // checkTypes deletes the fields dynalite does not know from its argument: give it a copy.
    const data = entry.checkTypes({ ...input });
    validations.checkValidations(data, entry.validation.types, entry.validation.custom, store);
    return data;
  } catch (err) {
    throw fromDynalite(err);
  }
}

/** Runs one dynalite action on validated input. */
export function runValidated(
  store: object,
  op: string,
  data: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  const entry = actions.get(op);
  if (!entry) return Promise.reject(new Error(`unknown operation ${op}`));
  return new Promise((resolve, reject) => {
    entry.action(store, data, (err, result) => (err ? reject(fromDynalite(err)) : resolve(result ?? {})));
  });
}

/** Runs one dynalite action with dynalite's own validation. */
export async function runAction(
  store: object,
  op: string,
  input: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  return runValidated(store, op, validate(store, op, input));
}

/** What one write would do, found without doing it. */
export interface PlannedWrite {
  readonly tableName: string;
  /** dynalite's storage key of the item. */
  readonly storageKey: string | undefined;
  readonly oldItem: AttributeMap | undefined;
  /** The item after the write; `undefined` once deleted. */
  readonly newItem: AttributeMap | undefined;
  /** Whether the write changes storage (false for a condition check). */
  readonly writes: boolean;
  /** dynalite's answer (Attributes per ReturnValues). */
  readonly result: Record<string, unknown>;
}

/** Thrown by {@link planWrite} when the condition fails; carries the item it was checked against. */
export class PlannedConditionFailure extends Error {
  constructor(
    readonly failure: OperationError,
    readonly oldItem: AttributeMap | undefined,
  ) {
    super(failure.message);
  }
}

/**
 * Runs a PutItem/UpdateItem/DeleteItem against a dry copy of the store that reads the real items
 * but records writes instead of making them. The caller holds the item (see ItemLocks).
 */
export async function planWrite(
  store: DynaliteStore,
  op: "PutItem" | "UpdateItem" | "DeleteItem",
  data: Record<string, unknown>,
  writes = true,
): Promise<PlannedWrite> {
  if (op === "PutItem") return planPut(store, data, writes);
  const tableName = String(data.TableName);
  const real = store.getItemDb(tableName);
  let oldItem: AttributeMap | undefined;
  let storageKey: string | undefined;
  let newItem: AttributeMap | undefined;
  const dryDb: ItemDb = {
    lock: (_key, fn) => fn((cb) => cb),
    get: (key, cb) =>
      real.get(key, (err, value) => {
        oldItem = err ? undefined : value;
        cb(err, value);
      }),
    put: (key, item, cb) => {
      storageKey = key;
      newItem = item;
      cb(null);
    },
    del: (key, cb) => {
      storageKey = key;
      newItem = undefined;
      cb(null);
    },
  };
  const noIndex = {
    put: (_k: string, _v: unknown, cb: NodeCallback) => cb(null),
    del: (_k: string, cb: NodeCallback) => cb(null),
  };
  const dry = Object.create(store) as DynaliteStore & { getIndexDb: () => typeof noIndex };
  dry.getItemDb = () => dryDb;
  dry.getIndexDb = () => noIndex;
  try {
    const result = await runValidated(dry, op, data);
    return { tableName, storageKey, oldItem, newItem, writes, result };
  } catch (err) {
    if (err instanceof OperationError && err.type.endsWith("ConditionalCheckFailedException")) {
      throw new PlannedConditionFailure(err, oldItem);
    }
    throw err;
  }
}

/**
 * A PutItem planned directly, as dynalite's putItem action does it (table check, item key, the
 * item it replaces, condition, return values) without the dry store around the action.
 */
async function planPut(
  store: DynaliteStore,
  data: Record<string, unknown>,
  writes: boolean,
): Promise<PlannedWrite> {
  const tableName = String(data.TableName);
  const item = data.Item as AttributeMap;
  const memory = memoryDbOf(store);
  // checkStatus true: a table being created or deleted is not found, as for dynalite's actions.
  const table = memory
    ? tableSync(memory, tableName, true)
    : await new Promise<TableDescription>((resolve, reject) =>
        store.getTable(tableName, true, (err, t) => (err || !t ? reject(fromDynalite(err)) : resolve(t))),
      );
  const invalid = dynaliteDb.validateItem(item, table);
  if (invalid) throw fromDynalite(invalid);
  const storageKey = dynaliteDb.createKey(item, table);
  // In memory the stored item itself: it is only read (condition, ALL_OLD, the change record).
  const oldItem = memory
    ? (memory.getSync(itemStoreKey(tableName, storageKey)) as AttributeMap | undefined)
    : await new Promise<AttributeMap | undefined>((resolve, reject) =>
        store.getItemDb(tableName).get(storageKey, (err, value) => {
          if (err && err.name !== "NotFoundError") reject(err);
          else resolve(err ? undefined : value);
        }),
      );
  const failed = dynaliteDb.checkConditional(data, oldItem);
  if (failed) {
    const failure = fromDynalite(failed);
    if (failure instanceof OperationError && failure.type.endsWith("ConditionalCheckFailedException")) {
      throw new PlannedConditionFailure(failure, oldItem);
    }
    throw failure;
  }
  const result: Record<string, unknown> = {};
  if (oldItem && data.ReturnValues === "ALL_OLD") result.Attributes = oldItem;
  result.ConsumedCapacity = dynaliteDb.addConsumedCapacity(data, false, oldItem, item);
  return { tableName, storageKey, oldItem, newItem: item, writes, result };
}

const tables = new WeakMap<object, Map<string, TableDescription>>();

/** The table's description (cached: our tables never change their keys or indexes). */
export async function describe(store: DynaliteStore, tableName: string): Promise<TableDescription> {
  let perStore = tables.get(store);
  if (!perStore) {
    perStore = new Map();
    tables.set(store, perStore);
  }
  const cached = perStore.get(tableName);
  if (cached) return cached;
  const table = await new Promise<TableDescription>((resolve, reject) =>
    store.getTable(tableName, false, (err, t) => (err || !t ? reject(fromDynalite(err)) : resolve(t))),
  );
  perStore.set(tableName, table);
  return table;
}

export function forgetTable(store: DynaliteStore, tableName: string): void {
  tables.get(store)?.delete(tableName);
}

/** Makes a planned write real (the caller holds the item, and excludes readers if it must). */
export async function commitWrite(store: DynaliteStore, plan: PlannedWrite): Promise<void> {
  if (!plan.writes || plan.storageKey === undefined) return;
  const key = plan.storageKey;
  const itemDb = store.getItemDb(plan.tableName);
  const table = await describe(store, plan.tableName);
  if (table.LocalSecondaryIndexes?.length || table.GlobalSecondaryIndexes?.length) {
    await new Promise<void>((resolve, reject) =>
      dynaliteDb.updateIndexes(store, table, plan.oldItem, plan.newItem, (err) =>
        err ? reject(err) : resolve(),
      ),
    );
  }
  const newItem = plan.newItem;
  const memory = memoryDbOf(store);
  if (memory) {
    // The planned item itself: the request's validated copy, which nothing changes afterwards.
    if (newItem) memory.setSync(itemStoreKey(plan.tableName, key), newItem);
    else memory.deleteSync(itemStoreKey(plan.tableName, key));
    return;
  }
  await new Promise<void>((resolve, reject) => {
    const done: NodeCallback = (err) => (err ? reject(err) : resolve());
    if (newItem) itemDb.put(key, newItem, done);
    else itemDb.del(key, done);
  });
}

/** The key attributes of an item. */
export async function keyOf(
  store: DynaliteStore,
  tableName: string,
  item: AttributeMap,
): Promise<AttributeMap> {
  const table = await describe(store, tableName);
  return Object.fromEntries(
    table.KeySchema.map((k) => [k.AttributeName, item[k.AttributeName] as Record<string, unknown>]),
  );
}

/** One string naming an item, for locks: table and key values. */
export function itemId(tableName: string, key: AttributeMap): string {
  const names = Object.keys(key).sort();
  return `${tableName}\u0000${names.map((n) => JSON.stringify(key[n])).join("\u0000")}`;
}
