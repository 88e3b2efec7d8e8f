// From the executor's answer to what a step returns and stores: the observation (exit code
// clamped), our `info`, the reward, the step record, and a response rebuilt from a stored record.
// The types are the wire schemas' own (http/schemas.ts, zod only): the contract is written once.
import type { z } from "zod";
import type { ExecuteResult } from "../executor/executor.js";
import type {
  CodeObservationSchema,
  HistoryPageSchema,
  HistoryStepSchema,
  StepInfoSchema,
  StepResponseSchema,
} from "../http/schemas.js";
import { computeReward, type RewardRule } from "./rewards.js";

/** OpenEnv's observation, exactly its fields (clients reject unknown keys there). */
export type Observation = z.output<typeof CodeObservationSchema>;

/** Body of `/reset`, `/step` and fork responses: OpenEnv's fields, then ours at the top level. */
export type StepResponse = z.output<typeof StepResponseSchema>;

/** This API's facts about a step (`info`). */
export type StepInfo = z.output<typeof StepInfoSchema>;

/**
 * One step of the trajectory, as the store keeps it and `GET /episodes/{id}/history` returns it
 * (display bundles included; `history_truncated` when the stored copy was cut). Every record the
 * core writes has `metadata` and `info`.
 */
export type StepRecord = Readonly<
  z.output<typeof HistoryStepSchema> & Required<Pick<z.output<typeof HistoryStepSchema>, "metadata" | "info">>
>;

/** Body of `GET /episodes/{id}/history` (a page of records, oldest first). */
export type HistoryPageBody = Omit<z.output<typeof HistoryPageSchema>, "steps"> & { steps: StepRecord[] };

/** What a step's outcome is built from: the executor's answer without its state. */
export type StepResult = Omit<ExecuteResult, "snapshot" | "state_version">;

/** The outcome of a step during which the executor's process ended (`ExecutorCrashedError`). */
export function crashedStepResult(durationMs: number): StepResult {
  return {
    stdout: "",
    stderr:
      "The step ended the code executor's process and was stopped; the episode's state is as it was before this step.\n",
    exit_code: 1,
    crashed: true,
    error_code: "crashed",
    duration_ms: Math.round(durationMs * 1000) / 1000,
  };
}

/** A process exit status is 0..255; anything else a cell manages to report (2**60, -1, a bool) is 1. */
export function clampExitCode(value: unknown): number {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= 255 ? value : 1;
}

/**
 * Whether the code failed to parse. The runtime says so (`error_code: "syntax_error"`, `null`
 * otherwise); for an answer without the field, a failed step whose traceback ends in a compile
 * error and has no frame of running code is a parse error.
 */
export function failedToParse(result: StepResult): boolean {
  if ("error_code" in result) return result.error_code === "syntax_error";
  if (result.exit_code === 0) return false;
  const lines = String(result.stderr).trimEnd().split("\n");
  const last = lines[lines.length - 1] ?? "";
  if (!/^(SyntaxError|IndentationError|TabError)\b/.test(last)) return false;
  return !String(result.stderr).includes(", in <module>");
}

/** The step's record and response body from the executor's answer (version = the new step count). */
export function stepOutcome(opts: {
  readonly result: StepResult;
  readonly code: string;
  readonly rules: readonly RewardRule[];
  readonly step: number;
  readonly requestId?: string;
  readonly startMs: number;
  readonly nowMs: number;
}): { record: StepRecord; observation: Observation } {
  const { result } = opts;
  const { reward, metadata } = computeReward({ code: opts.code, parses: !failedToParse(result) }, opts.rules);
  const observation: Observation = {
    stdout: String(result.stdout ?? ""),
    stderr: String(result.stderr ?? ""),
    exit_code: clampExitCode(result.exit_code),
  };
  const info: StepInfo = {
    duration_ms: typeof result.duration_ms === "number" ? result.duration_ms : 0,
    timed_out: result.timed_out === true,
    stdout_truncated: result.stdout_truncated === true,
    stderr_truncated: result.stderr_truncated === true,
    dropped_variables: Array.isArray(result.dropped) ? result.dropped : [],
    ...(result.out_of_memory ? { out_of_memory: true } : {}),
    ...(result.crashed ? { crashed: true } : {}),
    ...(typeof result.error_code === "string" ? { error_code: result.error_code } : {}),
  };
  const record: StepRecord = {
    step: opts.step,
    code: opts.code,
    observation,
    reward,
    done: false,
    metadata: { ...metadata, last_code: opts.code },
    info,
    ...(opts.requestId !== undefined ? { request_id: opts.requestId } : {}),
    ...(Array.isArray(result.display) && result.display.length > 0 ? { display: result.display } : {}),
    started_at: new Date(opts.startMs).toISOString(),
    duration_ms: opts.nowMs - opts.startMs,
  };
  return { record, observation };
}

/** The response of a step from its record (a fresh step, or a replay of a stored one). */
export function responseOf(episodeId: string, rec: StepRecord): StepResponse {
  return {
    observation: rec.observation,
    reward: rec.reward,
    done: rec.done,
    metadata: rec.metadata,
    episode_id: episodeId,
    step_count: rec.step,
    // A replay of a step whose stored copy was cut says so (the first answer had it whole).
    info: rec.history_truncated ? { ...rec.info, history_truncated: true } : rec.info,
    ...(rec.display !== undefined && rec.display.length > 0 ? { display: rec.display } : {}),
  };
}
