// The API function has two HTTP doors in AWS: the HTTP API (API Gateway, payload format 2.0) and
// the function's own Lambda function URL, which delivers the same format with a
// `<url-id>.lambda-url.<region>.on.aws` domain. The Hono adapter reads both alike (rawPath, headers,
// cookies, base64 bodies). What the function URL lacks is API Gateway's access log, so the API
// writes that line itself for requests that came through it: the fields of the stage's access log
// (infra/lib/coding-environment.ts), so one metric filter pattern reads both.

/** The parts of an API Gateway v2 / function URL event this module reads. */
export interface HttpEventContext {
  readonly rawPath?: string;
  readonly requestContext?: {
    readonly domainName?: string;
    readonly requestId?: string;
    readonly http?: { readonly method?: string; readonly sourceIp?: string };
  };
}

/** The parts of a Lambda HTTP result this module reads. */
export interface HttpResultSummary {
  readonly statusCode: number;
  readonly body?: string;
  readonly isBase64Encoded?: boolean;
}

const FUNCTION_URL_DOMAIN = /^[a-z0-9]+\.lambda-url\.[a-z0-9-]+\.on\.aws$/i;

/** Whether `event` came through the function's Lambda function URL (not API Gateway). */
export function isFunctionUrlEvent(event: HttpEventContext): boolean {
  const domain = event.requestContext?.domainName;
  return typeof domain === "string" && FUNCTION_URL_DOMAIN.test(domain);
}

/** The access line's fields, as the HTTP API stage's access log names them. */
export interface FunctionUrlAccessFields {
  readonly door: "function_url";
  readonly requestId: string;
  readonly ip: string;
  readonly method: string;
  readonly path: string;
  readonly status: number;
  /** Milliseconds from the handler's start to its result (the API's own time). */
  readonly latencyMs: number;
  /** Bytes of the response body as sent. */
  readonly responseLength: number;
}

function bodyBytes(result: HttpResultSummary): number {
  const body = result.body ?? "";
  if (!result.isBase64Encoded) return Buffer.byteLength(body, "utf8");
  const padding = body.endsWith("==") ? 2 : body.endsWith("=") ? 1 : 0;
  return Math.floor((body.length * 3) / 4) - padding;
}

/**
 * The access line of one function URL request. No headers and no query string (an API key can be
 * in either): the path, the caller's address and the outcome only.
 */
export function functionUrlAccessFields(
  event: HttpEventContext,
  result: HttpResultSummary,
  latencyMs: number,
): FunctionUrlAccessFields {
  const context = event.requestContext;
  return {
    door: "function_url",
    requestId: context?.requestId ?? "-",
    ip: context?.http?.sourceIp ?? "-",
    method: context?.http?.method ?? "-",
    path: event.rawPath ?? "-",
    status: result.statusCode,
    latencyMs: Math.round(latencyMs),
    responseLength: bodyBytes(result),
  };
}
