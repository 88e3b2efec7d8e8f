import { CodingEnvError, NotFoundError, ServerError } from "./errors.js";
import { bytesToBase64, type EpisodeFile, type FileWritten, filePathSegment } from "./files.js";
import { readJsonLines } from "./jsonl.js";
import type {
  CloseOpts,
  CodingEnvOpts,
  DeleteEpisodeOpts,
  ExportHistoryOpts,
  FileOpts,
  HistoryOpts,
  IterEpisodesOpts,
  ListEpisodesOpts,
  ResetOpts,
  StepOpts,
} from "./opts.js";
import { StepResult } from "./result.js";
import type { ResolvedRetry } from "./retry.js";
import { type ApiResponse, type FetchLike, type RequestSpec, readEnv, Transport } from "./transport.js";
import type {
  CodeAction,
  CodeState,
  EpisodeHistory,
  EpisodeSummary,
  EpisodesPage,
  ExportedStep,
  HealthStatus,
  StepResultData,
} from "./types.js";

export type {
  CloseOpts,
  CodingEnvOpts,
  DeleteEpisodeOpts,
  EpisodeFile,
  ExportHistoryOpts,
  FetchLike,
  FileOpts,
  FileWritten,
  HistoryOpts,
  IterEpisodesOpts,
  ListEpisodesOpts,
  ResetOpts,
  StepOpts,
};

const DEFAULT_BASE_URL = "http://localhost:8000";
const DEFAULT_TIMEOUT_MS = 60_000;
/** Added to a step's own limit for the round trip, so the server's answer arrives before ours. */
const STEP_TIMEOUT_MARGIN_MS = 15_000;
/** Page size of `episodes()`: the server's largest, so iterating costs few requests. */
const EPISODES_PAGE_SIZE = 100;

/** Placeholder of a client that is given an existing transport right after construction. */
const unusedFetch: FetchLike = () => Promise.reject(new Error("unused"));

/** `?a=1&b=x` from the defined values, or "" when none is. */
function query(params: Record<string, string | number | undefined>): string {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined) search.set(name, String(value));
  }
  const text = search.toString();
  return text === "" ? "" : `?${text}`;
}

/**
 * A random id; `crypto.randomUUID` where available (Node, Deno, secure browser contexts).
 * @internal
 */
export function randomId(prefix: string): string {
  const c = globalThis.crypto;
  if (typeof c?.randomUUID === "function") return `${prefix}${c.randomUUID()}`;
  const bytes = new Uint8Array(16);
  c.getRandomValues(bytes);
  return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Wraps a reset/step/fork body, refusing anything that is not the protocol's shape. */
function toStepResult(body: unknown, endpoint: string): StepResult {
  const observation = (body as { observation?: unknown } | null)?.observation;
  if (
    typeof body !== "object" ||
    body === null ||
    typeof observation !== "object" ||
    observation === null ||
    typeof (observation as { exit_code?: unknown }).exit_code !== "number" ||
    typeof (body as { episode_id?: unknown }).episode_id !== "string"
  ) {
    throw new ServerError(`${endpoint} answered a body that is not a step result`, {
      status: 200,
      code: "invalid_response",
      endpoint,
    });
  }
  return new StepResult(body as StepResultData);
}

// `Symbol.asyncDispose` exists in Node >= 20.4, Deno and TypeScript's `using`; older browsers lack
// it, where the well-known name from the proposal is used so `await using` polyfills still work.
const asyncDisposeSymbol: typeof Symbol.asyncDispose =
  (Symbol as { asyncDispose?: typeof Symbol.asyncDispose }).asyncDispose ??
  (Symbol.for("Symbol.asyncDispose") as typeof Symbol.asyncDispose);

/**
 * A client bound to one coding-env episode, shaped like OpenEnv's `CodingEnv`: `reset()`, `step()`,
 * `state()`, `close()`, plus `fork()`, `history()`, files, and calls about all your episodes
 * (`listEpisodes()`, `episodes()`, `deleteEpisode()`). Works in Node >= 20, Deno and browsers (it
 * only needs `fetch`).
 *
 * @example
 * ```ts
 * import { CodingEnv } from "@coding-env/sdk";
 *
 * await using env = new CodingEnv({ baseUrl: "http://localhost:8000" });
 * await env.reset();
 * const result = await env.step("x = 5 + 3\nprint(f'Result: {x}')");
 * console.log(result.observation.stdout); // "Result: 8"
 * // leaving the block deletes the episode (env.close())
 * ```
 */
export class CodingEnv implements AsyncDisposable {
  /** The server's base URL, without a trailing slash. */
  readonly baseUrl: string;
  /** The effective retry policy. */
  readonly retry: Readonly<ResolvedRetry>;
  /** The per-request time limit in milliseconds. */
  readonly timeoutMs: number;
  /** Shared with the clients made from this one (fork(), withEpisode()): one key for all of them. */
  #http: Transport;
  #episodeId: string | undefined;
  #stepTimeoutS: number | undefined;
  #closed = false;

  /**
   * Creates a client. No request is made until the first call.
   *
   * @example
   * ```ts
   * const env = new CodingEnv({ apiKey: process.env.CODING_ENV_API_KEY, timeoutMs: 30_000 });
   * const again = new CodingEnv({ episodeId: "ep_123" }); // bind to an existing episode
   * ```
   */
  constructor(opts: CodingEnvOpts = {}) {
    const baseUrl = opts.baseUrl ?? readEnv("CODING_ENV_URL") ?? DEFAULT_BASE_URL;
    if (!/^https?:\/\//i.test(baseUrl)) {
      throw new TypeError(`baseUrl must start with http:// or https://, got "${baseUrl}"`);
    }
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!(timeoutMs > 0)) throw new RangeError(`timeoutMs must be > 0, got ${timeoutMs}`);
    const fetchImpl = opts.fetch ?? globalThis.fetch?.bind(globalThis);
    if (typeof fetchImpl !== "function") {
      throw new TypeError("No fetch available: pass opts.fetch (Node >= 20, Deno and browsers have one)");
    }
    this.#http = new Transport({
      baseUrl: baseUrl.replace(/\/+$/, ""),
      timeoutMs,
      retry: opts.retry,
      apiKey: opts.apiKey ?? readEnv("CODING_ENV_API_KEY"),
      headers: opts.headers,
      fetch: fetchImpl,
    });
    this.baseUrl = this.#http.baseUrl;
    this.timeoutMs = this.#http.timeoutMs;
    this.retry = this.#http.retry;
    this.#episodeId = opts.episodeId;
  }

  /**
   * The bound episode's id, or `undefined` before `reset()` and after `close()`.
   *
   * @example
   * ```ts
   * await env.reset();
   * console.log(env.episodeId); // "ep_…"
   * ```
   */
  get episodeId(): string | undefined {
    return this.#episodeId;
  }

  /**
   * Changes the API key sent from now on (`undefined` or `""`: none), for this client and every
   * client made from it or it from (`fork()`, `withEpisode()`): they share one connection. Calls
   * already under way keep the key they were sent with.
   *
   * @example
   * ```ts
   * const env = new CodingEnv({ baseUrl });
   * env.setApiKey(prompt("API key") ?? undefined);
   * await env.listEpisodes(); // sent with the new key
   * ```
   */
  setApiKey(apiKey: string | undefined): void {
    this.#http.apiKey = apiKey;
  }

  /**
   * A new client for another episode of yours (or for none: call `reset()` on it), sharing this
   * one's connection: base URL, options and API key (`setApiKey()` on either changes both). Makes no
   * request; a missing episode shows as a `NotFoundError` on the first call.
   *
   * @example
   * ```ts
   * for await (const summary of env.episodes()) {
   *   const other = env.withEpisode(summary.episode_id);
   *   console.log((await other.state()).step_count);
   * }
   * const fresh = env.withEpisode(); // unbound
   * await fresh.reset();
   * ```
   */
  withEpisode(episodeId?: string): CodingEnv {
    this.#assertOpen();
    // Built with the same settings (so its public fields match), then given this one's transport.
    const other = new CodingEnv({
      baseUrl: this.baseUrl,
      timeoutMs: this.timeoutMs,
      retry: this.retry,
      apiKey: "",
      fetch: unusedFetch,
      ...(episodeId === undefined ? {} : { episodeId }),
    });
    other.#http = this.#http;
    return other;
  }

  /**
   * Starts a new episode (fresh Python state, `step_count` 0) and binds this client to it. The
   * previous episode, if any, is left on the server until its TTL (call `close()` first to delete it).
   *
   * @example
   * ```ts
   * const result = await env.reset({ policy: "full", stepTimeoutS: 10 });
   * console.log(result.episode_id, result.observation.exit_code); // "ep_…", 0
   * ```
   */
  async reset(opts: ResetOpts = {}): Promise<StepResult> {
    this.#assertOpen();
    const episodeId = opts.episodeId ?? randomId("ep_");
    const body: Record<string, unknown> = { episode_id: episodeId };
    if (opts.seed !== undefined) body.seed = opts.seed;
    if (opts.policy !== undefined) body.policy = opts.policy;
    if (opts.additionalImports !== undefined) body.additional_imports = [...opts.additionalImports];
    if (opts.stepTimeoutS !== undefined) body.step_timeout_s = opts.stepTimeoutS;
    if (opts.ttlS !== undefined) body.ttl_s = opts.ttlS;
    // Idempotent: the id is chosen here, so a retried reset replaces the same episode.
    const response = await this.#request({
      method: "POST",
      path: "/reset",
      body,
      idempotent: true,
      signal: opts.signal,
    });
    const result = toStepResult(response.body, "POST /reset");
    this.#episodeId = result.episode_id;
    this.#stepTimeoutS = opts.stepTimeoutS;
    return result;
  }

  /**
   * Runs one cell of Python in the episode. A failing cell is data, not an exception:
   * `observation.exit_code` is 1 and `observation.stderr` holds the traceback. Retries (network
   * errors, 5xx, 409, 429) reuse the step's `request_id`, so the code runs once.
   *
   * @example
   * ```ts
   * await env.step("import math");
   * const r = await env.step({ code: "math.pi" }, { timeoutS: 5 });
   * console.log(r.observation.stdout, r.reward); // "3.141592653589793" 0.1
   * ```
   */
  async step(action: CodeAction | string, opts: StepOpts = {}): Promise<StepResult> {
    const episodeId = this.#requireEpisode("step");
    const codeAction: CodeAction = typeof action === "string" ? { code: action } : action;
    if (typeof codeAction.code !== "string") throw new TypeError("action.code must be a string");
    const body: Record<string, unknown> = {
      action: codeAction,
      request_id: opts.requestId ?? randomId("req_"),
      episode_id: episodeId,
    };
    if (opts.timeoutS !== undefined) body.timeout_s = opts.timeoutS;
    const stepLimitS = opts.timeoutS ?? this.#stepTimeoutS;
    const timeoutMs =
      stepLimitS === undefined
        ? this.timeoutMs
        : Math.max(this.timeoutMs, stepLimitS * 1000 + STEP_TIMEOUT_MARGIN_MS);
    const response = await this.#request({
      method: "POST",
      path: "/step",
      body,
      idempotent: true,
      timeoutMs,
      signal: opts.signal,
    });
    return toStepResult(response.body, "POST /step");
  }

  /**
   * The episode's state: OpenEnv's `episode_id`, `step_count`, `last_exit_code` plus its policy,
   * limits and timestamps. The client also learns the episode's step limit from it, so a later
   * `step()` waits long enough for a slow cell.
   *
   * @example
   * ```ts
   * const { step_count, last_exit_code } = await env.state();
   * ```
   */
  async state(): Promise<CodeState> {
    const episodeId = this.#requireEpisode("state");
    const response = await this.#request({
      method: "GET",
      path: `/state?episode_id=${encodeURIComponent(episodeId)}`,
      idempotent: true,
    });
    const state = response.body as CodeState;
    if (typeof state?.step_timeout_s === "number") this.#stepTimeoutS = state.step_timeout_s;
    return state;
  }

  /**
   * OpenEnv's `GET /state` with no episode named: the state of the episode the server's
   * `coding_env_episode` cookie names (the last `POST /reset` answered to this browser), or
   * `undefined` when no cookie names a live one. Useful in a page on the API's own origin, where the
   * browser sends the cookie; elsewhere (Node, Deno) there is no cookie and the answer is `undefined`.
   * Does not bind this client (use `withEpisode(state.episode_id)`).
   *
   * @example
   * ```ts
   * const previous = await env.cookieState();
   * const resumed = previous ? env.withEpisode(previous.episode_id) : undefined;
   * ```
   */
  async cookieState(): Promise<CodeState | undefined> {
    this.#assertOpen();
    try {
      const response = await this.#request({ method: "GET", path: "/state", idempotent: true });
      const state = response.body as { episode_id?: unknown } | undefined;
      return typeof state?.episode_id === "string" ? (state as CodeState) : undefined;
    } catch (err) {
      // The cookie names an episode that was deleted or expired.
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
  }

  /**
   * Copies the episode (Python state, files and history) into a new episode and returns a client
   * bound to the copy; the two evolve independently. The new client shares this one's connection
   * (options and API key); its first result is in `forkResult`.
   *
   * @example
   * ```ts
   * await env.step("x = 1");
   * const branch = await env.fork();
   * await branch.step("x = 2");
   * (await env.step("x")).observation.stdout; // "1"
   * ```
   */
  async fork(): Promise<CodingEnv> {
    const episodeId = this.#requireEpisode("fork");
    // Not idempotent (each call makes a new episode): retried only on 409/429, which commit nothing.
    const response = await this.#request({
      method: "POST",
      path: `/episodes/${encodeURIComponent(episodeId)}/fork`,
      body: {},
      idempotent: false,
    });
    const result = toStepResult(response.body, "POST /episodes/{id}/fork");
    const forked = this.withEpisode(result.episode_id);
    forked.#stepTimeoutS = this.#stepTimeoutS;
    forked.forkResult = result;
    return forked;
  }

  /**
   * On a client returned by `fork()`, the fork call's result (`episode_id`, `step_count`,
   * `forked_from`); otherwise `undefined`.
   */
  forkResult: StepResult | undefined;

  /**
   * A page of the episode's trajectory, oldest step first: code, observation, reward, info, display
   * and request id of each step. Follow `next_cursor` (null at the end) for long episodes, or use
   * `exportHistory()` to stream all of it.
   *
   * @example
   * ```ts
   * const { steps, next_cursor } = await env.history({ limit: 50 });
   * for (const s of steps) console.log(s.step, s.code, s.reward);
   * if (next_cursor) await env.history({ cursor: next_cursor });
   * ```
   */
  async history(opts: HistoryOpts = {}): Promise<EpisodeHistory> {
    const episodeId = this.#requireEpisode("history");
    const response = await this.#request({
      method: "GET",
      path: `/episodes/${encodeURIComponent(episodeId)}/history${query({ limit: opts.limit, cursor: opts.cursor })}`,
      idempotent: true,
      signal: opts.signal,
    });
    return response.body as EpisodeHistory;
  }

  /**
   * The whole trajectory, streamed as JSON Lines and yielded one step at a time as the lines
   * arrive (each with `episode_id`), so a long episode is never held in memory. The request is
   * retried like any read; a connection cut mid-stream throws a `NetworkError` from the loop.
   * Stopping early (`break`) closes the connection.
   *
   * @example
   * ```ts
   * for await (const step of env.exportHistory()) {
   *   console.log(step.step, step.code, step.observation.exit_code);
   * }
   * ```
   */
  async *exportHistory(opts: ExportHistoryOpts = {}): AsyncGenerator<ExportedStep, void, undefined> {
    const stream = await this.exportHistoryJsonl(opts);
    yield* readJsonLines<ExportedStep>(stream, "GET /episodes/{id}/history");
  }

  /**
   * The whole trajectory as JSON Lines bytes (one step object with `episode_id` per line, oldest
   * first), streamed: pipe it to a file, or make a download of it in a browser.
   *
   * @example
   * ```ts
   * // Node: save it
   * import { createWriteStream } from "node:fs";
   * import { Writable } from "node:stream";
   * await (await env.exportHistoryJsonl()).pipeTo(Writable.toWeb(createWriteStream("run.jsonl")));
   * // browser: a download link
   * const blob = await new Response(await env.exportHistoryJsonl()).blob();
   * ```
   */
  async exportHistoryJsonl(opts: ExportHistoryOpts = {}): Promise<ReadableStream<Uint8Array>> {
    const episodeId = this.#requireEpisode("exportHistoryJsonl");
    // The server answers in parts of at most 5 MiB (X-Next-Cursor names the next); they are joined
    // here into one stream, each part requested when the one before has been read.
    let part = await this.#exportPart(episodeId, undefined, opts.signal);
    let reader = part.body.getReader();
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        for (;;) {
          const chunk = await reader.read();
          if (!chunk.done) {
            controller.enqueue(chunk.value);
            return;
          }
          if (part.next === null) {
            controller.close();
            return;
          }
          part = await this.#exportPart(episodeId, part.next, opts.signal);
          reader = part.body.getReader();
        }
      },
      cancel: async (reason) => {
        await reader.cancel(reason);
      },
    });
  }

  async #exportPart(
    episodeId: string,
    cursor: string | undefined,
    signal: AbortSignal | undefined,
  ): Promise<{ body: ReadableStream<Uint8Array>; next: string | null }> {
    const response = await this.#request({
      method: "GET",
      path: `/episodes/${encodeURIComponent(episodeId)}/history${query({ format: "jsonl", cursor })}`,
      accept: "application/x-ndjson",
      response: "stream",
      idempotent: true,
      signal,
    });
    if (!(response.body instanceof ReadableStream)) {
      throw new ServerError("GET /episodes/{id}/history answered no body", {
        status: response.status,
        code: "invalid_response",
        endpoint: "GET /episodes/{id}/history",
      });
    }
    return { body: response.body as ReadableStream<Uint8Array>, next: response.headers.get("x-next-cursor") };
  }

  /**
   * One page of your live episodes (those holding a slot of your active-episode quota), in id
   * order. Pass the page's `next_cursor` as `cursor` for the next one; it is null at the end. A
   * page may hold fewer than `limit` episodes. Needs no bound episode.
   *
   * @example
   * ```ts
   * const page = await env.listEpisodes({ limit: 20 });
   * console.log(page.episodes.map((e) => `${e.episode_id}: ${e.step_count} steps`));
   * if (page.next_cursor) await env.listEpisodes({ cursor: page.next_cursor });
   * ```
   */
  async listEpisodes(opts: ListEpisodesOpts = {}): Promise<EpisodesPage> {
    this.#assertOpen();
    const response = await this.#request({
      method: "GET",
      path: `/episodes${query({ limit: opts.limit, cursor: opts.cursor })}`,
      idempotent: true,
      signal: opts.signal,
    });
    const page = response.body as EpisodesPage | undefined;
    if (!Array.isArray(page?.episodes)) {
      throw new ServerError("GET /episodes answered a body that is not a page of episodes", {
        status: response.status,
        code: "invalid_response",
        endpoint: "GET /episodes",
      });
    }
    return page;
  }

  /**
   * Every live episode of yours, one at a time, fetching pages as the loop goes. Needs no bound
   * episode.
   *
   * @example
   * ```ts
   * for await (const e of env.episodes()) {
   *   if (e.step_count === 0) await env.deleteEpisode(e.episode_id); // tidy up unused ones
   * }
   * ```
   */
  async *episodes(opts: IterEpisodesOpts = {}): AsyncGenerator<EpisodeSummary, void, undefined> {
    let cursor: string | undefined;
    do {
      const page = await this.listEpisodes({
        limit: opts.pageSize ?? EPISODES_PAGE_SIZE,
        ...(cursor === undefined ? {} : { cursor }),
        ...(opts.signal === undefined ? {} : { signal: opts.signal }),
      });
      yield* page.episodes;
      cursor = page.next_cursor ?? undefined;
    } while (cursor !== undefined);
  }

  /**
   * Deletes one of your episodes by id (its state, files and history), freeing its quota slot. When
   * it is this client's episode, the client is left unbound (call `reset()` or use another client);
   * unlike `close()`, the client stays usable. A missing episode is a `NotFoundError` unless
   * `ignoreMissing` is set.
   *
   * @example
   * ```ts
   * await env.deleteEpisode("ep_old");
   * await env.deleteEpisode("ep_maybe_gone", { ignoreMissing: true });
   * ```
   */
  async deleteEpisode(episodeId: string, opts: DeleteEpisodeOpts = {}): Promise<void> {
    this.#assertOpen();
    try {
      await this.#request({
        method: "DELETE",
        path: `/episodes/${encodeURIComponent(episodeId)}`,
        idempotent: true,
        signal: opts.signal,
      });
    } catch (err) {
      if (!(opts.ignoreMissing && err instanceof NotFoundError)) throw err;
    }
    if (this.#episodeId === episodeId) this.#episodeId = undefined;
  }

  /**
   * The files of the episode's working directory (part of its state: they persist across steps,
   * restarts and forks), sorted by path.
   *
   * @example
   * ```ts
   * await env.step("open('out.txt', 'w').write('hi')");
   * (await env.files()).map((f) => `${f.path} ${f.size} B`); // ["out.txt 2 B"]
   * ```
   */
  async files(opts: FileOpts = {}): Promise<EpisodeFile[]> {
    const episodeId = this.#requireEpisode("files");
    const response = await this.#request({
      method: "GET",
      path: `/episodes/${encodeURIComponent(episodeId)}/files`,
      idempotent: true,
      signal: opts.signal,
    });
    const files = (response.body as { files?: unknown } | undefined)?.files;
    if (!Array.isArray(files)) {
      throw new ServerError("GET /episodes/{id}/files answered a body that is not a file list", {
        status: response.status,
        code: "invalid_response",
        endpoint: "GET /episodes/{id}/files",
      });
    }
    return files.map((f: EpisodeFile) => ({ path: f.path, size: f.size }));
  }

  /**
   * One file of the episode's directory, as bytes (decode text with `new TextDecoder().decode()`).
   *
   * @example
   * ```ts
   * const bytes = await env.readFile("out/result.csv");
   * const url = URL.createObjectURL(new Blob([bytes])); // browser: a download
   * ```
   */
  async readFile(path: string, opts: FileOpts = {}): Promise<Uint8Array> {
    const episodeId = this.#requireEpisode("readFile");
    const response = await this.#request({
      method: "GET",
      path: `/episodes/${encodeURIComponent(episodeId)}/files/${filePathSegment(path)}`,
      accept: "application/octet-stream",
      idempotent: true,
      response: "bytes",
      signal: opts.signal,
    });
    return response.body as Uint8Array;
  }

  /**
   * Writes one file into the episode's directory (text as UTF-8, or bytes); the next step sees it.
   * The upload is committed as the episode's next version, like a step (so `step_count` grows and
   * the history gets a row with empty code).
   *
   * @example
   * ```ts
   * await env.writeFile("data/input.txt", "1 2 3");
   * await env.step("open('data/input.txt').read()");
   * ```
   */
  async writeFile(path: string, content: string | Uint8Array, opts: FileOpts = {}): Promise<FileWritten> {
    const episodeId = this.#requireEpisode("writeFile");
    const body =
      typeof content === "string"
        ? { content }
        : { content: bytesToBase64(content), encoding: "base64" as const };
    // Retried only on 409/429 (nothing committed); a lost answer to a PUT of the same bytes is harmless
    // to repeat, but it would add a version, so it is not retried after a network error.
    const response = await this.#request({
      method: "PUT",
      path: `/episodes/${encodeURIComponent(episodeId)}/files/${filePathSegment(path)}`,
      body,
      idempotent: false,
      signal: opts.signal,
    });
    return response.body as FileWritten;
  }

  /**
   * The server's health (`{ status: "healthy", auth_required }`); needs no episode or key.
   *
   * @example
   * ```ts
   * const { auth_required } = await new CodingEnv().health();
   * ```
   */
  async health(): Promise<HealthStatus> {
    const response = await this.#request({ method: "GET", path: "/health", idempotent: true });
    return response.body as HealthStatus;
  }

  /**
   * Deletes the episode (or keeps it with `{ keep: true }`) and closes this client; later calls
   * throw. Closing twice, or an episode already gone, is not an error. Other clients sharing the
   * connection (forks, `withEpisode()`) stay open.
   *
   * @example
   * ```ts
   * await env.close();               // delete the episode
   * await other.close({ keep: true }); // keep it; reopen later with new CodingEnv({ episodeId })
   * ```
   */
  async close(opts: CloseOpts = {}): Promise<void> {
    if (this.#closed) return;
    const episodeId = this.#episodeId;
    this.#closed = true;
    this.#episodeId = undefined;
    if (opts.keep || episodeId === undefined) return;
    try {
      await this.#request({
        method: "DELETE",
        path: `/episodes/${encodeURIComponent(episodeId)}`,
        idempotent: true,
      });
    } catch (err) {
      // Already deleted or expired: the goal of close() is reached.
      if (err instanceof CodingEnvError && err.status === 404) return;
      throw err;
    }
  }

  /**
   * `await using env = new CodingEnv()` deletes the episode when the block ends.
   *
   * @example
   * ```ts
   * {
   *   await using env = new CodingEnv();
   *   await env.reset();
   * } // env.close() ran here
   * ```
   */
  async [asyncDisposeSymbol](): Promise<void> {
    await this.close();
  }

  #assertOpen(): void {
    if (this.#closed) {
      throw new CodingEnvError("This CodingEnv is closed; create a new one.", {
        status: 0,
        code: "client_closed",
      });
    }
  }

  #requireEpisode(method: string): string {
    this.#assertOpen();
    if (this.#episodeId === undefined) {
      throw new CodingEnvError(`No episode: call reset() before ${method}() (or pass opts.episodeId).`, {
        status: 0,
        code: "episode_required",
      });
    }
    return this.#episodeId;
  }

  #request(spec: RequestSpec): Promise<ApiResponse> {
    return this.#http.request(spec);
  }
}
