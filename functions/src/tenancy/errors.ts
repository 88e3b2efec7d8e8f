// Typed errors of the tenancy layer. They extend the API's `ApiError` (fixed status and code), so
// the app's one `onError` turns them into `{"error":{"code","message","details"}}` plus `headers`.
import { ApiError, UnauthorizedError } from "../core/errors.js";

/** 401 for a missing, malformed, unknown or revoked key (the message never says which). */
export { UnauthorizedError };

/** Names of the quotas, as they appear in `details.quota`. */
export type QuotaName =
  | "steps_per_day"
  | "active_episodes"
  | "max_state_bytes"
  | "max_step_timeout_s"
  | "concurrent_steps";

export interface QuotaErrorOpts {
  readonly quota: QuotaName;
  readonly limit: number;
  /** When the quota frees up again; `null` when it does not reset by itself. */
  readonly resetsAt: Date | null;
  /** Used to compute `Retry-After`. @default Date.now() */
  readonly now?: number;
  readonly message?: string;
}

/**
 * 429 `quota_exceeded`: a tenant quota is used up. `details.quota` names it, `details.resets_at` says
 * when it frees up (ISO time, or `null`), and `Retry-After` (seconds) is set when that time is known.
 */
export class QuotaExceededError extends ApiError {
  readonly quota: QuotaName;
  readonly resetsAt: Date | null;

  constructor(opts: QuotaErrorOpts) {
    const now = opts.now ?? Date.now();
    const resetsAt = opts.resetsAt;
    const headers: Record<string, string> = {};
    // A limit on what runs at once frees up as soon as a step answers.
    if (opts.quota === "concurrent_steps") headers["Retry-After"] = "1";
    if (resetsAt) headers["Retry-After"] = String(Math.max(1, Math.ceil((resetsAt.getTime() - now) / 1000)));
    const when = resetsAt ? `; it resets at ${resetsAt.toISOString()}` : "";
    super(
      429,
      "quota_exceeded",
      opts.message ?? `Quota '${opts.quota}' exceeded (limit ${opts.limit})${when}.`,
      { quota: opts.quota, limit: opts.limit, resets_at: resetsAt ? resetsAt.toISOString() : null },
      headers,
    );
    this.quota = opts.quota;
    this.resetsAt = resetsAt;
  }
}

/** 413 `state_too_large`: the episode's Python state is over the tenant's `max_state_bytes` quota. */
export class StateQuotaExceededError extends ApiError {
  constructor(stateBytes: number, limit: number) {
    super(
      413,
      "state_too_large",
      `The episode's Python state (${stateBytes} bytes) is over quota 'max_state_bytes' (${limit} bytes); ` +
        "the step was not committed and the episode is unchanged. This quota does not reset: store less state.",
      { quota: "max_state_bytes", limit, state_bytes: stateBytes, resets_at: null },
    );
  }
}
