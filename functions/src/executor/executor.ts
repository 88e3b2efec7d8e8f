// The API's view of the Python executor: one synchronous Lambda Invoke per step through
// `@aws-sdk/client-lambda` (an endpoint override reaches the local Invoke-API server). Function
// errors (the runtime itself failed) become `ExecutorError` (502); no answer in time becomes
// `ExecutorTimeoutError` (504). User-code failures are data in the result, never errors here.
import { InvokeCommand, type InvokeCommandOutput, type LambdaClient } from "@aws-sdk/client-lambda";
import { ExecutorError, ExecutorTimeoutError } from "../core/errors.js";

/** The executor's event, contract version 1 (python-runtime/README.md). */
export interface ExecuteRequest {
  readonly episodeId: string;
  readonly stateVersion: number;
  /** The previous step's snapshot (base64), `null` for a fresh episode. */
  readonly snapshot: string | null;
  readonly code: string;
  readonly policy: { readonly mode: "openenv" | "full"; readonly additionalImports: readonly string[] };
  readonly timeoutMs: number;
  readonly memoryMb?: number;
}

/** The executor's answer, contract version 1. */
export interface ExecuteResult {
  readonly stdout: string;
  readonly stderr: string;
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
  /** `"syntax_error"`, `"timeout"`, `"crashed"`, `"out_of_memory"`, `"snapshot_incompatible"`…, or null. */
  readonly error_code?: string | null;
  readonly runtime_version?: string;
  readonly warm?: boolean;
}

/** Logs (never returns to clients) why an invoke failed. */
function logExecutorFailure(message: string, cause: unknown): void {
  const detail = cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause);
  console.error(JSON.stringify({ level: "ERROR", message: `executor ${message}`, cause: detail }));
}

export interface Executor {
  execute(req: ExecuteRequest): Promise<ExecuteResult>;
}

/** Options of {@link LambdaExecutor}. */
export interface LambdaExecutorOpts {
  readonly client: LambdaClient;
  /** Function name or ARN. */
  readonly functionName: string;
  /** Time the executor gets beyond the step's own limit before we give up (ms). @default 5000 */
  readonly graceMs?: number;
}

export class LambdaExecutor implements Executor {
  private readonly graceMs: number;

  constructor(private readonly opts: LambdaExecutorOpts) {
    this.graceMs = opts.graceMs ?? 5000;
  }

  async execute(req: ExecuteRequest): Promise<ExecuteResult> {
    const event = {
      contract_version: 1,
      episode_id: req.episodeId,
      state_version: req.stateVersion,
      snapshot: req.snapshot,
      code: req.code,
      policy: { mode: req.policy.mode, additional_imports: req.policy.additionalImports },
      limits: { timeout_ms: req.timeoutMs, ...(req.memoryMb ? { memory_mb: req.memoryMb } : {}) },
    };
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), req.timeoutMs + this.graceMs);
    let out: InvokeCommandOutput;
    try {
      out = await this.opts.client.send(
        new InvokeCommand({
          FunctionName: this.opts.functionName,
          InvocationType: "RequestResponse",
          Payload: Buffer.from(JSON.stringify(event)),
        }),
        { abortSignal: abort.signal },
      );
    } catch (err) {
      const name = (err as { name?: string }).name ?? "";
      if (abort.signal.aborted || name === "AbortError" || name === "TimeoutError") {
        throw new ExecutorTimeoutError();
      }
      logExecutorFailure("invoke failed", err);
      throw new ExecutorError();
    } finally {
      clearTimeout(timer);
    }
    const text = out.Payload ? Buffer.from(out.Payload).toString("utf8") : "";
    if (out.FunctionError) {
      // Lambda's own timeout is a function error whose message says so.
      if (/Task timed out/i.test(text)) throw new ExecutorTimeoutError();
      logExecutorFailure(`function error ${out.FunctionError}`, text.slice(0, 2000));
      throw new ExecutorError();
    }
    let result: ExecuteResult;
    try {
      result = JSON.parse(text) as ExecuteResult;
    } catch {
      throw new ExecutorError("The code executor returned an unreadable answer; the episode is unchanged.");
    }
    if (typeof result.snapshot !== "string" || typeof result.exit_code !== "number") {
      throw new ExecutorError("The code executor returned an incomplete answer; the episode is unchanged.");
    }
    return result;
  }
}
