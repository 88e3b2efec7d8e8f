// The SDK's one HTTP path: headers (and the changeable API key), per-attempt time limits, the retry
// policy, and the mapping of every failure to the error hierarchy. Internal: `CodingEnv` and the
// clients made from it (fork(), withEpisode()) share one transport, so they share one key.
import { CodingEnvError, errorFromResponse, NetworkError, TimeoutError } from "./errors.js";
import {
  type ResolvedRetry,
  type RetryOpts,
  resolveRetry,
  retryDelayMs,
  sameRequestWindowMs,
  sleep,
} from "./retry.js";

/** The `fetch` the SDK calls: the platform's, or one you pass (a proxy-aware or counting fetch). */
export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

/** @internal What a call reads from a successful answer. */
export type ResponseKind = "json" | "bytes" | "stream";

/** @internal One API call. */
export interface RequestSpec {
  readonly method: "GET" | "POST" | "DELETE" | "PUT";
  readonly path: string;
  readonly body?: unknown;
  /** `json` (default), `bytes` (a file download) or `stream` (JSON Lines, read by the caller). */
  readonly response?: ResponseKind;
  /** Safe to send again after a network error or a 5xx (GET, DELETE, steps with a request_id). */
  readonly idempotent: boolean;
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal | undefined;
  readonly accept?: string;
}

/** @internal A successful or failed answer, its body read as the spec asked. */
export interface ApiResponse {
  readonly status: number;
  readonly headers: Headers;
  /** Parsed JSON (or text), a Uint8Array (`bytes`) or a ReadableStream<Uint8Array> (`stream`). */
  readonly body: unknown;
}

/** @internal The transport's settings, defaults already applied. */
export interface TransportSettings {
  readonly baseUrl: string;
  readonly timeoutMs: number;
  readonly retry: RetryOpts | false | undefined;
  readonly apiKey: string | undefined;
  readonly headers: Readonly<Record<string, string>> | undefined;
  readonly fetch: FetchLike;
}

type EnvGlobals = {
  process?: { env?: Record<string, string | undefined> };
  Deno?: { env?: { get(name: string): string | undefined } };
};

/**
 * Reads an environment variable in Node, Deno (if permitted) or nowhere (browser).
 * @internal
 */
export function readEnv(name: string): string | undefined {
  const g = globalThis as EnvGlobals;
  try {
    const fromProcess = g.process?.env?.[name];
    if (fromProcess) return fromProcess;
  } catch {
    // no process, or access denied
  }
  try {
    const fromDeno = g.Deno?.env?.get(name);
    if (fromDeno) return fromDeno;
  } catch {
    // Deno without --allow-env
  }
  return undefined;
}

/**
 * The body of a streamed answer with a failure mid-way (connection cut) turned into a
 * {@link NetworkError}, like a failure before the headers.
 */
function networkErrorsOf(
  body: ReadableStream<Uint8Array>,
  endpoint: string,
  signal: AbortSignal | undefined,
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const next = await reader.read();
        if (next.done) controller.close();
        else controller.enqueue(next.value);
      } catch (err) {
        // Cancelled by the caller: their reason, as for a call cancelled before the headers.
        if (signal?.aborted) {
          controller.error(signal.reason ?? err);
          return;
        }
        controller.error(
          new NetworkError(`${endpoint} was cut off: ${err instanceof Error ? err.message : String(err)}`, {
            status: 0,
            code: "network_error",
            endpoint,
            cause: err,
          }),
        );
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
}

/** @internal */
export class Transport {
  readonly baseUrl: string;
  readonly timeoutMs: number;
  readonly retry: Readonly<ResolvedRetry>;
  /** Sent as `Authorization: Bearer`; changed by `CodingEnv.setApiKey` for every client sharing it. */
  apiKey: string | undefined;
  readonly #headers: Readonly<Record<string, string>>;
  readonly #fetch: FetchLike;

  constructor(settings: TransportSettings) {
    this.baseUrl = settings.baseUrl;
    this.timeoutMs = settings.timeoutMs;
    this.retry = resolveRetry(settings.retry);
    this.apiKey = settings.apiKey;
    this.#headers = settings.headers ?? {};
    this.#fetch = settings.fetch;
  }

  #requestHeaders(spec: RequestSpec): Record<string, string> {
    const headers: Record<string, string> = { accept: spec.accept ?? "application/json", ...this.#headers };
    if (spec.body !== undefined) headers["content-type"] = "application/json";
    if (this.apiKey !== undefined && this.apiKey !== "") headers.authorization = `Bearer ${this.apiKey}`;
    return headers;
  }

  /**
   * One call with the retry policy: network errors and 5xx only when idempotent; 409/429 always;
   * while the server says this call's own `request_id` is running, the same request again until
   * its window closes (those waits are not retries: nothing failed).
   */
  async request(spec: RequestSpec): Promise<ApiResponse> {
    const endpoint = `${spec.method} ${spec.path.split("?")[0]}`;
    const retry = this.retry;
    /** Until when (epoch ms) the first "your request is running" answer lets this call wait. */
    let waitForFirstUntil: number | undefined;
    for (let attempt = 0; ; attempt++) {
      let error: CodingEnvError;
      try {
        const response = await this.#send(spec, endpoint);
        if (response.status < 400) return response;
        error = errorFromResponse(
          response.status,
          response.body,
          response.headers.get("retry-after"),
          endpoint,
        );
      } catch (err) {
        if (!(err instanceof CodingEnvError)) throw err;
        error = err;
      }
      const windowMs = retry.maxRetries > 0 ? sameRequestWindowMs(error) : undefined;
      if (windowMs !== undefined) {
        // Bounded by the first answer's window (plus a second for the clocks): the server runs the
        // request itself once the first attempt's claim has lapsed without a commit.
        waitForFirstUntil ??= Date.now() + windowMs + 1_000;
        const leftMs = waitForFirstUntil - Date.now();
        if (leftMs > 0 && !spec.signal?.aborted) {
          await sleep(Math.min(error.retryAfterMs ?? 1_000, leftMs), spec.signal);
          attempt--;
          continue;
        }
      }
      const delayMs = retryDelayMs(retry, error, attempt, spec.idempotent);
      if (delayMs === undefined || spec.signal?.aborted) throw error;
      await sleep(delayMs, spec.signal);
    }
  }

  /** One HTTP attempt; maps transport failures to NetworkError / TimeoutError. */
  async #send(spec: RequestSpec, endpoint: string): Promise<ApiResponse> {
    const timeoutMs = spec.timeoutMs ?? this.timeoutMs;
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeoutMs);
    const onUserAbort = () => controller.abort(spec.signal?.reason);
    if (spec.signal?.aborted) onUserAbort();
    spec.signal?.addEventListener("abort", onUserAbort, { once: true });
    let streaming = false;
    try {
      const init: RequestInit = {
        method: spec.method,
        headers: this.#requestHeaders(spec),
        signal: controller.signal,
      };
      if (spec.body !== undefined) init.body = JSON.stringify(spec.body);
      const response = await this.#fetch(this.baseUrl + spec.path, init);
      if (response.status < 400 && spec.response === "stream" && response.body !== null) {
        // The time limit covers the wait for the headers; the caller reads the body at its own pace,
        // and the caller's signal still cancels it (the listener stays for that).
        streaming = true;
        return {
          status: response.status,
          headers: response.headers,
          body: networkErrorsOf(response.body, endpoint, spec.signal),
        };
      }
      if (response.status < 400 && spec.response === "bytes") {
        return {
          status: response.status,
          headers: response.headers,
          body: new Uint8Array(await response.arrayBuffer()),
        };
      }
      const text = await response.text();
      let body: unknown = text;
      if (text.length > 0) {
        try {
          body = JSON.parse(text);
        } catch {
          // Not JSON (a proxy's HTML error page): keep the text for the error message.
        }
      } else {
        body = undefined;
      }
      return { status: response.status, headers: response.headers, body };
    } catch (err) {
      if (spec.signal?.aborted) throw spec.signal.reason ?? err;
      if (timedOut) {
        throw new TimeoutError(`${endpoint} got no answer within ${timeoutMs} ms`, {
          status: 0,
          code: "client_timeout",
          endpoint,
          cause: err,
        });
      }
      throw new NetworkError(`${endpoint} failed: ${err instanceof Error ? err.message : String(err)}`, {
        status: 0,
        code: "network_error",
        endpoint,
        cause: err,
      });
    } finally {
      clearTimeout(timer);
      if (!streaming) spec.signal?.removeEventListener("abort", onUserAbort);
    }
  }
}
