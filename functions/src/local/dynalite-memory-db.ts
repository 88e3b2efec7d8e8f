// The in-memory storage of the local DynamoDB (a stack without a data folder: tests, benchmarks,
// throwaway stacks). dynalite keeps it in memory-level behind abstract-level and its own callback
// wrappers: every read and write is JSON encoded or decoded, goes through several promises, a
// tracking set and a setImmediate; about a third of the front's time for a step's three requests.
// Here the same key-value store is a sorted array of keys (binary search) with their values, and a
// Map for point reads:
// - dynalite's own actions reach it through the same methods as before (get, put, del, batch,
//   keys/values/iterator, with callbacks after setImmediate as dynalite's wrappers call them), and
//   get JSON copies, as from memory-level: each read a fresh object, each write a snapshot;
// - the front's direct paths (dynalite-store.ts planPut and commitWrite, dynalite-query.ts) read
//   and write synchronously without copies: they never change an item they read, and the item
//   they write is the request's own validated copy, which nothing changes afterwards;
// - an iterator sees the store as it was when it was made (as memory-level's snapshots of its
//   tree): a write while one is open copies the arrays first.
// Keys compare as JavaScript strings: every key dynalite makes for items, indexes and tables is
// ASCII (hex key values, table names), where that is memory-level's byte order.
// With a data folder dynalite's LevelDB stays (the data outlives the process).

type Callback<T = unknown> = (err: Error | null, value?: T) => void;

/** dynalite's key of an item in its one store: its item sub-db's prefix (`item-<table>~`), then the item's key. */
export function itemStoreKey(tableName: string, storageKey: string): string {
  return `item-${tableName}~${storageKey}`;
}

/** A LevelDB range read's options (the subset dynalite and the front's direct paths use). */
export interface RangeOptions {
  gt?: string;
  gte?: string;
  lt?: string;
  lte?: string;
  reverse?: boolean;
  limit?: number;
}

/** A copy with JSON's semantics (what an encode and decode through memory-level gives). */
export function jsonCopy(value: unknown): unknown {
  if (value === null) return null;
  switch (typeof value) {
    case "string":
    case "boolean":
      return value;
    case "number":
      return Number.isFinite(value) ? value : null;
    case "object":
      break;
    default:
      return undefined;
  }
  if (typeof (value as { toJSON?: unknown }).toJSON === "function") return JSON.parse(JSON.stringify(value));
  if (Array.isArray(value)) {
    return value.map((v) => {
      const c = jsonCopy(v);
      return c === undefined ? null : c;
    });
  }
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value)) {
    const c = jsonCopy((value as Record<string, unknown>)[key]);
    if (c === undefined) continue;
    if (key === "__proto__")
      Object.defineProperty(out, key, { value: c, enumerable: true, writable: true, configurable: true });
    else out[key] = c;
  }
  return out;
}

/** The first index whose key is >= key (or > key when `after`). */
function bound(keys: readonly string[], key: string, after: boolean): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const k = keys[mid] as string;
    if (k < key || (after && k === key)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The index range [start, end) of keys within the options' bounds. */
function span(keys: readonly string[], opts: RangeOptions): [number, number] {
  const start =
    opts.gte !== undefined
      ? bound(keys, opts.gte, false)
      : opts.gt !== undefined
        ? bound(keys, opts.gt, true)
        : 0;
  const end =
    opts.lte !== undefined
      ? bound(keys, opts.lte, true)
      : opts.lt !== undefined
        ? bound(keys, opts.lt, false)
        : keys.length;
  return [start, Math.max(start, end)];
}

export class OrderedMemoryDb {
  private keys: string[] = [];
  private vals: unknown[] = [];
  private readonly byKey = new Map<string, unknown>();
  /** An open iterator holds the current arrays: the next write copies them. */
  private shared = false;

  private own(): void {
    if (!this.shared) return;
    this.keys = this.keys.slice();
    this.vals = this.vals.slice();
    this.shared = false;
  }

  /** The stored value itself (not a copy: the caller must not change it). */
  getSync(key: string): unknown {
    return this.byKey.get(key);
  }

  /** Stores the value itself (the caller must not change it afterwards). */
  setSync(key: string, value: unknown): void {
    const i = bound(this.keys, key, false);
    this.own();
    if (this.keys[i] === key) this.vals[i] = value;
    else {
      this.keys.splice(i, 0, key);
      this.vals.splice(i, 0, value);
    }
    this.byKey.set(key, value);
  }

  deleteSync(key: string): void {
    if (!this.byKey.has(key)) return;
    const i = bound(this.keys, key, false);
    this.own();
    this.keys.splice(i, 1);
    this.vals.splice(i, 1);
    this.byKey.delete(key);
  }

  /** Visits the stored values within the range in order (not copies) until `visit` returns false. */
  visitSync(opts: RangeOptions, visit: (value: unknown) => boolean): void {
    const [start, end] = span(this.keys, opts);
    let left = opts.limit !== undefined && opts.limit >= 0 ? opts.limit : Number.POSITIVE_INFINITY;
    if (opts.reverse) {
      for (let i = end - 1; i >= start && left-- > 0; i--) if (!visit(this.vals[i])) return;
    } else {
      for (let i = start; i < end && left-- > 0; i++) if (!visit(this.vals[i])) return;
    }
  }

  /** An abstract-level style iterator over a snapshot of the range (values copied as JSON). */
  iterate(opts: RangeOptions, kind: "keys" | "values" | "entries"): LevelIterator {
    this.shared = true;
    const keys = this.keys;
    const vals = this.vals;
    const [start, end] = span(keys, opts);
    const reverse = opts.reverse === true;
    let left = opts.limit !== undefined && opts.limit >= 0 ? opts.limit : Number.POSITIVE_INFINITY;
    let at = reverse ? end - 1 : start;
    let closed = false;
    const take = (): unknown => {
      if (closed || left <= 0 || (reverse ? at < start : at >= end)) return undefined;
      const i = at;
      at += reverse ? -1 : 1;
      left--;
      const key = keys[i] as string;
      if (kind === "keys") return key;
      const value = jsonCopy(vals[i]);
      return kind === "values" ? value : [key, value];
    };
    const iterator: LevelIterator = {
      next: async () => take(),
      nextv: async (size: number) => {
        const out: unknown[] = [];
        for (let v = take(); v !== undefined; v = out.length < size ? take() : undefined) out.push(v);
        return out;
      },
      all: async () => {
        const out: unknown[] = [];
        for (let v = take(); v !== undefined; v = take()) out.push(v);
        closed = true;
        return out;
      },
      close: async () => {
        closed = true;
      },
      return: async () => {
        closed = true;
        return { done: true, value: undefined };
      },
      [Symbol.asyncIterator]() {
        return {
          next: async () => {
            const value = take();
            return value === undefined ? { done: true, value: undefined } : { done: false, value };
          },
          return: async () => {
            closed = true;
            return { done: true, value: undefined };
          },
        };
      },
    };
    return iterator;
  }
}

export interface LevelIterator {
  next(): Promise<unknown>;
  nextv(size: number): Promise<unknown[]>;
  all(): Promise<unknown[]>;
  close(): Promise<void>;
  return(): Promise<{ done: true; value: undefined }>;
  [Symbol.asyncIterator](): AsyncIterator<unknown>;
}

interface LevelLike {
  put: unknown;
  get: unknown;
  del: unknown;
  batch: unknown;
  keys: unknown;
  values: unknown;
  iterator: unknown;
  getSync?: unknown;
}

const installed = new WeakMap<object, OrderedMemoryDb>();

/** The ordered store behind a dynalite store's db, when {@link installOrderedMemoryDb} put one there. */
export function orderedMemoryDbOf(db: object): OrderedMemoryDb | undefined {
  return installed.get(db);
}

/**
 * Puts an {@link OrderedMemoryDb} behind dynalite's in-memory db object, in place of the methods its
 * callback wrappers installed (its sub-databases and streams call them through the object).
 */
export function installOrderedMemoryDb(db: LevelLike, isClosed: () => boolean): OrderedMemoryDb {
  const memory = new OrderedMemoryDb();
  const closedError = () => new Error("Database is closed");
  // As dynalite's wrappers: with a callback, it is called after setImmediate; without, a promise.
  const run = <T>(op: () => T, callback: unknown): Promise<T> | undefined => {
    if (typeof callback === "function") {
      const cb = callback as Callback<T>;
      if (isClosed()) {
        setImmediate(cb, closedError());
        return undefined;
      }
      let value: T;
      try {
        value = op();
      } catch (err) {
        setImmediate(cb, err as Error);
        return undefined;
      }
      setImmediate(cb, null, value);
      return undefined;
    }
    if (isClosed()) return Promise.reject(closedError());
    try {
      return Promise.resolve(op());
    } catch (err) {
      return Promise.reject(err);
    }
  };
  db.put = (key: string, value: unknown, callback?: unknown) =>
    run(() => {
      memory.setSync(key, jsonCopy(value));
    }, callback);
  db.get = (key: string, callback?: unknown) => run(() => jsonCopy(memory.getSync(key)), callback);
  db.getSync = (key: string) => jsonCopy(memory.getSync(key));
  db.del = (key: string, callback?: unknown) =>
    run(() => {
      memory.deleteSync(key);
    }, callback);
  db.batch = (operations: Array<{ type: "put" | "del"; key: string; value?: unknown }>, callback?: unknown) =>
    run(() => {
      for (const op of operations) {
        if (op.type === "put") memory.setSync(op.key, jsonCopy(op.value));
        else memory.deleteSync(op.key);
      }
    }, callback);
  db.keys = (options: RangeOptions = {}) => memory.iterate(options, "keys");
  db.values = (options: RangeOptions = {}) => memory.iterate(options, "values");
  db.iterator = (options: RangeOptions = {}) => memory.iterate(options, "entries");
  installed.set(db, memory);
  return memory;
}
