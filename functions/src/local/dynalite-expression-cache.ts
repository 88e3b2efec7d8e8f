// dynalite parses every condition, key condition and filter expression with its PEG parser on each
// request: about a twentieth of the local API process's CPU per step, for the same two or three
// expressions every time. Parses are memoised here, in front of dynalite's parser, by the
// expression text and the attribute names and values it may read (values are resolved into the
// tree). A hit returns a fresh copy (dynalite rewrites a key condition's tree in place) and
// replays the parse's one effect on its context: the names and values it used are no longer
// "unused" (dynalite's "Value provided in ExpressionAttributeValues unused" check).
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

interface Parsed {
  readonly result: object;
  readonly usedNames: readonly string[];
  readonly usedVals: readonly string[];
}

/** Entries kept; the whole map is dropped when full (keys embed values, e.g. an episode's key). */
const MAX_ENTRIES = 2_000;

/** A deep copy that keeps prototypes (dynalite's trees hold `Object.create(null)` maps). */
function copyTree<T>(value: T): T {
  if (value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map(copyTree) as T;
  const out = Object.create(Object.getPrototypeOf(value)) as Record<string, unknown>;
  for (const key of Object.keys(value)) out[key] = copyTree((value as Record<string, unknown>)[key]);
  return out as T;
}

const allTrue = (map: Record<string, unknown> | undefined) => {
  const out: Record<string, boolean> = {};
  for (const key of Object.keys(map ?? {})) out[key] = true;
  return out;
};

/** `parse` with its successful results memoised (see the file comment). */
export function memoisedParse(parse: Parse): Parse {
  const cache = new Map<string, Parsed>();
  return (input, options) => {
    const context = options.context;
    const key = `${input}\u0000${JSON.stringify(context.attrNames ?? null)}\u0000${JSON.stringify(context.attrVals ?? null)}`;
    const parsed = cache.get(key);
    if (!parsed) {
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
      if (cache.size >= MAX_ENTRIES) cache.clear();
      // Kept as a copy: the request this parse was for owns `result` (and the values in it).
      cache.set(key, { result: copyTree(result), usedNames, usedVals });
      return result;
    }
    for (const k of parsed.usedNames) delete context.unusedAttrNames?.[k];
    for (const k of parsed.usedVals) delete context.unusedAttrVals?.[k];
    return copyTree(parsed.result);
  };
}

/** Puts the memo in front of dynalite's condition parser (its validations call it through the module). */
export function memoiseDynaliteConditionParser(): void {
  const parser = require("dynalite/db/conditionParser") as { parse: Parse; memoised?: boolean };
  if (parser.memoised) return;
  parser.parse = memoisedParse(parser.parse);
  parser.memoised = true;
}
