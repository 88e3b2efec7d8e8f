import {
  type CodingEnvError,
  ConflictError,
  NetworkError,
  RateLimitError,
  ServerError,
  TimeoutError,
} from "./errors.js";

/**
 * When and how the SDK retries a failed call. Every field is optional.
 *
 * - Network errors, client timeouts and 5xx answers are retried only for calls that are safe to
 *   repeat: reads, deletes, `reset()` (the SDK picks the episode id) and `step()` (each carries a
 *   `request_id`; the server replays the stored result instead of running the code again).
 * - 409 (another step was running) and 429 (rate limit) mean nothing was done, so they are retried
 *   for every call, after the server's `Retry-After`.
 * - A 409 `step_in_progress` that says `same_request` is the server's answer to a retry while this
 *   step's first attempt still runs (maybe on another API instance): the SDK keeps retrying the same
 *   `request_id` after `Retry-After`, not counted in `maxRetries`, for at most `retry_within_s`
 *   (when that attempt's claim lapses), and gets the first attempt's result once it has committed.
 *   Only `retry: false` turns this off.
 *
 * @example
 * ```ts
 * const env = new CodingEnv({ retry: { maxRetries: 5, maxRetryAfterMs: 10_000 } });
 * const strict = new CodingEnv({ retry: false }); // fail fast
 * ```
 */
export interface RetryOpts {
  /** Retries after the first attempt. @default 3 */
  readonly maxRetries?: number;
  /** First backoff delay (doubled each retry, with jitter) when the server gives no `Retry-After`. @default 200 */
  readonly initialDelayMs?: number;
  /** Largest backoff delay. @default 5_000 */
  readonly maxDelayMs?: number;
  /** Longest `Retry-After` honoured; a longer one (a daily quota) throws at once. @default 30_000 */
  readonly maxRetryAfterMs?: number;
  /** Retry 409 `conflict` (a concurrent step on the episode). @default true */
  readonly retryOnConflict?: boolean;
  /** Retry 429 `rate_limited` / `quota_exceeded`. @default true */
  readonly retryOnRateLimit?: boolean;
  /** Retry network errors, client timeouts and 5xx for calls safe to repeat. @default true */
  readonly retryOnServerError?: boolean;
}

/** {@link RetryOpts} with every default filled in. */
export type ResolvedRetry = Required<RetryOpts>;

/**
 * The default retry policy.
 *
 * @example
 * ```ts
 * const env = new CodingEnv({ retry: { ...DEFAULT_RETRY, maxRetries: 6 } });
 * ```
 */
export const DEFAULT_RETRY: ResolvedRetry = Object.freeze({
  maxRetries: 3,
  initialDelayMs: 200,
  maxDelayMs: 5_000,
  maxRetryAfterMs: 30_000,
  retryOnConflict: true,
  retryOnRateLimit: true,
  retryOnServerError: true,
});

/**
 * Fills in defaults; `false` means no retries. Throws on nonsensical values.
 * @internal
 */
export function resolveRetry(opts: RetryOpts | false | undefined): ResolvedRetry {
  if (opts === false) return { ...DEFAULT_RETRY, maxRetries: 0 };
  const resolved: ResolvedRetry = { ...DEFAULT_RETRY, ...stripUndefined(opts ?? {}) };
  if (!Number.isInteger(resolved.maxRetries) || resolved.maxRetries < 0) {
    throw new RangeError(`retry.maxRetries must be an integer >= 0, got ${resolved.maxRetries}`);
  }
  for (const key of ["initialDelayMs", "maxDelayMs", "maxRetryAfterMs"] as const) {
    if (!(resolved[key] >= 0)) throw new RangeError(`retry.${key} must be >= 0, got ${resolved[key]}`);
  }
  return resolved;
}

function stripUndefined<T extends object>(obj: T): Partial<T> {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/**
 * @internal
 * How long to wait before retry number `attempt + 1`, or `undefined` to give up and throw.
 * `idempotent` says whether the call may be repeated after a failure whose outcome is unknown.
 */
export function retryDelayMs(
  policy: ResolvedRetry,
  error: CodingEnvError,
  attempt: number,
  idempotent: boolean,
  random: () => number = Math.random,
): number | undefined {
  if (attempt >= policy.maxRetries) return undefined;
  const backoff = Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** attempt);
  // "Equal jitter": at least half the backoff, so retries spread out but never hammer.
  const jittered = backoff / 2 + random() * (backoff / 2);
  if (error instanceof ConflictError || error instanceof RateLimitError) {
    const allowed = error instanceof ConflictError ? policy.retryOnConflict : policy.retryOnRateLimit;
    if (!allowed) return undefined;
    if (error.retryAfterMs === undefined) return jittered;
    return error.retryAfterMs <= policy.maxRetryAfterMs ? error.retryAfterMs : undefined;
  }
  const transient =
    error instanceof NetworkError ||
    error instanceof TimeoutError ||
    (error instanceof ServerError && error.status >= 500);
  if (!transient || !idempotent || !policy.retryOnServerError) return undefined;
  if (error.retryAfterMs !== undefined && error.retryAfterMs <= policy.maxRetryAfterMs) {
    return Math.max(error.retryAfterMs, jittered);
  }
  return jittered;
}

/**
 * @internal
 * For a 409 `step_in_progress` with `details.same_request` (this call's own `request_id` is
 * running): how long, in milliseconds from now, retrying it may still be answered so; else
 * `undefined`.
 */
export function sameRequestWindowMs(error: CodingEnvError): number | undefined {
  if (!(error instanceof ConflictError) || error.code !== "step_in_progress") return undefined;
  if (error.details.same_request !== true) return undefined;
  const seconds = Number(error.details.retry_within_s);
  return Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : undefined;
}

/**
 * Waits `ms` milliseconds; rejects early with the signal's reason if it aborts.
 * @internal
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
