/**
 * Wire types of coding-env, named after OpenEnv's `coding_env` models. They are the types generated
 * from the API's `/openapi.json` (`types.generated.ts`, by `scripts/generate-sdk-types.ts`), under
 * the SDK's names. Field names are the protocol's (snake_case) so that code moves between Python and
 * TypeScript unchanged.
 */
import type * as wire from "./types.generated.js";

/**
 * OpenEnv's `CodeAction`: the Python code of one step. Unknown members are refused (422).
 *
 * @example
 * ```ts
 * const action: CodeAction = { code: "x = 5 + 3\nprint(x)", metadata: { turn: 1 } };
 * await env.step(action);
 * ```
 */
export type CodeAction = wire.CodeAction;

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
export type CodeObservation = wire.CodeObservation;

/**
 * OpenEnv's `CodeState` plus coding-env's episode fields, of a named episode (so `episode_id` is set).
 *
 * @example
 * ```ts
 * const state = await env.state();
 * console.log(state.episode_id, state.step_count, state.last_exit_code);
 * ```
 */
export type CodeState = wire.CodeState & { episode_id: string };

/** The episode's import policy: `"openenv"` (the reference's allow-list) or `"full"` (all of Python). */
export type ImportPolicy = NonNullable<wire.ResetRequest["policy"]>;

/** A variable the executor could not keep between steps (open files, generators, sockets...). */
export type DroppedVariable = wire.StepInfo["dropped_variables"][number];

/** coding-env's extra facts about a step (`info` next to `observation`). */
export type StepInfo = wire.StepInfo;

/** A rich output (Jupyter MIME bundle) a cell displayed. */
export type DisplayOutput = wire.DisplayOutput;

/**
 * The JSON body of `/reset`, `/step` and `/episodes/{id}/fork`: OpenEnv's
 * `{ observation, reward, done }` plus coding-env's extras at the top level.
 */
export type StepResultData = wire.StepResponse;

/**
 * One step of an episode's trajectory (`GET /episodes/{id}/history`), with the step's rich outputs
 * (`display`) when it made some; an upload's row has empty code and `info.files_written`.
 *
 * @example
 * ```ts
 * const { steps } = await env.history();
 * steps[0]?.code; // "x = 1"
 * ```
 */
export type HistoryStep = wire.HistoryStep;

/** A page of an episode's trajectory, oldest step first (`next_cursor` is null at the end). */
export type EpisodeHistory = wire.HistoryPage;

/** One line of the JSON Lines export: a {@link HistoryStep} with its episode's id. */
export type ExportedStep = wire.HistoryLine;

/** One row of `GET /episodes`: a live episode of yours (it holds a slot of the active-episode quota). */
export type EpisodeSummary = wire.EpisodeSummary;

/** A page of your live episodes (`next_cursor` is null at the end). */
export type EpisodesPage = wire.EpisodesList;

/** `GET /health`. */
export type HealthStatus = wire.Health;

/** The options of `POST /reset`. */
export type ResetRequest = wire.ResetRequest;

/** Every error's body: `{ error: { code, message, details? }, detail? }`. */
export type ErrorResponse = wire.ErrorResponse;
