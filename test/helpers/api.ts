// A tiny HTTP client for the API tests: real HTTP (fetch), JSON in and out, status and headers kept.
import type { StepResponse } from "../../functions/src/core/episodes.js";
import "./context.js";

export interface ApiReply<T = Record<string, unknown>> {
  readonly status: number;
  readonly body: T;
  readonly text: string;
  readonly headers: Headers;
}

export interface ApiClientOpts {
  /** Headers sent with every request (e.g. `X-Episode-Id`). @default {} */
  readonly headers?: Record<string, string>;
}

/** Calls the API at `baseUrl`; `body` is JSON-encoded unless it is already a string. */
export async function call<T = Record<string, unknown>>(
  baseUrl: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<ApiReply<T>> {
  const init: RequestInit = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.body = typeof body === "string" ? body : JSON.stringify(body);
    (init.headers as Record<string, string>)["content-type"] ??= "application/json";
  }
  const res = await fetch(`${baseUrl}${path}`, init);
  const text = await res.text();
  let parsed: unknown = null;
  if ((res.headers.get("content-type") ?? "").includes("application/json") && text !== "") {
    parsed = JSON.parse(text);
  }
  return { status: res.status, body: parsed as T, text, headers: res.headers };
}

/** The body of `/reset`, `/step` and fork responses (the core's type; the tests assert its values). */
export type StepBody = StepResponse;

/** An episode-scoped client: passes `episode_id` in every body, like the SDK does. */
export class Episode {
  private constructor(
    readonly baseUrl: string,
    readonly id: string,
  ) {}

  static async reset(baseUrl: string, opts: Record<string, unknown> = {}): Promise<Episode> {
    const r = await call<StepBody>(baseUrl, "POST", "/reset", opts);
    if (r.status !== 200) throw new Error(`reset failed: ${r.status} ${r.text}`);
    return new Episode(baseUrl, r.body.episode_id);
  }

  step(code: string, extra: Record<string, unknown> = {}): Promise<ApiReply<StepBody>> {
    return call<StepBody>(this.baseUrl, "POST", "/step", { action: { code }, episode_id: this.id, ...extra });
  }

  /** A step that must succeed (HTTP 200); returns the body. */
  async run(code: string, extra: Record<string, unknown> = {}): Promise<StepBody> {
    const r = await this.step(code, extra);
    if (r.status !== 200) throw new Error(`step failed: ${r.status} ${r.text}`);
    return r.body;
  }

  /**
   * A step as the SDKs send it: while the server answers that this request_id's first attempt is
   * running (409 `step_in_progress` with `same_request`, from another API instance), the same
   * request again after Retry-After, so the call ends with that attempt's result.
   */
  async stepAwaitingFirstAttempt(code: string, extra: Record<string, unknown>): Promise<ApiReply<StepBody>> {
    for (let i = 0; ; i++) {
      const r = await this.step(code, extra);
      const details = (r.body as { error?: { details?: { same_request?: unknown } } } | null)?.error?.details;
      if (r.status !== 409 || details?.same_request !== true || i >= 60) return r;
      await new Promise((done) => setTimeout(done, Number(r.headers.get("retry-after") ?? 1) * 1000));
    }
  }

  async state(): Promise<Record<string, unknown>> {
    return (await call(this.baseUrl, "GET", `/episodes/${this.id}`)).body;
  }
}

/** Asserts the one error shape and returns its code. */
export function errorCode(reply: ApiReply<unknown>): string {
  const err = (reply.body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  if (!err || typeof err.code !== "string" || typeof err.message !== "string") {
    throw new Error(`not an error body: ${reply.status} ${reply.text.slice(0, 300)}`);
  }
  return err.code;
}
