// dynalite's getTable over the ordered in-memory db (dynalite-memory-db.ts). Every dynalite action
// starts with it; dynalite's own reads the table through its callback wrapper (a promise, a tracking
// set, a setImmediate, a JSON decode). Here the same lookup, with the same checks and errors, reads
// the table synchronously and hands a copy (actions change the table they get) to the callback in a
// microtask: still after getTable returns, as before.
import { jsonCopy, type OrderedMemoryDb } from "./dynalite-memory-db.js";

/** dynalite's error for a table it does not find (its actions pass it on as the answer). */
export interface TableNotFound extends Error {
  statusCode: number;
  body: { __type: string; message: string };
}

type GetTableCallback<T> = (err: Error | null, table?: T) => void;

/** dynalite's getTable on the ordered in-memory db: the table, or dynalite's error for it. */
export function tableLookup<T extends { TableStatus?: string }>(
  memory: OrderedMemoryDb,
  name: string,
  checkStatus: boolean,
): { table: T } | { error: TableNotFound } {
  const table = memory.getSync(`table~${name}`) as T | undefined;
  if (
    table &&
    typeof table === "object" &&
    table.TableStatus &&
    !(checkStatus && (table.TableStatus === "CREATING" || table.TableStatus === "DELETING"))
  ) {
    return { table };
  }
  const error = new Error("NotFoundError") as TableNotFound;
  error.name = "NotFoundError";
  error.statusCode = 400;
  error.body = {
    __type: "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException",
    message: `Requested resource not found${checkStatus ? "" : `: Table: ${name} not found`}`,
  };
  return { error };
}

/** Replaces the store's getTable by the synchronous lookup (dynalite calls it as `getTable(name, [checkStatus,] cb)`). */
export function installMemoryGetTable<T extends { TableStatus?: string }>(
  store: { getTable(name: string, checkStatus: boolean, cb: GetTableCallback<T>): void },
  memory: OrderedMemoryDb,
  isClosed: () => boolean,
): void {
  store.getTable = (name, checkStatus, cb) => {
    // In the two-argument form the callback is `checkStatus`, and counts as true (as in dynalite).
    const callback = (typeof checkStatus === "function" ? checkStatus : cb) as GetTableCallback<T>;
    const found = isClosed()
      ? { error: new Error("Database is closed") }
      : tableLookup<T>(memory, name, Boolean(checkStatus));
    queueMicrotask(() =>
      "table" in found ? callback(null, jsonCopy(found.table) as T) : callback(found.error),
    );
  };
}
