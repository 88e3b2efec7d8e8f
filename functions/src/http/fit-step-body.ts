// A step's response made to fit a transport's size limit (API Gateway's 128 KB WebSocket message,
// Lambda's 6 MB response). The step already ran and is stored whole in the history (itself bounded):
// only this answer gives way, in its long strings, in the order of what an agent needs least: the
// echo of the code it just sent (`metadata.last_code`), then stdout, then stderr (the traceback).
// What was cut is flagged in `info` (`*_truncated`, `truncated_by`).
import { toWireJson } from "./wire-json.js";

/** The part of a step's body (reset / step / fork) that fitting reads. */
interface StepBodyLike {
  observation?: { stdout?: unknown; stderr?: unknown };
  metadata?: Record<string, unknown>;
  info?: Record<string, unknown>;
}

/** Bytes a text costs on the transport (for a Lambda response: as a string inside its JSON envelope). */
export type TransportSize = (text: string) => number;

/** Bytes of the text as UTF-8 (a WebSocket message). */
export const utf8Size: TransportSize = (text) => Buffer.byteLength(text, "utf8");

/** The longest prefix of `s` whose JSON string costs at most `budget` on the transport. */
function cutToBytes(s: string, budget: number, size: TransportSize): string {
  const cost = (t: string) => size(JSON.stringify(t));
  if (cost(s) <= budget) return s;
  let lo = 0;
  let hi = s.length;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (cost(s.slice(0, mid)) <= budget) lo = mid;
    else hi = mid - 1;
  }
  return s.slice(0, lo);
}

/**
 * The message carrying a step body, as wire JSON within `limit` bytes of `size`, its long strings
 * cut as the header says; `undefined` when it does not fit even so (or is not a step body).
 *
 * @param data a step body (`observation`, `metadata`, `info`)
 * @param wrap the message around the body (the body itself for HTTP; `{ type, data }` for /ws)
 *
 * @example
 * fitStepBody(body, (d) => d, 6_000_000, envelopeBytes, "lambda_response_limit") // core/response-size.ts
 */
export function fitStepBody(
  data: unknown,
  wrap: (data: unknown) => unknown,
  limit: number,
  size: TransportSize,
  truncatedBy: string,
): string | undefined {
  const body = data as StepBodyLike | null | undefined;
  const observation = body?.observation;
  if (!body || typeof body !== "object" || !observation) return undefined;
  const stdout = String(observation.stdout ?? "");
  const stderr = String(observation.stderr ?? "");
  const lastCode = typeof body.metadata?.last_code === "string" ? body.metadata.last_code : undefined;
  const build = (out: string, err: string, code: string | undefined, info: Record<string, unknown>) =>
    wrap({
      ...body,
      info: { ...body.info, ...info, truncated_by: truncatedBy },
      observation: { ...observation, stdout: out, stderr: err },
      ...(code !== undefined ? { metadata: { ...body.metadata, last_code: code } } : {}),
    });
  // Room for the strings: the message without them, with every flag set, and the float rewrite's bytes.
  const flags = { stdout_truncated: true, stderr_truncated: true, last_code_truncated: true };
  let budget = limit - size(toWireJson(build("", "", lastCode === undefined ? undefined : "", flags))) - 64;
  if (budget <= 0) return undefined;
  const keptErr = cutToBytes(stderr, budget, size);
  budget -= size(JSON.stringify(keptErr));
  const keptOut = budget > 0 ? cutToBytes(stdout, budget, size) : "";
  budget -= size(JSON.stringify(keptOut));
  const keptCode = lastCode === undefined ? undefined : budget > 0 ? cutToBytes(lastCode, budget, size) : "";
  const fitted = toWireJson(
    build(keptOut, keptErr, keptCode, {
      ...(keptOut.length < stdout.length ? { stdout_truncated: true } : {}),
      ...(keptErr.length < stderr.length ? { stderr_truncated: true } : {}),
      ...(keptCode !== undefined && lastCode !== undefined && keptCode.length < lastCode.length
        ? { last_code_truncated: true }
        : {}),
    }),
  );
  return size(fitted) <= limit ? fitted : undefined;
}
