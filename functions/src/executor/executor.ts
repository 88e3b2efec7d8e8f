// The API's view of the Python executor: one synchronous Lambda Invoke per step through
// `@aws-sdk/client-lambda` (an endpoint override reaches the local Invoke-API server), sent with
// the tenant (`TenantId`, Lambda's tenant isolation mode) so two tenants never share an execution
// environment. User-code failures are data in the result, never errors here, and so is the
// executor's `busy` reply (a step of the episode already runs there; nothing ran): the core answers
// it 409 `step_in_progress` or waits for the twin request that is running. Every failure of the
// call itself is a typed error in the one error shape:
//   Lambda throttling (TooManyRequestsException, HTTP 429)     429 executor_throttled + Retry-After
//   request over Lambda's 6 MB                                 413 payload_too_large (nothing ran)
//   no answer by the step limit + grace or the request deadline  504 executor_timeout
//   reply over 6 MB, function error, unreadable reply          502 executor_error
import { InvokeCommand, type InvokeCommandOutput, type LambdaClient } from "@aws-sdk/client-lambda";
import type { StateTransfer } from "../core/episode-repository.js";
import {
  ExecutorCrashedError,
  ExecutorError,
  ExecutorThrottledError,
  ExecutorTimeoutError,
  PayloadTooLargeError,
} from "../core/errors.js";
import { currentDeadline } from "./deadline.js";

/** The executor's event, contract version 1 (python-runtime/README.md). */
export interface ExecuteRequest {
  /** Whose step: sent as the Invoke's `TenantId` and the event's `tenant_id` (auth off: "local"). */
  readonly tenantId: string;
  readonly episodeId: string;
  /** The episode's incarnation (a new one per reset of an id): part of the warm worker's key. */
  readonly incarnation?: string;
  readonly stateVersion: number;
  /** The previous step's snapshot (base64), `null` for a fresh episode. */
  readonly snapshot: string | null;
  readonly code: string;
  readonly policy: { readonly mode: "openenv" | "full"; readonly additionalImports: readonly string[] };
  readonly timeoutMs: number;
  readonly memoryMb?: number;
  /** The reset's seed: the runtime seeds `random` (and numpy) when the episode starts fresh. */
  readonly seed?: number;
  /** Large state in S3: the executor reads/writes it with these pre-signed URLs (never in the payload). */
  readonly state?: StateTransfer;
}

/** A Jupyter MIME bundle (`image/png` base64, `image/svg+xml`, `text/html`, `text/markdown`, `text/plain`). */
export interface DisplayBundle {
  readonly data: Record<string, string>;
  readonly metadata: Record<string, unknown>;
}

/**
 * `{"op": "files"}`: an episode's files in a snapshot, read or rewritten by the runtime without
 * running code (python-runtime/coding_env_runtime/files_op.py).
 */
export type FilesRequest = {
  readonly tenantId: string;
  readonly episodeId: string;
  readonly snapshot: string | null;
  /** A state in S3 (read from `get_url`; a written state over the inline size goes to `put_url`). */
  readonly state?: StateTransfer;
} & (
  | { readonly action: "list" }
  | { readonly action: "read"; readonly path: string }
  | { readonly action: "write"; readonly path: string; readonly content: Uint8Array }
);

/** The runtime's answer to a files operation: one of the fields, or an `error_code`. */
export interface FilesResult {
  readonly files?: Array<{ path: string; size: number }>;
  readonly content_base64?: string;
  readonly snapshot?: string;
  /** With `state`: where the written state is (`inline` in `snapshot`, or `put`: the object). */
  readonly state_location?: "inline" | "put";
  readonly state_ref?: string;
  readonly state_bytes?: number;
  readonly state_sha256?: string;
  readonly snapshot_bytes?: number;
  /** `not_found`, `invalid_path`, `too_large`, `snapshot_incompatible`, `state_too_large`. */
  readonly error_code?: string;
  readonly message?: string;
}

/** The executor's answer, contract version 1. */
export interface ExecuteResult {
  readonly stdout: string;
  readonly stderr: string;
  /** 0..255 by contract; the core clamps anything else to 1 (a cell can report odd values). */
  readonly exit_code: number;
  readonly snapshot: string;
  readonly state_version: number;
  readonly snapshot_bytes?: number;
  readonly dropped?: Array<{ name: string; type: string }>;
  readonly duration_ms?: number;
  readonly timed_out?: boolean;
  readonly out_of_memory?: boolean;
  readonly crashed?: boolean;
  readonly stdout_truncated?: boolean;
  readonly stderr_truncated?: boolean;
  /** `"syntax_error"`, `"timeout"`, `"crashed"`, `"state_too_large"`, `"busy"`…, or null. */
  readonly error_code?: string | null;
  readonly runtime_version?: string;
  readonly warm?: boolean;
  /** Rich outputs of the step (display(), matplotlib figures), absent when none. */
  readonly display?: DisplayBundle[];
  /**
   * With `state`: where the new state is: `inline` (`snapshot`), `put` (the object `state_ref`
   * was written: `state_bytes`, `state_sha256`) or `input` (unchanged).
   */
  readonly state_location?: "inline" | "put" | "input";
  readonly state_ref?: string;
  readonly state_bytes?: number;
  readonly state_sha256?: string;
}

/** Which warm workers {@link Executor.discard} drops: the episode's, of one incarnation or all. */
export interface DiscardRequest {
  readonly tenantId: string;
  readonly episodeId: string;
  readonly incarnation?: string;
}

export interface Executor {
  /** Runs one step. Throws the typed errors listed at the top of this file. */
  execute(req: ExecuteRequest): Promise<ExecuteResult>;
  /**
   * Drops the warm worker(s) of a (tenant, episode) at once (reset of an existing id, delete,
   * expiry). Never rejects: callers fire and forget; failures are logged. A warm worker that is
   * not dropped is never used by another incarnation or version (its key has both) and is
   * evicted in time.
   */
  discard(req: DiscardRequest): Promise<void>;
  /** An episode's files in a snapshot (list, read, or write: a new snapshot to commit). */
  files?(req: FilesRequest): Promise<FilesResult>;
}

/** Options of {@link LambdaExecutor}. */
export interface LambdaExecutorOpts {
  readonly client: LambdaClient;
  /** Function name or ARN. */
  readonly functionName: string;
  /** Time the executor gets beyond the step's own limit before we give up (ms). @default 6000 */
  readonly graceMs?: number;
  /** Discard calls in flight at once; more are skipped (logged). @default 8 */
  readonly maxDiscardsInFlight?: number;
  /** Time a discard call may take (ms). @default 5000 */
  readonly discardTimeoutMs?: number;
}

/** Logs (never returns to clients) why a call failed. */
function logExecutorFailure(message: string, cause: unknown): void {
  const detail = cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause);
  console.error(JSON.stringify({ level: "ERROR", message: `executor ${message}`, cause: detail }));
}

const RESPONSE_TOO_LARGE = /ResponseSizeTooLarge/i;
/** What the wait of {@link LambdaExecutor} resolves to when it ends before the answer. */
const WAIT_OVER: unique symbol = Symbol("wait over");

function responseTooLarge(): ExecutorError {
  return new ExecutorError(
    "The code executor's answer was over the 6 MB limit; the episode is unchanged. Print less output.",
  );
}

/** The `errorType` of a function error's payload (`{"errorType": ..., "errorMessage": ...}`). */
function errorTypeOf(payload: string): string | undefined {
  try {
    const parsed = JSON.parse(payload) as { errorType?: unknown };
    return typeof parsed?.errorType === "string" ? parsed.errorType : undefined;
  } catch {
    return undefined;
  }
}

/** What a failed Invoke call means for the client (it threw: no payload came back). */
function invokeFailure(err: unknown): Error {
  const e = err as { name?: string; retryAfterSeconds?: string; $metadata?: { httpStatusCode?: number } };
  const name = e.name ?? "";
  const status = e.$metadata?.httpStatusCode;
  if (name === "AbortError" || name === "TimeoutError") return new ExecutorTimeoutError();
  if (name === "TooManyRequestsException" || status === 429) {
    const after = Number(e.retryAfterSeconds);
    return new ExecutorThrottledError(Number.isFinite(after) && after >= 1 ? Math.ceil(after) : 1);
  }
  if (name === "RequestTooLargeException" || status === 413) {
    return new PayloadTooLargeError(
      "The step's code and Python state together are over the executor's 6 MB request limit; nothing ran.",
    );
  }
  logExecutorFailure("invoke failed", err);
  if (RESPONSE_TOO_LARGE.test(name)) return responseTooLarge();
  return new ExecutorError();
}

export class LambdaExecutor implements Executor {
  private readonly graceMs: number;
  private readonly maxDiscardsInFlight: number;
  private readonly discardTimeoutMs: number;
  private discardsInFlight = 0;

  constructor(private readonly opts: LambdaExecutorOpts) {
    this.graceMs = opts.graceMs ?? 6000;
    this.maxDiscardsInFlight = opts.maxDiscardsInFlight ?? 8;
    this.discardTimeoutMs = opts.discardTimeoutMs ?? 5000;
  }

  async execute(req: ExecuteRequest): Promise<ExecuteResult> {
    const event = {
      contract_version: 1,
      tenant_id: req.tenantId,
      episode_id: req.episodeId,
      ...(req.incarnation ? { incarnation: req.incarnation } : {}),
      state_version: req.stateVersion,
      snapshot: req.snapshot,
      code: req.code,
      policy: { mode: req.policy.mode, additional_imports: req.policy.additionalImports },
      limits: { timeout_ms: req.timeoutMs, ...(req.memoryMb ? { memory_mb: req.memoryMb } : {}) },
      ...(req.seed !== undefined ? { seed: req.seed } : {}),
      ...(req.state ? { state: req.state } : {}),
    };
    // Stop waiting at the step limit + grace, or at the request's deadline if that comes first,
    // so the API's own 504 goes out while its Lambda and API Gateway still wait.
    let waitMs = req.timeoutMs + this.graceMs;
    const deadline = currentDeadline();
    if (deadline !== undefined) waitMs = Math.min(waitMs, deadline - Date.now());
    if (waitMs <= 0) throw new ExecutorTimeoutError();
    const out = await this.invoke(req.tenantId, event, waitMs);
    const text = out.Payload ? Buffer.from(out.Payload).toString("utf8") : "";
    if (out.FunctionError) {
      // Lambda's own timeout is a function error whose message says so.
      if (/Task timed out/i.test(text)) throw new ExecutorTimeoutError();
      if (errorTypeOf(text) === "Runtime.ExitError") throw new ExecutorCrashedError();
      logExecutorFailure(`function error ${out.FunctionError}`, text.slice(0, 2000));
      if (RESPONSE_TOO_LARGE.test(text.slice(0, 2000))) throw responseTooLarge();
      throw new ExecutorError();
    }
    let result: ExecuteResult;
    try {
      result = JSON.parse(text) as ExecuteResult;
    } catch {
      throw new ExecutorError("The code executor returned an unreadable answer; the episode is unchanged.");
    }
    // Only what the API cannot do without; odd values of the rest (an exit code of 2**60 or true)
    // are the core's to clamp, never a 502.
    if (typeof result !== "object" || result === null || typeof result.snapshot !== "string") {
      throw new ExecutorError("The code executor returned an incomplete answer; the episode is unchanged.");
    }
    return result;
  }

  async discard({ tenantId, episodeId, incarnation }: DiscardRequest): Promise<void> {
    if (this.discardsInFlight >= this.maxDiscardsInFlight) {
      logExecutorFailure("discard skipped", `${this.discardsInFlight} discards in flight`);
      return;
    }
    this.discardsInFlight += 1;
    try {
      const event = {
        contract_version: 1,
        op: "discard",
        tenant_id: tenantId,
        episode_id: episodeId,
        ...(incarnation ? { incarnation } : {}),
      };
      const out = await this.invoke(tenantId, event, this.discardTimeoutMs);
      if (out.FunctionError) {
        const text = out.Payload ? Buffer.from(out.Payload).toString("utf8") : "";
        logExecutorFailure(`discard function error ${out.FunctionError}`, text.slice(0, 500));
      }
    } catch (err) {
      logExecutorFailure("discard failed", err);
    } finally {
      this.discardsInFlight -= 1;
    }
  }

  async files(req: FilesRequest): Promise<FilesResult> {
    const event = {
      contract_version: 1,
      op: "files",
      tenant_id: req.tenantId,
      episode_id: req.episodeId,
      snapshot: req.snapshot,
      ...(req.state ? { state: req.state } : {}),
      action: req.action,
      ...(req.action !== "list" ? { path: req.path } : {}),
      ...(req.action === "write" ? { content_base64: Buffer.from(req.content).toString("base64") } : {}),
    };
    let waitMs = 30_000;
    const deadline = currentDeadline();
    if (deadline !== undefined) waitMs = Math.min(waitMs, deadline - Date.now());
    if (waitMs <= 0) throw new ExecutorTimeoutError();
    const out = await this.invoke(req.tenantId, event, waitMs);
    const text = out.Payload ? Buffer.from(out.Payload).toString("utf8") : "";
    if (out.FunctionError) {
      logExecutorFailure(`files function error ${out.FunctionError}`, text.slice(0, 2000));
      throw new ExecutorError();
    }
    try {
      return JSON.parse(text) as FilesResult;
    } catch {
      throw new ExecutorError("The code executor returned an unreadable answer.");
    }
  }

  /**
   * One synchronous Invoke; a failure of the call becomes its typed error. Sent without per-call
   * options: an `abortSignal` would make the client rebuild its whole middleware stack for every
   * call (the SDK caches the resolved stack only for option-less calls, `cacheMiddleware`). The
   * wait is bounded here instead; the client's socket timeout (deps.ts) frees a connection whose
   * answer never comes.
   */
  private async invoke(tenantId: string, event: object, waitMs: number): Promise<InvokeCommandOutput> {
    const sent = this.opts.client.send(
      new InvokeCommand({
        FunctionName: this.opts.functionName,
        InvocationType: "RequestResponse",
        TenantId: tenantId,
        Payload: Buffer.from(JSON.stringify(event)),
      }),
    );
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<typeof WAIT_OVER>((resolve) => {
      timer = setTimeout(() => resolve(WAIT_OVER), waitMs);
    });
    let out: InvokeCommandOutput | typeof WAIT_OVER;
    try {
      out = await Promise.race([sent, timedOut]);
    } catch (err) {
      throw invokeFailure(err);
    } finally {
      clearTimeout(timer);
    }
    if (out === WAIT_OVER) {
      // The answer may still come (or fail) after we stopped waiting: nothing is left unhandled.
      sent.catch(() => undefined);
      throw new ExecutorTimeoutError();
    }
    return out;
  }
}
