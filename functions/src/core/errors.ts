// Typed errors of the API: each has a fixed HTTP status and a stable machine-readable code. The one
// `onError` handler of the app turns them into `{"error":{"code","message","details"?}}`; anything
// that is not an `ApiError` becomes a 500 `internal_error` with no internals in the message.

/** Base of every error the API answers with on purpose. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: Record<string, unknown>,
    /** Extra response headers, e.g. `Retry-After`. */
    readonly headers?: Record<string, string>,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class BadRequestError extends ApiError {
  constructor(message: string, details?: Record<string, unknown>) {
    super(400, "bad_request", message, details);
  }
}

export class InvalidJsonError extends ApiError {
  constructor() {
    super(400, "invalid_json", "The request body is not valid JSON.");
  }
}

export class EpisodeRequiredError extends ApiError {
  constructor() {
    super(
      400,
      "episode_required",
      "No episode: call POST /reset first (or pass episode_id in the body, the X-Episode-Id header, or the cookie /reset sets).",
    );
  }
}

export class UnauthorizedError extends ApiError {
  constructor(message = "A valid API key is required (Authorization: Bearer <key> or X-API-Key).") {
    super(401, "unauthorized", message);
  }
}

export class NotFoundError extends ApiError {
  constructor(message = "Not found.") {
    super(404, "not_found", message);
  }
}

export class EpisodeNotFoundError extends ApiError {
  constructor(episodeId: string) {
    super(404, "episode_not_found", `Episode '${episodeId}' does not exist.`, { episode_id: episodeId });
  }
}

export class MethodNotAllowedError extends ApiError {
  constructor() {
    super(405, "method_not_allowed", "Method not allowed.");
  }
}

/** Another step on the same episode committed first; the client may retry. */
export class ConflictError extends ApiError {
  constructor(episodeId: string) {
    super(
      409,
      "conflict",
      `Episode '${episodeId}' was changed by a concurrent request; retry the step.`,
      { episode_id: episodeId },
      { "Retry-After": "1" },
    );
  }
}

/**
 * A step of this episode is running now (in this API instance, or in the executor): this one did
 * not run. The client may retry after the running step answers.
 */
export class StepInProgressError extends ApiError {
  /**
   * @param sameRequest set when the running step carries this request's `request_id` (a retry
   *   while the first attempt runs, maybe on another API instance): retrying the same
   *   `request_id` then answers with the first attempt's result once it has committed, or runs
   *   the step once `retryWithinS` has passed without a commit (that attempt died).
   */
  constructor(episodeId: string, sameRequest?: { readonly retryWithinS: number }) {
    super(
      409,
      "step_in_progress",
      sameRequest
        ? `The first attempt of this request_id is running on episode '${episodeId}'; this one did not run. Retry the same request_id to get its result.`
        : `A step of episode '${episodeId}' is running; this step did not run. Retry when it has answered.`,
      sameRequest
        ? { episode_id: episodeId, same_request: true, retry_within_s: sameRequest.retryWithinS }
        : { episode_id: episodeId },
      { "Retry-After": "1" },
    );
  }
}

/**
 * The episode's files cannot be read back from its stored state: a step left an archive the
 * runtime refuses (or a runtime that wrote it is incompatible). The episode's own problem, not the
 * service's: its steps still answer; a reset starts it over.
 */
export class EpisodeFilesUnreadableError extends ApiError {
  constructor(episodeId: string, reason: string) {
    super(
      409,
      "files_unreadable",
      `The files of episode '${episodeId}' cannot be read from its state (${reason}); reset it to start over.`,
      { episode_id: episodeId },
    );
  }
}

export class PayloadTooLargeError extends ApiError {
  constructor(message: string, details?: Record<string, unknown>) {
    super(413, "payload_too_large", message, details);
  }
}

/** The episode's Python state after the step is larger than the store keeps; the episode is unchanged. */
export class StateTooLargeError extends ApiError {
  constructor(bytes: number, limitBytes: number) {
    super(
      413,
      "state_too_large",
      `The episode's Python state after this step is ${bytes} bytes (compressed), over the ${limitBytes}-byte limit; the step was not committed and the episode is unchanged. Delete large variables (del x) and retry.`,
      { state_bytes: bytes, limit_bytes: limitBytes },
    );
  }
}

/**
 * A fork's history did not finish copying within its time budget (inside the request's deadline);
 * what was copied is removed and no episode was created.
 */
export class ForkTooLargeError extends ApiError {
  constructor(copiedSteps: number, totalSteps: number) {
    super(
      413,
      "fork_too_large",
      `The episode's history (${totalSteps} steps) could not be copied within one request (${copiedSteps} copied); no fork was created. Fork an episode with a shorter history, or reset one and replay what it needs.`,
      { copied_steps: copiedSteps, total_steps: totalSteps },
    );
  }
}

export interface ValidationIssue {
  readonly loc: ReadonlyArray<string | number>;
  readonly msg: string;
  readonly type: string;
}

/** A body of the wrong shape. Carries FastAPI's `detail` list for OpenEnv clients. */
export class ValidationError extends ApiError {
  constructor(readonly issues: ValidationIssue[]) {
    super(
      422,
      "validation_error",
      issues.length > 0 ? `Invalid request: ${issues[0]?.msg}` : "Invalid request.",
      {
        issues,
      },
    );
  }
}

/** The executor answered with a function error (the runtime itself failed, not the user's code). */
export class ExecutorError extends ApiError {
  constructor(message = "The code executor failed; the episode is unchanged. Retry the step.") {
    super(502, "executor_error", message);
  }
}

/**
 * The executor's process ended during the step (Lambda's `Runtime.ExitError`). In Lambda mode user
 * code shares the runtime's uid and can end it, so the core answers this as a crashed step (state
 * unchanged, metered), never as a 502.
 */
export class ExecutorCrashedError extends ExecutorError {
  constructor() {
    super("The code executor's process ended during the step; the episode is unchanged.");
  }
}

/** The executor did not answer in time; the episode is unchanged. */
export class ExecutorTimeoutError extends ApiError {
  constructor() {
    super(504, "executor_timeout", "The code executor did not answer in time; the episode is unchanged.");
  }
}

/** 429 `executor_throttled`: the executor refused the call for lack of capacity; the code never ran. */
export class ExecutorThrottledError extends ApiError {
  constructor(retryAfterS = 1) {
    super(
      429,
      "executor_throttled",
      "The code executor is at capacity; the code did not run and the episode is unchanged. Retry after Retry-After.",
      { retry_after_s: retryAfterS },
      { "Retry-After": String(retryAfterS) },
    );
  }
}

/**
 * 429 `too_many_concurrent_steps`: this tenant already has as many steps running or waiting in
 * this API process as it may (fair sharing between tenants); the code never ran.
 */
export class TooManyConcurrentStepsError extends ApiError {
  constructor(limit: number, retryAfterS = 1) {
    super(
      429,
      "too_many_concurrent_steps",
      `Too many steps of this tenant are running at once (limit ${limit}); the code did not run. Retry after Retry-After.`,
      { limit },
      { "Retry-After": String(retryAfterS) },
    );
  }
}

/** 415 `unsupported_media_type`: a request body that is not `application/json`. */
export class UnsupportedMediaTypeError extends ApiError {
  constructor() {
    super(415, "unsupported_media_type", "Request bodies must be JSON (Content-Type: application/json).");
  }
}

/** 421 `host_not_allowed`: the `Host` header names neither this server nor an allowed host (DNS rebinding). */
export class HostNotAllowedError extends ApiError {
  constructor() {
    super(421, "host_not_allowed", "This server does not answer for that Host.");
  }
}

/** 403 `origin_not_allowed`: a cross-origin request from an origin not on the allow-list. */
export class OriginNotAllowedError extends ApiError {
  constructor() {
    super(
      403,
      "origin_not_allowed",
      "Cross-origin requests from this origin are not allowed (see CODING_ENV_ALLOWED_ORIGINS).",
    );
  }
}

export class InternalError extends ApiError {
  constructor() {
    super(500, "internal_error", "Internal error.");
  }
}
