// dynalite's storage key of an item starts with a hash prefix of its partition key: an MD5 digest
// (a new Hash object, three updates, a hex digest) on every request that names an item, for the
// few partition keys a step uses over and over. The prefixes are memoised here, by type and value,
// and dynalite's `createKey` (which its actions call through the module, and the front through
// dynalite-store.ts) is replaced by the same function over the memoised prefix. Both stay pure
// functions of their arguments, so keys are the ones dynalite makes.
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

type HashPrefix = (hashKey: unknown, hashType: string, rangeKey?: unknown, rangeType?: string) => string;
interface KeyTable {
  KeySchema: Array<{ AttributeName: string }>;
}
type CreateKey = ((
  item: Record<string, Record<string, unknown>>,
  table: KeyTable,
  keySchema?: unknown,
) => string) & {
  original?: CreateKey;
};
interface DynaliteKeys {
  hashPrefix: HashPrefix & { memoised?: boolean; original?: HashPrefix };
  createKey: CreateKey;
  toRangeStr(keyPiece: unknown, type?: string): string;
  traverseKey(
    table: KeyTable,
    keySchema: unknown,
    visit: (attr: string, type: string, isHash: boolean) => unknown,
  ): unknown;
}

/** Prefixes kept; the map is dropped when full (a partition key per episode). */
const MAX_PREFIXES = 10_000;

/** Puts the memoised prefix and dynalite's createKey over it in place (once per process). */
export function memoiseDynaliteKeys(): void {
  const db = require("dynalite/db") as DynaliteKeys;
  if (db.hashPrefix.memoised) return;
  const digest = db.hashPrefix;
  const prefixes = new Map<string, string>();
  const hashPrefix: HashPrefix & { memoised?: boolean; original?: HashPrefix } = (
    hashKey,
    hashType,
    rangeKey,
    rangeType,
  ) => {
    // Only the single-key form with a string value (every item key's): anything else as dynalite.
    if (rangeKey !== undefined || rangeType !== undefined || typeof hashKey !== "string") {
      return digest(hashKey, hashType, rangeKey, rangeType);
    }
    const id = `${hashType}\u0000${hashKey}`;
    let prefix = prefixes.get(id);
    if (prefix === undefined) {
      prefix = digest(hashKey, hashType);
      if (prefixes.size >= MAX_PREFIXES) prefixes.clear();
      prefixes.set(id, prefix);
    }
    return prefix;
  };
  hashPrefix.memoised = true;
  hashPrefix.original = digest;
  db.hashPrefix = hashPrefix;
  // dynalite's createKey, line for line, with the memoised prefix (the replaced one stays
  // reachable as `createKey.original`: test/dynamodb/memory-db.test.ts compares).
  const original = db.createKey;
  const createKey: CreateKey = (item, table, keySchema) => {
    let keyStr: string | undefined;
    db.traverseKey(table, keySchema ?? table.KeySchema, (attr, type, isHash) => {
      const piece = (item[attr] as Record<string, unknown>)[type];
      if (isHash) keyStr = `${hashPrefix(piece, type)}/`;
      keyStr += `${db.toRangeStr(piece, type)}/`;
      return undefined;
    });
    return keyStr as string;
  };
  createKey.original = original;
  db.createKey = createKey;
}
