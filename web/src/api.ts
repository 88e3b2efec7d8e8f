// The page's client for the coding-env HTTP API (docs/API.md). Same origin, no dependencies, no DOM
// beyond `fetch`, so the error wording can be tested on its own.

/** OpenEnv's CodeObservation (exactly its fields): the SDK's wire type (types only, nothing bundled). */
import type { CodeObservation } from "../../sdk/src/types.js";

export type { CodeObservation };

/** Our additive per-step facts (top level of a step response). */
export interface StepInfo {
  duration_ms?: number;
  timed_out?: boolean;
  stdout_truncated?: boolean;
  stderr_truncated?: boolean;
  dropped_variables?: { name: string; type: string }[];
}

/** One Jupyter MIME bundle of a step's rich outputs (`display`). */
export interface DisplayBundle {
  data: Record<string, unknown>;
  metadata?: Record<string, unknown>;
}

/** One row of `GET /episodes`. */
export interface EpisodeSummary {
  episode_id: string;
  step_count: number;
  created_at: string;
  updated_at: string;
  forked_from?: string;
}

/** Body of `POST /reset`, `POST /step` and `POST /episodes/{id}/fork`. */
export interface StepResult {
  observation: CodeObservation;
  reward: number | null;
  done: boolean;
  metadata?: Record<string, unknown>;
  episode_id: string;
  step_count: number;
  info?: StepInfo;
  forked_from?: string;
  /** Rich outputs (images, HTML, ...), absent when the step made none. */
  display?: DisplayBundle[];
}

/** Body of `GET /state` and `GET /episodes/{id}` (`GET /state` with no episode: `episode_id` null). */
export interface EpisodeState {
  episode_id: string | null;
  step_count: number;
  last_exit_code: number;
  policy?: string;
  additional_imports?: string[];
  step_timeout_s?: number;
  /** The episode this one was forked from, if any. */
  forked_from?: string;
  created_at?: string;
  updated_at?: string;
  expires_at?: string;
}

/** One step of `GET /episodes/{id}/history`. */
export interface HistoryStep {
  step: number;
  code: string;
  observation: CodeObservation;
  reward: number | null;
  done: boolean;
  metadata?: Record<string, unknown>;
  info?: StepInfo;
  request_id?: string;
  started_at?: string;
  duration_ms?: number;
  display?: DisplayBundle[];
}

/** Episode options of `POST /reset` (every field optional; the server's defaults apply). */
export interface ResetOpts {
  /** `"openenv"` (the reference's import allow-list) or `"full"`. @default server's "openenv" */
  policy?: "openenv" | "full";
  /** Module names added to the allow-list. @default [] */
  additional_imports?: string[];
  /** Per-step limit in seconds. @default the deployment's (30 s locally, 25 s in AWS) */
  step_timeout_s?: number;
}

/** The API's one error shape, with the HTTP status it came with (0 when the server was unreachable). */
export class ApiError extends Error {
  override readonly name = "ApiError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> = {},
    readonly retryAfterS: number | undefined = undefined,
  ) {
    super(message);
  }
}

/**
 * Turns an API error into a sentence a person can act on. The server's own message is kept where it
 * names the problem precisely (validation, user input); fixed causes get fixed wording.
 *
 * @example plainError(new ApiError(404, "episode_not_found", "Episode 'x' does not exist."))
 *   // "This episode no longer exists (it may have expired or been deleted). Press Reset to start a new one."
 */
export function plainError(err: unknown): string {
  if (!(err instanceof ApiError)) {
    return `Something went wrong in the page: ${err instanceof Error ? err.message : String(err)}`;
  }
  const server = err.message.trim();
  switch (err.code) {
    case "invalid_input":
      // Raised by the page itself before anything is sent; the message is already a sentence.
      return server;
    case "network_error":
      return "Could not reach the server. Check your connection and that the server is running, then try again.";
    case "unauthorized":
      // The server's own words say what is wrong (missing, unknown, revoked...).
      return `The server did not accept the API key${server ? ` (“${server}”)` : ""}. Enter a valid key above and try again.`;
    case "episode_required":
      return "There is no episode yet. Press Reset to start one.";
    case "episode_not_found":
      return "This episode no longer exists (it may have expired or been deleted). Press Reset to start a new one.";
    case "conflict":
      return "Another step is still running on this episode. Wait a moment and try again.";
    case "payload_too_large":
      return "The code is too large for one step. Split it into smaller steps.";
    case "state_too_large":
      return "The episode's Python variables have grown too large to save. Delete big variables (del name) or press Reset.";
    case "quota_exceeded": {
      // The server's message names the quota and its limit; the page adds what a person can do.
      const resets =
        typeof err.details.resets_at === "string" && !server.includes(err.details.resets_at)
          ? ` It resets at ${err.details.resets_at}.`
          : "";
      const freeSlot =
        err.details.quota === "active_episodes"
          ? " Delete an episode in “Your episodes” to free a slot."
          : "";
      return `${server || "Your usage quota is used up."}${resets}${freeSlot}`;
    }
    case "rate_limited":
      return `Too many requests. Wait ${err.retryAfterS ?? 1} s and try again.`;
    case "executor_timeout":
      return "The code runner did not answer in time. Try again; if it keeps happening, shorten the step.";
    case "executor_error":
      return "The code runner failed while running this step. Try again; the episode was not changed.";
    case "validation_error":
    case "bad_request":
    case "invalid_json":
      return `The server rejected the request: ${server || "invalid input"}`;
    case "internal_error":
      return "The server hit an internal error. Try again in a moment.";
    default:
      // Not our error shape (a gateway or proxy answered): say what the status means.
      if (err.status === 401 || err.status === 403) {
        return "The server refused the request: an API key is missing or not valid. Enter a valid key above.";
      }
      if (err.status === 429) return "Too many requests. Wait a moment and try again.";
      if (err.status >= 500)
        return `The server is unavailable right now (HTTP ${err.status}). Try again in a moment.`;
      return server ? `${server} (HTTP ${err.status})` : `The server answered HTTP ${err.status}.`;
  }
}

/** Options of {@link ApiClient}. */
export interface ApiClientOpts {
  /** Prefix of every API path, e.g. "" at the root or "/prod" behind a stage path. @default "" */
  basePath?: string;
  /** Returns the API key to send as `Authorization: Bearer`, or undefined for none. */
  apiKey?: () => string | undefined;
}

/** Thin typed wrapper over the endpoints the page uses. Every failure is an {@link ApiError}. */
export class ApiClient {
  readonly basePath: string;
  private readonly apiKey: () => string | undefined;

  constructor(opts: ApiClientOpts = {}) {
    this.basePath = opts.basePath ?? "";
    this.apiKey = opts.apiKey ?? (() => undefined);
  }

  health(): Promise<{ status: string; auth_required?: boolean }> {
    return this.json("GET", "/health");
  }

  reset(opts: ResetOpts): Promise<StepResult> {
    return this.json("POST", "/reset", opts);
  }

  step(episodeId: string, code: string, requestId: string): Promise<StepResult> {
    return this.json("POST", "/step", { episode_id: episodeId, action: { code }, request_id: requestId });
  }

  /** The episode named by `episodeId`, or the one in the `coding_env_episode` cookie when omitted. */
  state(episodeId?: string): Promise<EpisodeState> {
    return this.json("GET", episodeId ? `/episodes/${encodeURIComponent(episodeId)}` : "/state");
  }

  history(episodeId: string): Promise<{ episode_id: string; steps: HistoryStep[] }> {
    return this.json("GET", `/episodes/${encodeURIComponent(episodeId)}/history`);
  }

  fork(episodeId: string): Promise<StepResult> {
    return this.json("POST", `/episodes/${encodeURIComponent(episodeId)}/fork`, {});
  }

  /** One page of the caller's live episodes; `cursor` is the previous page's `next_cursor`. */
  listEpisodes(
    cursor?: string,
    limit?: number,
  ): Promise<{ episodes: EpisodeSummary[]; next_cursor: string | null }> {
    const query = new URLSearchParams();
    if (cursor) query.set("cursor", cursor);
    if (limit) query.set("limit", String(limit));
    const qs = query.toString();
    return this.json("GET", `/episodes${qs ? `?${qs}` : ""}`);
  }

  async deleteEpisode(episodeId: string): Promise<void> {
    await this.send("DELETE", `/episodes/${encodeURIComponent(episodeId)}`);
  }

  /** The trajectory as JSON Lines (one step object per line, oldest first). */
  async historyJsonl(episodeId: string): Promise<string> {
    const res = await this.send("GET", `/episodes/${encodeURIComponent(episodeId)}/history?format=jsonl`);
    try {
      return await res.text();
    } catch {
      throw new ApiError(0, "network_error", "The server's answer was cut off.");
    }
  }

  private async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.send(method, path, body);
    try {
      return (await res.json()) as T;
    } catch {
      // The connection broke mid-body (or a proxy sent a non-JSON 200): to the caller, a lost answer.
      throw new ApiError(0, "network_error", "The server's answer was cut off.");
    }
  }

  private async send(method: string, path: string, body?: unknown): Promise<Response> {
    const headers: Record<string, string> = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const key = this.apiKey();
    if (key) headers.Authorization = `Bearer ${key}`;
    let res: Response;
    try {
      res = await fetch(this.basePath + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "same-origin",
      });
    } catch {
      throw new ApiError(0, "network_error", "The server could not be reached.");
    }
    if (res.ok) return res;
    throw await errorFromResponse(res);
  }
}

async function errorFromResponse(res: Response): Promise<ApiError> {
  const retryHeader = res.headers.get("Retry-After");
  const retryAfterS = retryHeader !== null && /^\d+$/.test(retryHeader) ? Number(retryHeader) : undefined;
  let parsed: unknown;
  try {
    parsed = await res.json();
  } catch {
    parsed = undefined;
  }
  const error = (parsed as { error?: { code?: unknown; message?: unknown; details?: unknown } } | undefined)
    ?.error;
  if (error && typeof error.code === "string") {
    const details =
      error.details && typeof error.details === "object" ? (error.details as Record<string, unknown>) : {};
    const message = typeof error.message === "string" ? error.message : "";
    return new ApiError(res.status, error.code, message, details, retryAfterS);
  }
  // Not our error shape (e.g. API Gateway's own {"message": "..."} or an HTML proxy page).
  const gatewayMessage = (parsed as { message?: unknown } | undefined)?.message;
  return new ApiError(
    res.status,
    `http_${res.status}`,
    typeof gatewayMessage === "string" ? gatewayMessage : "",
    {},
    retryAfterS,
  );
}
