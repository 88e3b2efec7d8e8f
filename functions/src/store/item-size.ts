// Item sizes and request units as DynamoDB bills them (on-demand), for the 400 KB item limit and
// for reporting what a step costs (`npm run bench`, docs/DEPLOY.md). Rules from the DynamoDB
// developer guide, "Item sizes and formats":
// - an item's size is the sum of its attribute names (UTF-8 bytes) and values;
// - String: UTF-8 bytes; Binary: raw bytes; Number: 1 byte + 1 per two significant digits;
// - Boolean and Null: 1 byte; List and Map: 3 bytes + 1 byte per element + the elements
//   (a Map's element names count too); sets: the sum of their elements.
// Units: a write is 1 WRU per started 1 KB (updates and deletes: of the larger of the old and new
// item; transactional writes count twice); a strongly consistent read is 1 RRU per started 4 KB
// (eventually consistent: half), a Query sums the sizes of every item it reads before rounding.

/**
 * Bytes of a number under DynamoDB's rule: 1 + one per two significant digits (leading and
 * trailing zeros trimmed), one more for a negative number, 1 for zero.
 */
export function numberBytes(text: string): number {
  const digits = text
    .replace(/^[+-]/, "")
    .replace(/[eE].*$/, "")
    .replace(".", "")
    .replace(/^0+/, "")
    .replace(/0+$/, "");
  if (digits.length === 0) return 1;
  return 1 + Math.ceil(digits.length / 2) + (text.startsWith("-") ? 1 : 0);
}

/** Bytes of one attribute value in document form (lib-dynamodb's native values). */
export function valueBytes(value: unknown): number {
  if (typeof value === "string") return Buffer.byteLength(value, "utf8");
  if (typeof value === "number" || typeof value === "bigint") return numberBytes(String(value));
  if (typeof value === "boolean" || value === null || value === undefined) return 1;
  if (value instanceof Uint8Array) return value.byteLength;
  if (value instanceof Set) {
    let n = 0;
    for (const v of value) n += valueBytes(v);
    return n;
  }
  if (Array.isArray(value)) return value.reduce((n: number, v) => n + 1 + valueBytes(v), 3);
  if (typeof value === "object") {
    // lib-dynamodb's NumberValue keeps a decimal string.
    const numberValue = (value as { value?: unknown }).value;
    if (value.constructor?.name === "NumberValue" && typeof numberValue === "string")
      return numberBytes(numberValue);
    let n = 3;
    for (const [k, v] of Object.entries(value)) n += 1 + Buffer.byteLength(k, "utf8") + valueBytes(v);
    return n;
  }
  return 0;
}

/** Bytes of a whole item in document form. */
export function itemBytes(item: Readonly<Record<string, unknown>>): number {
  let n = 0;
  for (const [k, v] of Object.entries(item)) {
    if (v === undefined) continue;
    n += Buffer.byteLength(k, "utf8") + valueBytes(v);
  }
  return n;
}

/** DynamoDB's item size limit. */
export const MAX_ITEM_BYTES = 400 * 1024;

/** Write request units of writing `bytes` (the larger of old and new item for an update). */
export function writeUnits(bytes: number, transactional = false): number {
  return Math.max(1, Math.ceil(bytes / 1024)) * (transactional ? 2 : 1);
}

/** Read request units of reading `bytes` in one request (a Query: the sum of its items). */
export function readUnits(bytes: number, consistent: boolean): number {
  const units = Math.max(1, Math.ceil(bytes / 4096));
  return consistent ? units : units / 2;
}
