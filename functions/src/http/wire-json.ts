// JSON as OpenEnv's server writes it. Python's json module writes a float reward as `0.0` or `-1.0`;
// JSON.stringify writes the integral ones as `0` and `-1`, which strict clients (and pydantic
// models that compare types) read as integers. So `reward` members that are integral numbers are
// written with a `.0`. Everything else is plain JSON.stringify.
import { randomBytes } from "node:crypto";

/** Keys whose numbers are always written as JSON floats. */
const FLOAT_KEYS = new Set(["reward"]);

// A marker no JSON string of user data can equal: it carries a random per-process token.
const MARKER = `\u0000float-${randomBytes(8).toString("hex")}:`;
const MARKER_JSON = JSON.stringify(MARKER).slice(1, -1);
const MARKER_PATTERN = new RegExp(`"${MARKER_JSON.replace(/[\\^$.*+?()[\]{}|]/g, "\\$&")}(-?\\d+)"`, "g");

function floatReplacer(this: unknown, key: string, value: unknown): unknown {
  if (FLOAT_KEYS.has(key) && typeof value === "number" && Number.isInteger(value) && Math.abs(value) < 1e21) {
    return `${MARKER}${value}`;
  }
  return value;
}

/**
 * `JSON.stringify(value)`, except that integral `reward` numbers are written as floats.
 *
 * @example
 * toWireJson({ reward: -1, step_count: 1 }) // '{"reward":-1.0,"step_count":1}'
 */
export function toWireJson(value: unknown): string {
  const text = JSON.stringify(value, floatReplacer);
  return text.includes(MARKER_JSON) ? text.replace(MARKER_PATTERN, (_m, n: string) => `${n}.0`) : text;
}
