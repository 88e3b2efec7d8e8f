/**
 * `@coding-env/sdk`: a typed client for coding-env, shaped like OpenEnv's `CodingEnv`.
 *
 * @example
 * ```ts
 * import { CodingEnv } from "@coding-env/sdk";
 *
 * const env = new CodingEnv(); // CODING_ENV_URL or http://localhost:8000
 * await env.reset();
 * const result = await env.step("print('Hello, World!')");
 * console.log(result.observation.stdout); // "Hello, World!"
 * await env.close();
 * ```
 * @packageDocumentation
 */
export { type BatchOpts, createEpisodes, mapConcurrent, type Settled, stepBatch } from "./batch.js";
export {
  type CloseOpts,
  CodingEnv,
  type CodingEnvOpts,
  type DeleteEpisodeOpts,
  type EpisodeFile,
  type ExportHistoryOpts,
  type FetchLike,
  type FileOpts,
  type FileWritten,
  type HistoryOpts,
  type IterEpisodesOpts,
  type ListEpisodesOpts,
  type ResetOpts,
  type StepOpts,
} from "./client.js";
export {
  type ApiErrorBody,
  AuthError,
  BadRequestError,
  CodingEnvError,
  type CodingEnvErrorOpts,
  ConflictError,
  errorFromResponse,
  NetworkError,
  NotFoundError,
  RateLimitError,
  ServerError,
  TimeoutError,
} from "./errors.js";
export { JUPYTER_DISPLAY, type MimeBundle, StepResult } from "./result.js";
export { DEFAULT_RETRY, type ResolvedRetry, type RetryOpts } from "./retry.js";
export type {
  CodeAction,
  CodeObservation,
  CodeState,
  DisplayOutput,
  DroppedVariable,
  EpisodeHistory,
  EpisodeSummary,
  EpisodesPage,
  ExportedStep,
  HealthStatus,
  HistoryStep,
  ImportPolicy,
  StepInfo,
  StepResultData,
} from "./types.js";

/**
 * The SDK's version.
 *
 * @example
 * ```ts
 * console.log(VERSION); // "0.1.0"
 * ```
 */
export const VERSION = "0.1.0";
