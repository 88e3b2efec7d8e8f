/**
 * The SDK's one error hierarchy. Every error the API answers (its `{ "error": { code, message,
 * details } }` shape) becomes a {@link CodingEnvError} subclass chosen by HTTP status.
 *
 * User-code failures are never thrown: a Python exception is data in the step's observation
 * (`exit_code` 1, the traceback in `stderr`).
 *
 * @example
 * ```ts
 * import { CodingEnv, NotFoundError } from "@coding-env/sdk";
 *
 * const env = new CodingEnv({ episodeId: "ep_gone" });
 * try {
 *   await env.state();
 * } catch (err) {
 *   if (err instanceof NotFoundError) console.log(err.code); // "episode_not_found"
 * }
 * ```
 */

/** The API's error body: `{ "error": { "code", "message", "details" } }`. */
export interface ApiErrorBody {
  readonly error: {
    readonly code: string;
    readonly message: string;
    readonly details?: Record<string, unknown>;
  };
  /** FastAPI-style validation errors, present on a 422. */
  readonly detail?: ReadonlyArray<{ loc: unknown[]; msg: string; type: string }>;
}

/** Fields every {@link CodingEnvError} carries. */
export interface CodingEnvErrorOpts {
  /** HTTP status, or 0 when no response was received (network failure, client-side timeout). */
  readonly status: number;
  /** The API's machine-readable code (`episode_not_found`, `conflict`, ...), or an SDK code. */
  readonly code: string;
  /** The API's `details` object. @default {} */
  readonly details?: Record<string, unknown>;
  /** Milliseconds the server asked to wait (`Retry-After`), when it did. */
  readonly retryAfterMs?: number;
  /** The HTTP method and path of the failed call, e.g. `POST /step`. */
  readonly endpoint?: string;
  /** The underlying error (network failure, abort). */
  readonly cause?: unknown;
}

/**
 * Base class of every error the SDK throws.
 *
 * @example
 * ```ts
 * try {
 *   await env.step("print(1)");
 * } catch (err) {
 *   if (err instanceof CodingEnvError) console.log(err.status, err.code, err.message);
 * }
 * ```
 */
export class CodingEnvError extends Error {
  /** HTTP status, or 0 when no response was received. */
  readonly status: number;
  /** Machine-readable code from the API (or `network_error` / `client_timeout` from the SDK). */
  readonly code: string;
  /** The API's `details` object (quota name, validation errors, ...). */
  readonly details: Record<string, unknown>;
  /** Milliseconds the server asked to wait before retrying, when it sent `Retry-After`. */
  readonly retryAfterMs: number | undefined;
  /** The HTTP method and path of the failed call, e.g. `POST /step`. */
  readonly endpoint: string | undefined;

  constructor(message: string, opts: CodingEnvErrorOpts) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.status = opts.status;
    this.code = opts.code;
    this.details = opts.details ?? {};
    this.retryAfterMs = opts.retryAfterMs;
    this.endpoint = opts.endpoint;
  }
}

/**
 * The request was malformed or of the wrong shape: 400 (`bad_request`, `invalid_json`,
 * `episode_required`), 405, 413 (`payload_too_large`, `state_too_large`) and 422
 * (`validation_error`, whose FastAPI `detail` list is in `details.detail`).
 *
 * @example
 * ```ts
 * await env.reset({ stepTimeoutS: -1 }).catch((err) => err instanceof BadRequestError); // true
 * ```
 */
export class BadRequestError extends CodingEnvError {}

/**
 * Missing, wrong or revoked API key (401) or a forbidden call (403).
 *
 * @example
 * ```ts
 * const env = new CodingEnv({ apiKey: "wrong" });
 * await env.reset().catch((err) => err instanceof AuthError); // true on a server with keys on
 * ```
 */
export class AuthError extends CodingEnvError {}

/**
 * The episode (or route) does not exist: unknown, expired, deleted or another tenant's (404).
 *
 * @example
 * ```ts
 * await new CodingEnv({ episodeId: "nope" }).state().catch((err) => err instanceof NotFoundError);
 * ```
 */
export class NotFoundError extends CodingEnvError {}

/**
 * Another step on the same episode was running (409). The episode is unchanged; the SDK retries
 * these by default after `Retry-After`.
 *
 * @example
 * ```ts
 * const env = new CodingEnv({ retry: { retryOnConflict: false } });
 * // two concurrent steps on one episode: one of them rejects with ConflictError
 * ```
 */
export class ConflictError extends CodingEnvError {}

/**
 * A quota or rate limit was hit (429). `retryAfterMs` says when to try again; `details.quota` and
 * `details.resets_at` name the quota.
 *
 * @example
 * ```ts
 * try {
 *   await env.step("print(1)");
 * } catch (err) {
 *   if (err instanceof RateLimitError) console.log(err.code, err.details.resets_at, err.retryAfterMs);
 * }
 * ```
 */
export class RateLimitError extends CodingEnvError {}

/**
 * The executor did not answer in time (504 `executor_timeout`) or the SDK gave up waiting
 * (`timeoutMs`, code `client_timeout`, status 0). A step whose *user code* times out is not an
 * error: it is data (`exit_code` 1, `info.timed_out` true).
 *
 * @example
 * ```ts
 * const env = new CodingEnv({ timeoutMs: 1000, retry: false });
 * await env.step("import time; time.sleep(5)").catch((err) => err instanceof TimeoutError);
 * ```
 */
export class TimeoutError extends CodingEnvError {}

/**
 * The server failed: 500 `internal_error`, 502 `executor_error`, 503, or any other 5xx.
 *
 * @example
 * ```ts
 * try {
 *   await env.step("print(1)");
 * } catch (err) {
 *   if (err instanceof ServerError) console.log(err.status, err.code); // e.g. 502 "executor_error"
 * }
 * ```
 */
export class ServerError extends CodingEnvError {}

/**
 * No response was received: connection refused, reset or dropped (status 0, code
 * `network_error`). Steps are retried safely after these because each carries a `request_id`.
 *
 * @example
 * ```ts
 * await new CodingEnv({ baseUrl: "http://127.0.0.1:1", retry: false }).health()
 *   .catch((err) => err instanceof NetworkError); // true
 * ```
 */
export class NetworkError extends CodingEnvError {}

/**
 * Parses a `Retry-After` header (delta-seconds or an HTTP date) into milliseconds.
 * @internal
 */
export function parseRetryAfter(value: string | null, nowMs: number = Date.now()): number | undefined {
  if (value === null || value.trim() === "") return undefined;
  const trimmed = value.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - nowMs);
}

function classForStatus(status: number): typeof CodingEnvError {
  if (status === 401 || status === 403) return AuthError;
  if (status === 404) return NotFoundError;
  if (status === 409) return ConflictError;
  if (status === 429) return RateLimitError;
  if (status === 408 || status === 504) return TimeoutError;
  if (status >= 500) return ServerError;
  if (status >= 400) return BadRequestError;
  return CodingEnvError;
}

function isApiErrorBody(body: unknown): body is ApiErrorBody {
  if (typeof body !== "object" || body === null || !("error" in body)) return false;
  const error = (body as { error: unknown }).error;
  return (
    typeof error === "object" &&
    error !== null &&
    typeof (error as { code?: unknown }).code === "string" &&
    typeof (error as { message?: unknown }).message === "string"
  );
}

/**
 * Builds the right {@link CodingEnvError} subclass from an HTTP status, the parsed body (the API's
 * error shape, or anything else a proxy may answer) and the `Retry-After` header.
 *
 * @example
 * ```ts
 * const err = errorFromResponse(404, { error: { code: "episode_not_found", message: "gone" } }, null);
 * err instanceof NotFoundError; // true
 * ```
 */
export function errorFromResponse(
  status: number,
  body: unknown,
  retryAfter: string | null,
  endpoint?: string,
): CodingEnvError {
  const ErrorClass = classForStatus(status);
  const retryAfterMs = parseRetryAfter(retryAfter);
  if (isApiErrorBody(body)) {
    const details: Record<string, unknown> = { ...(body.error.details ?? {}) };
    if (body.detail !== undefined) details.detail = body.detail;
    return new ErrorClass(body.error.message, {
      status,
      code: body.error.code,
      details,
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
      ...(endpoint === undefined ? {} : { endpoint }),
    });
  }
  // Not our shape: a gateway or proxy answered (e.g. API Gateway's `{"message": "..."}`).
  const message =
    typeof body === "object" && body !== null && typeof (body as { message?: unknown }).message === "string"
      ? (body as { message: string }).message
      : typeof body === "string" && body.length > 0 && body.length < 500
        ? body
        : `HTTP ${status}`;
  return new ErrorClass(message, {
    status,
    code: `http_${status}`,
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    ...(endpoint === undefined ? {} : { endpoint }),
  });
}
