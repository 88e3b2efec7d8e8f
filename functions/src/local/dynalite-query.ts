// dynalite runs a Query's read through a Node Readable over its LevelDB iterator, wrapped in a
// `lazy` stream with takeWhile and join: more than half of its time for a step's Query, which reads
// two or three items. Here dynalite's `queryTable` (which its Query and Scan actions call through
// the module, after checking their input) reads the same key range straight from the iterator,
// in batches, and builds the same answer with dynalite's own helpers (item size, filters,
// projections, LastEvaluatedKey, consumed capacity). Index reads keep dynalite's own code.
import { createRequire } from "node:module";
import { itemStoreKey, orderedMemoryDbOf, type RangeOptions } from "./dynalite-memory-db.js";
import type { AttributeMap } from "./dynamodb-rules.js";

const require = createRequire(import.meta.url);

type Callback = (err: Error | null, result?: Record<string, unknown>) => void;
interface ValueIterator {
  nextv(size: number): Promise<AttributeMap[]>;
  close(): Promise<void>;
}
interface QueryStore {
  db: { values(options: RangeOptions): ValueIterator };
}
interface QueryTable {
  KeySchema: Array<{ AttributeName: string }>;
}
type QueryTableFn = (
  store: QueryStore,
  table: QueryTable,
  data: Record<string, unknown>,
  opts: RangeOptions,
  isLocal: boolean,
  fetchFromItemDb: boolean,
  startKeyNames: string[],
  cb: Callback,
) => void;
type InstalledQueryTable = QueryTableFn & { original?: QueryTableFn };
interface DynaliteDbModule {
  queryTable: InstalledQueryTable;
  itemSize(item: AttributeMap, compress?: boolean, addMetaSize?: boolean, rangeKey?: string): number;
  matchesExprFilter(item: AttributeMap, expression: unknown): boolean;
  matchesFilter(item: AttributeMap, filter: unknown, operator: unknown): boolean;
  mapPaths(paths: unknown, item: AttributeMap): AttributeMap;
}

/** dynalite stops a page at 1 MB of items (its own size rule), as DynamoDB does. */
const PAGE_BYTES = 1024 * 1024;

/** The range of the table's item keys, as dynalite's item store prefixes them. */
function itemRange(tableName: string, opts: RangeOptions): RangeOptions {
  const prefix = itemStoreKey(tableName, "");
  const range: RangeOptions = { reverse: opts.reverse === true };
  if (opts.gte) range.gte = prefix + opts.gte;
  else if (opts.gt) range.gt = prefix + opts.gt;
  else range.gte = prefix;
  if (opts.lte) range.lte = prefix + opts.lte;
  else if (opts.lt) range.lt = prefix + opts.lt;
  else range.lt = `${prefix}\xFF`;
  if (opts.limit !== undefined && opts.limit > 0) range.limit = opts.limit;
  return range;
}

function directQueryTable(db: DynaliteDbModule, original: QueryTableFn): QueryTableFn {
  return (store, table, data, opts, isLocal, fetchFromItemDb, startKeyNames, cb) => {
    if (data.IndexName || fetchFromItemDb) {
      original(store, table, data, opts, isLocal, fetchFromItemDb, startKeyNames, cb);
      return;
    }
    const limit = typeof data.Limit === "number" ? data.Limit : undefined;
    const calculateCapacity =
      data.ReturnConsumedCapacity === "TOTAL" || data.ReturnConsumedCapacity === "INDEXES";
    const rangeKey = table.KeySchema[1]?.AttributeName;
    const range = itemRange(String(data.TableName), opts);
    const memory = orderedMemoryDbOf(store.db);
    const read = async (): Promise<Record<string, unknown>> => {
      // The same stop rule as dynalite's takeWhile: Limit items, or the first past 1 MB.
      let items: AttributeMap[] = [];
      let size = 0;
      let tableCapacity = 0;
      /** Takes an item unless the page is full; false once it is. */
      const take = (item: AttributeMap): boolean => {
        if ((limit !== undefined && items.length >= limit) || size >= PAGE_BYTES) return false;
        if (calculateCapacity) tableCapacity += db.itemSize(item);
        size += db.itemSize(item, true, true, rangeKey);
        items.push(item);
        return true;
      };
      if (memory) {
        // In memory: the stored items themselves, read at once (they are only read and answered).
        memory.visitSync(range, (item) => take(item as AttributeMap));
      } else {
        const iterator = store.db.values(range);
        try {
          const batch = limit !== undefined ? limit + 1 : 64;
          for (;;) {
            const got = await iterator.nextv(batch);
            if (got.length === 0) break;
            let stopped = false;
            for (const item of got) {
              if (!take(item)) {
                stopped = true;
                break;
              }
            }
            if (stopped) break;
          }
        } finally {
          await iterator.close();
        }
      }
      const count = items.length;
      const lastItem = items[count - 1];
      const filter = data._filter as { expression: unknown } | undefined;
      const queryFilter = data.QueryFilter || data.ScanFilter;
      if (filter) items = items.filter((item) => db.matchesExprFilter(item, filter.expression));
      else if (queryFilter) {
        items = items.filter((item) => db.matchesFilter(item, queryFilter, data.ConditionalOperator));
      }
      const result: Record<string, unknown> = { ScannedCount: count };
      if ((limit !== undefined && count >= limit) || size >= PAGE_BYTES) {
        if (limit) items.splice(limit);
        if (lastItem) {
          const key: AttributeMap = {};
          for (const name of startKeyNames) key[name] = lastItem[name] as Record<string, unknown>;
          result.LastEvaluatedKey = key;
        }
      }
      const projection = data._projection as { paths: unknown } | undefined;
      const paths = projection ? projection.paths : data.AttributesToGet;
      if (paths) items = items.map((item) => db.mapPaths(paths, item));
      result.Count = items.length;
      if (data.Select !== "COUNT") result.Items = items;
      if (calculateCapacity) {
        const tableUnits = Math.ceil(tableCapacity / 1024 / 4) * (data.ConsistentRead ? 1 : 0.5);
        const consumed: Record<string, unknown> = { CapacityUnits: tableUnits, TableName: data.TableName };
        if (data.ReturnConsumedCapacity === "INDEXES") consumed.Table = { CapacityUnits: tableUnits };
        result.ConsumedCapacity = consumed;
      }
      return result;
    };
    read().then(
      (result) => cb(null, result),
      (err: unknown) => cb(err as Error),
    );
  };
}

/**
 * Puts the direct read in place of dynalite's `queryTable` (once per process). The replaced
 * function stays reachable as `queryTable.original` (test/dynamodb/direct-query.test.ts compares).
 */
export function installDirectQuery(): void {
  const db = require("dynalite/db") as DynaliteDbModule;
  if (db.queryTable.original) return;
  const original = db.queryTable;
  const direct: InstalledQueryTable = directQueryTable(db, original);
  direct.original = original;
  db.queryTable = direct;
}
