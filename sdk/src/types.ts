/**
 * Wire types of coding-env (`docs/API.md`), named after OpenEnv's `coding_env` models. Field names
 * are the protocol's (snake_case) so that code moves between Python and TypeScript unchanged.
 */

/**
 * OpenEnv's `CodeAction`: the Python code of one step.
 *
 * @example
 * ```ts
 * const action: CodeAction = { code: "x = 5 + 3\nprint(x)", metadata: { turn: 1 } };
 * await env.step(action);
 * ```
 */
export interface CodeAction {
  /** Python source run as one cell in the episode's persistent interpreter. */
  code: string;
  /** Free-form metadata recorded with the step (OpenEnv's base `Action.metadata`). */
  metadata?: Record<string, unknown>;
}

/**
 * OpenEnv's `CodeObservation`: what the cell printed and how it ended.
 *
 * @example
 * ```ts
 * const { observation } = await env.step("1/0");
 * observation.exit_code; // 1
 * observation.stderr;    // "Traceback (most recent call last): ... ZeroDivisionError: division by zero"
 * ```
 */
export interface CodeObservation {
  /** Printed output, then the last expression's value (JSON, else `repr`). */
  stdout: string;
  /** A clean traceback of the user's cell when it failed, else "". */
  stderr: string;
  /** 0 on success, 1 on any error (exception, syntax error, forbidden import, timeout). */
  exit_code: number;
}

/**
 * OpenEnv's `CodeState` plus coding-env's episode fields (`GET /state`).
 *
 * @example
 * ```ts
 * const state = await env.state();
 * console.log(state.episode_id, state.step_count, state.last_exit_code);
 * ```
 */
export interface CodeState {
  episode_id: string;
  step_count: number;
  last_exit_code: number;
  /** `"openenv"` (the reference's import allow-list) or `"full"` (all of Python). */
  policy?: ImportPolicy;
  additional_imports?: string[];
  /** The episode's per-step limit in seconds. */
  step_timeout_s?: number;
  /** Idle seconds before the episode expires. */
  ttl_s?: number;
  /** The `seed` given to `reset()`, when one was. */
  seed?: number;
  /** The source episode's id, when this episode is a fork. */
  forked_from?: string;
  /** ISO 8601 timestamps. */
  created_at?: string;
  updated_at?: string;
  expires_at?: string;
  /** State allows extra fields (OpenEnv). */
  [extra: string]: unknown;
}

/** The episode's import policy. */
export type ImportPolicy = "openenv" | "full";

/** A variable the executor could not keep between steps (open files, generators, sockets...). */
export interface DroppedVariable {
  name: string;
  type: string;
}

/** coding-env's extra facts about a step (`info` next to `observation`). */
export interface StepInfo {
  /** Time the cell ran, in milliseconds. */
  duration_ms: number;
  /** The cell hit the step timeout; the episode's Python state is as before the step. */
  timed_out: boolean;
  stdout_truncated: boolean;
  stderr_truncated: boolean;
  dropped_variables: DroppedVariable[];
  [extra: string]: unknown;
}

/**
 * The JSON body of `/reset`, `/step` and `/episodes/{id}/fork`: OpenEnv's
 * `{ observation, reward, done }` plus coding-env's extras at the top level.
 */
export interface StepResultData {
  observation: CodeObservation;
  /** OpenEnv's reward: safety (-1.0) plus quality (+0.1 short code, -0.2 syntax error). */
  reward: number | null;
  /** Never set by this environment (OpenEnv's coding_env), kept for protocol compatibility. */
  done: boolean;
  /** OpenEnv's observation metadata (`last_code`, `safety_violation`). */
  metadata?: Record<string, unknown>;
  episode_id: string;
  step_count: number;
  /** Present on steps. */
  info?: StepInfo;
  /** Present on a fork's first result: the source episode's id. */
  forked_from?: string;
  [extra: string]: unknown;
}

/** One step of an episode's trajectory (`GET /episodes/{id}/history`). */
export interface HistoryStep {
  /** 1-based step number. */
  step: number;
  code: string;
  observation: CodeObservation;
  reward: number | null;
  done: boolean;
  metadata?: Record<string, unknown>;
  info?: StepInfo;
  request_id?: string;
  started_at: string;
  duration_ms: number;
  [extra: string]: unknown;
}

/** An episode's trajectory, oldest step first. */
export interface EpisodeHistory {
  episode_id: string;
  steps: HistoryStep[];
}

/** `GET /health`. */
export interface HealthStatus {
  status: string;
  auth_required?: boolean;
  [extra: string]: unknown;
}
