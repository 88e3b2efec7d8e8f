// The episode repository port: what the core needs of a store, in the core's terms. The DynamoDB
// adapter (store/dynamodb-episode-repository.ts) decides every item layout; tests of the core's
// branches use an in-memory fake of this interface (test/core/fake-episode-repository.ts).

import type { StepRecord } from "./step-result.js";

export type Policy = "openenv" | "full";

/** An episode's settings and its latest committed version (with that version's Python state). */
export interface Episode {
  readonly id: string;
  readonly tenantId: string;
  /** Minted by reset/fork; a reset that reuses an id starts a new one (leftovers are never read as ours). */
  readonly incarnation: string;
  /** Committed steps since reset; a step commits version + 1 only if nobody else did. */
  readonly version: number;
  readonly policy: Policy;
  readonly additionalImports: readonly string[];
  readonly stepTimeoutS: number;
  readonly ttlS: number;
  readonly lastExitCode: number;
  readonly seed?: number;
  readonly forkedFrom?: string;
  readonly createdAtMs: number;
  /** When the latest version was committed (creation time before the first step). */
  readonly updatedAtMs: number;
  /** Epoch seconds: `ttl_s` after the last update; the episode is gone from then on. */
  readonly expiresAt: number;
  /** The executor's snapshot (base64) of this version when inline, `null` before the first step or when in S3. */
  readonly snapshot: string | null;
  /** The state object in S3 (a state over the inline size); `snapshot` is then `null`. */
  readonly stateObject?: StateObjectRef;
}

/** A state kept in S3: one immutable object per version (store/s3-state.ts). */
export interface StateObjectRef {
  readonly key: string;
  /** Size of the object (the executor's raw snapshot), bytes. */
  readonly bytes: number;
  /** SHA-256 of the object (hex), computed by the executor when it wrote it; checked on reads. */
  readonly sha256: string;
  /** When the object was written (ms): an old one is copied before a new version names it. */
  readonly createdAtMs: number;
}

/**
 * The executor's `state` (python-runtime/coding_env_runtime/contract.py): pre-signed URLs of the
 * input state's object and of a new object for the step's state when it is over `inline_max_bytes`.
 */
export interface StateTransfer {
  readonly get_url?: string;
  readonly get_ref?: string;
  readonly get_bytes?: number;
  readonly get_sha256?: string;
  readonly put_url: string;
  readonly put_ref: string;
  readonly inline_max_bytes: number;
  readonly max_bytes: number;
}

/** What reset and fork ask the repository to create (it mints the incarnation). */
export type NewEpisode = Omit<
  Episode,
  "incarnation" | "version" | "lastExitCode" | "updatedAtMs" | "expiresAt" | "stateObject"
>;

/** One step of the trajectory, as `GET /episodes/{id}/history` returns it (the wire schema's type). */
export type { StepRecord };

/** What a step's executor run costs the tenant (the store keeps it with the step or execution). */
export interface ExecutionUsage {
  /** The executor's own duration (ms). */
  readonly executorMs: number;
  /** Bytes of Python state the step stores (0 for an execution that did not commit). */
  readonly stateBytes: number;
}

export interface CommitStepInput {
  /** The episode as read before the step: the new version is `before.version + 1`. */
  readonly before: Episode;
  /** The state after the step; `null` while the episode has never had one, or when in S3. */
  readonly snapshot: string | null;
  /** The state after the step when it is an S3 object (the executor wrote it, or the input's). */
  readonly stateObject?: StateObjectRef;
  readonly lastExitCode: number;
  readonly nowMs: number;
  readonly record: StepRecord;
  readonly requestId?: string;
  readonly usage: ExecutionUsage;
}

export type CommitStepResult =
  | { readonly kind: "committed"; readonly episode: Episode }
  /** Another request committed this version first. */
  | { readonly kind: "conflict" }
  /** A concurrent twin with the same request id committed this version: its record. */
  | { readonly kind: "duplicate"; readonly record: StepRecord };

/** Why an execution did not commit (kept with its metering record). */
export type UncommittedReason =
  | "conflict"
  | "duplicate"
  | "state_too_large"
  | "executor_timeout"
  | "commit_failed";

export interface UncommittedExecution {
  readonly tenantId: string;
  readonly episodeId: string;
  readonly nowMs: number;
  readonly executorMs: number;
  readonly reason: UncommittedReason;
}

/**
 * A step's hold on its episode while its code runs: one step at a time per episode on any number of
 * API instances (each AWS API instance serves one request at a time and Lambda sends a concurrent
 * invocation to another environment, so no in-process check can see the overlap).
 */
export interface StepClaim {
  /** This attempt's own id: only it can release the claim. */
  readonly attemptId: string;
}

export interface ClaimStepInput {
  /** The episode as this step read it: the claim names its incarnation and version. */
  readonly episode: Episode;
  readonly requestId?: string;
  readonly nowMs: number;
  /** When the claim lapses even if nobody releases it (the step's deadline plus grace). */
  readonly untilMs: number;
}

export type ClaimStepResult =
  | { readonly kind: "claimed"; readonly claim: StepClaim }
  /**
   * Another attempt holds the episode until `untilMs` (it did not commit yet); `sameRequest` when
   * that attempt carries this step's request id (a retry while the first attempt runs).
   */
  | { readonly kind: "held"; readonly sameRequest: boolean; readonly untilMs: number };

export interface LoadedEpisode {
  readonly episode: Episode;
  /** The stored record of `requestId`'s step when it is among the recent ones, else `null`. */
  readonly replay: StepRecord | null;
}

export interface HistoryPage {
  readonly steps: StepRecord[];
  /** The last step of this page when more may follow, else `null`. */
  readonly lastStep: number | null;
}

export interface EpisodeRepository {
  /**
   * Reads an episode strongly consistently: its settings and latest version (`null` if absent or
   * expired), and for a `requestId` the record of its step if that is one of the recent steps.
   */
  load(
    tenantId: string,
    id: string,
    opts: { readonly nowMs: number; readonly requestId?: string },
  ): Promise<LoadedEpisode | null>;
  /**
   * Creates an episode at version 0; with `replaceExisting` it replaces this tenant's episode of
   * that id. @returns the stored episode and the incarnation it replaced (if one was live or left).
   */
  create(
    spec: NewEpisode,
    opts: { readonly replaceExisting: boolean; readonly nowMs: number },
  ): Promise<{ episode: Episode; replaced: string | null }>;
  /** Commits version `before.version + 1` if nobody did (one conditional write). */
  commitStep(input: CommitStepInput): Promise<CommitStepResult>;
  /**
   * Takes the episode's step claim before the executor runs (one conditional write, no read). It is
   * granted when no attempt holds it, the holder's `untilMs` has passed, or the holder ran on an
   * older version or incarnation than `input.episode` (it committed or was superseded: a committed
   * step needs no release).
   */
  claimStep(input: ClaimStepInput): Promise<ClaimStepResult>;
  /** Gives back a claim whose step did not commit; a no-op when another attempt holds it by now. */
  releaseStep(episode: Episode, claim: StepClaim): Promise<void>;
  /** Keeps the metering record of an execution that did not commit (lost race, 413, error). */
  recordExecution(execution: UncommittedExecution): Promise<void>;
  /** One stored step of the episode's incarnation. */
  getStep(episode: Episode, step: number): Promise<StepRecord | null>;
  /** Steps after `afterStep`, oldest first: at most `limit`, and fewer past about `maxBytes` of records. */
  historyPage(
    episode: Episode,
    opts: { readonly afterStep: number; readonly limit: number; readonly maxBytes: number },
  ): Promise<HistoryPage>;
  /** A copy of `source` (state and history) as a new episode of `target`'s settings. */
  fork(source: Episode, target: NewEpisode, nowMs: number): Promise<Episode>;
  /** Deletes the episode (this incarnation). @returns false when it was already gone. */
  delete(episode: Episode): Promise<boolean>;
  /**
   * Where the executor reads the episode's state and writes a large new one (pre-signed URLs), or
   * `null` when this store keeps every state inline (no state bucket).
   */
  stateTransfer?(episode: Episode, opts: { readonly maxBytes: number }): Promise<StateTransfer | null>;
  /** Deletes a state object no version names (a step that did not commit); best effort. */
  discardStateObject?(key: string): Promise<void>;
}
