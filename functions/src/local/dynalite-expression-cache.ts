// dynalite parses every condition, key condition and filter expression with its PEG parser on each
// request: the largest single cost of the local DynamoDB per step, for the same two or three
// expressions every time. Parses are memoised here, in front of dynalite's parser.
//
// A parse depends on the expression text, the attribute names, and of the attribute values only on
// which are present and their types (`begins_with`, `size` and the tree's `attrType` look at a
// value's type), except in two places that read a value's content: BETWEEN (its bounds must be in
// order) and `attribute_type` (its type name must be valid). So a parse is kept as a template keyed
// by text, names and the values' types, with a slot where each value goes; the values BETWEEN and
// `attribute_type` read are part of the key as well (found on the first parse of each text and
// names). A hit builds a fresh tree holding the request's own value objects, exactly what the
// parser would return (dynalite later rewrites a key condition's tree in place), and replays the
// parse's one effect on its context: the names and values it used are no longer "unused"
// (dynalite's "Value provided in ExpressionAttributeValues unused" check).
// Only successful parses are kept: error messages and syntax errors are produced by dynalite
// itself on every request.
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

interface ParseContext {
  attrNames?: Record<string, string>;
  attrVals?: Record<string, unknown>;
  unusedAttrNames?: Record<string, boolean>;
  unusedAttrVals?: Record<string, boolean>;
  [other: string]: unknown;
}
type Parse = (input: string, options: { context: ParseContext }) => unknown;

/** Where a template takes the request's attribute value of this name. */
class ValueSlot {
  constructor(readonly name: string) {}
}

interface Parsed {
  /** The tree, values replaced by {@link ValueSlot}s. */
  readonly template: object;
  readonly usedNames: readonly string[];
  readonly usedVals: readonly string[];
}

/** Entries kept; the whole map is dropped when full (BETWEEN bounds are part of some keys). */
const MAX_ENTRIES = 2_000;

/** A deep copy that keeps prototypes (dynalite's trees hold `Object.create(null)` maps). */
function copyTree<T>(value: T, fill: (slot: ValueSlot) => unknown): T {
  if (value === null || typeof value !== "object") return value;
  if (value instanceof ValueSlot) return fill(value) as T;
  if (Array.isArray(value)) return value.map((v) => copyTree(v, fill)) as T;
  const out = Object.create(Object.getPrototypeOf(value)) as Record<string, unknown>;
  for (const key of Object.keys(value)) out[key] = copyTree((value as Record<string, unknown>)[key], fill);
  return out as T;
}

/** The tree with each of the context's value objects replaced by a slot naming it. */
function templateOf(tree: object, attrVals: Record<string, unknown>): object {
  const names = new Map<unknown, string>();
  for (const [name, value] of Object.entries(attrVals)) names.set(value, name);
  const walk = (value: unknown): unknown => {
    if (value === null || typeof value !== "object") return value;
    const name = names.get(value);
    if (name !== undefined) return new ValueSlot(name);
    if (Array.isArray(value)) return value.map(walk);
    const out = Object.create(Object.getPrototypeOf(value)) as Record<string, unknown>;
    for (const key of Object.keys(value)) out[key] = walk((value as Record<string, unknown>)[key]);
    return out;
  };
  return walk(tree) as object;
}

/** Names of the values whose content the parse read (BETWEEN bounds, `attribute_type`'s type name). */
function contentReadIn(template: object): string[] {
  const found = new Set<string>();
  const walk = (node: unknown): void => {
    if (node === null || typeof node !== "object" || node instanceof ValueSlot) return;
    if (Array.isArray(node)) {
      for (const n of node) walk(n);
      return;
    }
    const n = node as { type?: unknown; name?: unknown; args?: unknown };
    if (Array.isArray(n.args)) {
      const read =
        n.type === "between" ? n.args.slice(1) : n.name === "attribute_type" ? n.args.slice(1, 2) : [];
      for (const arg of read) if (arg instanceof ValueSlot) found.add(arg.name);
    }
    for (const key of Object.keys(node)) walk((node as Record<string, unknown>)[key]);
  };
  walk(template);
  return [...found];
}

/** Which values are present, with their types (a value's key set), in order. */
function valueTypes(attrVals: Record<string, unknown> | undefined): string {
  if (!attrVals) return "";
  let out = "";
  for (const name in attrVals) {
    const value = attrVals[name];
    out += `${name}=${value !== null && typeof value === "object" ? Object.keys(value).join(",") : typeof value};`;
  }
  return out;
}

/** Whether two names share one value object (a template could not tell them apart). */
function sharesValueObjects(attrVals: Record<string, unknown>): boolean {
  const values = Object.values(attrVals).filter((v) => v !== null && typeof v === "object");
  return new Set(values).size !== values.length;
}

const allTrue = (map: Record<string, unknown> | undefined) => {
  const out: Record<string, boolean> = {};
  for (const key of Object.keys(map ?? {})) out[key] = true;
  return out;
};

/** `parse` with its successful results memoised (see the file comment). */
export function memoisedParse(parse: Parse): Parse {
  const cache = new Map<string, Parsed>();
  /** By text and names: the values whose content is part of the key. */
  const contentNames = new Map<string, readonly string[]>();
  const keyOf = (shape: string, context: ParseContext, content: readonly string[]) => {
    let key = `${shape}\u0000${valueTypes(context.attrVals)}`;
    for (const name of content) key += `\u0000${JSON.stringify(context.attrVals?.[name] ?? null)}`;
    return key;
  };
  return (input, options) => {
    const context = options.context;
    const shape = `${input}\u0000${JSON.stringify(context.attrNames ?? null)}`;
    const content = contentNames.get(shape);
    const parsed = content ? cache.get(keyOf(shape, context, content)) : undefined;
    if (parsed) {
      for (const k of parsed.usedNames) delete context.unusedAttrNames?.[k];
      for (const k of parsed.usedVals) delete context.unusedAttrVals?.[k];
      const attrVals = context.attrVals ?? {};
      return copyTree(parsed.template, (slot) => attrVals[slot.name]);
    }
    // Parsed against fresh "unused" sets, so what it used is known whatever ran before it.
    const unusedNames = allTrue(context.attrNames);
    const unusedVals = allTrue(context.attrVals);
    const result = parse(input, {
      context: { ...context, unusedAttrNames: unusedNames, unusedAttrVals: unusedVals },
    });
    const usedNames = Object.keys(context.attrNames ?? {}).filter((k) => !(k in unusedNames));
    const usedVals = Object.keys(context.attrVals ?? {}).filter((k) => !(k in unusedVals));
    for (const k of usedNames) delete context.unusedAttrNames?.[k];
    for (const k of usedVals) delete context.unusedAttrVals?.[k];
    // An error message is not kept: dynalite makes it again on every such request.
    if (result === null || typeof result !== "object") return result;
    const attrVals = context.attrVals ?? {};
    if (sharesValueObjects(attrVals)) return result;
    const template = templateOf(result, attrVals);
    const read = content ?? contentReadIn(template);
    if (cache.size >= MAX_ENTRIES) {
      cache.clear();
      contentNames.clear();
    }
    if (!content) contentNames.set(shape, read);
    cache.set(keyOf(shape, context, read), { template, usedNames, usedVals });
    return result;
  };
}

/** Puts the memo in front of dynalite's condition parser (its validations call it through the module). */
export function memoiseDynaliteConditionParser(): void {
  const parser = require("dynalite/db/conditionParser") as { parse: Parse; memoised?: boolean };
  if (parser.memoised) return;
  parser.parse = memoisedParse(parser.parse);
  parser.memoised = true;
}
