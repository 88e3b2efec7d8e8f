// What an answer costs where it is delivered. In AWS the API's answer is the `body` string of the
// JSON result its Lambda returns (with `statusCode`, `headers`, `isBase64Encoded`), and Lambda
// refuses a result over 6 MB: the body's JSON is escaped once more in it (`"` costs 2 bytes, an
// escaped `\u0001` 7, a newline 2). So every answer that is paged (history), parted (the JSON Lines
// export) or listed (files) is measured this way, on the local stack as in AWS: what fits here
// fits there. The Lambda entry (http/fit-lambda-result.ts) measures the whole result the same way.

/** Lambda's limit on a synchronous invocation's response (6 MB; its runtime refuses 6,291,557 bytes). */
export const LAMBDA_RESPONSE_BYTES = 6 * 1024 * 1024;
/** Largest result the API returns: room is left for what the runtime adds around it. */
export const LAMBDA_RESPONSE_LIMIT_BYTES = LAMBDA_RESPONSE_BYTES - 16 * 1024;
/**
 * Largest body of a paged, parted or listed answer, as its envelope counts it: room is left for
 * the status and headers (a `Link` with a cursor, a few hundred bytes) under the limit.
 */
export const PAGED_RESPONSE_BYTES = 5 * 1024 * 1024;

/**
 * Bytes a body text costs as the string member of Lambda's JSON result (without its two quotes).
 *
 * @example
 * envelopeBytes('{"a":"\\u0001"}') // 19: each `"` is 2 bytes, `\u0001` is 7
 */
export function envelopeBytes(text: string): number {
  return Buffer.byteLength(JSON.stringify(text), "utf8") - 2;
}

/** Bytes a value costs sent as JSON in Lambda's result (see {@link envelopeBytes}). */
export function envelopeJsonBytes(value: unknown): number {
  return envelopeBytes(JSON.stringify(value) ?? "");
}

/**
 * Whether a body text costs at most `limit` in the envelope. A UTF-16 unit costs at most 6 bytes
 * there (a raw control character, `\u0001`), so a usual body is judged by its length alone and only
 * one that could pass the limit is serialized once more.
 */
export function envelopeBytesWithin(text: string, limit: number): boolean {
  return 6 * text.length <= limit || envelopeBytes(text) <= limit;
}
