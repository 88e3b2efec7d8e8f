// The API Lambda's result made to fit Lambda's response limit (core/response-size.ts), as its JSON
// envelope counts it. Paged, parted and listed answers are cut to fit where they are built; what
// can still pass the limit is a step's answer (its outputs are the cell's), which gives way in its
// long strings (fit-step-body.ts; the step is stored whole). Anything else over the limit is
// answered 413 `response_too_large` in the one error shape: never Lambda's own error (a 5xx).
import { defaultIsContentTypeBinary } from "hono/aws-lambda";
import {
  envelopeBytes,
  envelopeBytesWithin,
  LAMBDA_RESPONSE_BYTES,
  LAMBDA_RESPONSE_LIMIT_BYTES,
} from "../core/response-size.js";
import { fitStepBody } from "./fit-step-body.js";

/** The members of a Lambda proxy result that fitting reads (API Gateway payload v1/v2, function URL). */
export interface LambdaResult {
  statusCode: number;
  body: string;
  headers?: Record<string, unknown>;
  isBase64Encoded?: boolean;
}

/**
 * Whether hono's Lambda adapter sends a content type base64-encoded: as its default, except the
 * JSON Lines export, which is text (base64 would make a 5 MB part 6.7 MB).
 */
export function isContentTypeBinary(contentType: string): boolean {
  if (/^application\/x-ndjson\s*(?:;|$)/i.test(contentType)) return false;
  return defaultIsContentTypeBinary(contentType);
}

/** What is known of a result that could not be fitted (for the log line). */
export interface RefusedResult {
  readonly statusCode: number;
  readonly bodyBytes: number;
  readonly isBase64Encoded: boolean;
}

/**
 * The result within {@link LAMBDA_RESPONSE_LIMIT_BYTES} as Lambda counts it: unchanged when it
 * fits (a usual answer is judged by its length alone), a step's answer with its outputs cut and
 * flagged, or else a 413 `response_too_large`.
 *
 * @param onRefused called when the answer is replaced by the 413 (to log it)
 */
export function fitLambdaResult<R extends LambdaResult>(
  result: R,
  onRefused?: (refused: RefusedResult) => void,
): R {
  const overhead = Buffer.byteLength(JSON.stringify({ ...result, body: "" }), "utf8");
  const room = LAMBDA_RESPONSE_LIMIT_BYTES - overhead;
  // base64 has only [A-Za-z0-9+/=]: its length is its size in the envelope.
  const fits = result.isBase64Encoded ? result.body.length <= room : envelopeBytesWithin(result.body, room);
  if (fits) return result;
  const headers = { ...result.headers };
  delete headers["content-length"];
  if (!result.isBase64Encoded) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(result.body);
    } catch {
      parsed = undefined;
    }
    const fitted = fitStepBody(parsed, (data) => data, room, envelopeBytes, "lambda_response_limit");
    if (fitted !== undefined) return { ...result, headers, body: fitted } as R;
  }
  const bodyBytes = result.isBase64Encoded ? result.body.length : envelopeBytes(result.body);
  onRefused?.({ statusCode: result.statusCode, bodyBytes, isBase64Encoded: result.isBase64Encoded === true });
  // Headers about the body that is not sent go with it (a part's cursor, a download's file name).
  for (const name of ["content-type", "content-disposition", "link", "x-next-cursor"]) delete headers[name];
  return {
    ...result,
    statusCode: 413,
    isBase64Encoded: false,
    headers: { ...headers, "content-type": "application/json" },
    body: JSON.stringify({
      error: {
        code: "response_too_large",
        message: `The answer is ${bodyBytes} bytes as Lambda counts it, over its ${LAMBDA_RESPONSE_BYTES}-byte response limit. Ask for less: a smaller \`limit\` for a page, or the history as JSON Lines (\`format=jsonl\`, in parts).`,
        details: { response_bytes: bodyBytes, limit_bytes: LAMBDA_RESPONSE_LIMIT_BYTES },
      },
    }),
  } as R;
}
