// The episode service: reset, step, state, history, fork, delete. Takes its repository, executor
// and settings as parameters (no globals), so the same core runs in the Lambda, the local stack and
// tests. HTTP concerns (cookies, headers, status codes of success) stay in app.ts.
//
// A step, exactly once on any number of API instances: one strongly consistent read of the stored
// episode (its latest version), one conditional write of the episode's step claim (a second step,
// or a retry while its first attempt runs, is a 409 before the executor), one executor run, one
// conditional write of the next version. That write fails if any instance committed that version
// meanwhile (409, the execution is metered), so no step's code ever runs twice and no retry re-runs it.
import type { z } from "zod";
import type { ApiConfig } from "../config.js";
import type { ExecuteRequest, Executor } from "../executor/executor.js";
import type { EpisodeSummarySchema, EpisodesListSchema } from "../http/schemas.js";
import type {
  Episode,
  EpisodeRepository,
  Policy,
  StateObjectRef,
  StepClaim,
  StepRecord,
  UncommittedReason,
} from "./episode-repository.js";
import { type EpisodeState, toState } from "./episode-state.js";
import {
  ApiError,
  ConflictError,
  EpisodeNotFoundError,
  ExecutorCrashedError,
  ExecutorTimeoutError,
  PayloadTooLargeError,
  StateTooLargeError,
  StepInProgressError,
  ValidationError,
} from "./errors.js";
import { EpisodeFiles } from "./files.js";
import {
  allSteps,
  HISTORY_DEFAULT_LIMIT,
  HISTORY_MAX_LIMIT,
  HISTORY_PAGE_BYTES,
  makeCursor,
  parseCursor,
} from "./history.js";
import { openEnvRewardRules, type RewardRule } from "./rewards.js";
import { stateAfter, stateBytesOf, stateInput } from "./state-location.js";
import { claimEpisode, releaseClaim } from "./step-claim.js";
import {
  crashedStepResult,
  type HistoryPageBody,
  responseOf,
  type StepResponse,
  type StepResult,
  stepOutcome,
} from "./step-result.js";
import { type EpisodeTenancyHooks, noTenancy } from "./tenancy-hooks.js";

export type { Episode, Policy, StepRecord } from "./episode-repository.js";
export type { EpisodeState } from "./episode-state.js";
export { HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT } from "./history.js";
export type { HistoryPageBody, Observation, StepResponse } from "./step-result.js";
export type { BeforeStepCtx, EpisodeSlotCtx, EpisodeTenancyHooks, StateCtx } from "./tenancy-hooks.js";

/** Options of {@link EpisodeService.reset}; names as on the wire. */
export interface ResetOpts {
  readonly seed?: number;
  readonly episode_id?: string;
  readonly policy?: Policy;
  readonly additional_imports?: readonly string[];
  readonly step_timeout_s?: number;
  readonly ttl_s?: number;
}

/** Options of {@link EpisodeService.step}. */
export interface StepOpts {
  readonly code: string;
  /** Seconds; capped at the episode's limit. */
  readonly timeout_s?: number;
  readonly request_id?: string;
}

/** The executor's client may also drop an episode's warm workers (reset, delete). */
type DiscardingExecutor = Executor & {
  discard?(req: { tenantId: string; episodeId: string; incarnation?: string }): Promise<unknown>;
};

export interface EpisodeServiceDeps {
  readonly repository: EpisodeRepository;
  readonly executor: Executor;
  readonly config: ApiConfig;
  /** @default OpenEnv's safety + quality rules */
  readonly rewardRules?: readonly RewardRule[];
  /** @default none: no quotas */
  readonly tenancy?: EpisodeTenancyHooks;
  /** @default Date.now */
  readonly now?: () => number;
  /** Where failures of best-effort work (discard, slot release, metering records) are logged. @default stderr */
  readonly logError?: (message: string, err: unknown) => void;
  /** Pause between re-reads while a twin request runs elsewhere. @default setTimeout */
  readonly sleep?: (ms: number) => Promise<void>;
}

const EMPTY_OBSERVATION = { stdout: "", stderr: "", exit_code: 0 };

/** A step running in this process: its request id, so a duplicate waits for it instead of a 409. */
interface RunningStep {
  readonly requestId: string | undefined;
  readonly done: Promise<{ body: StepResponse; replayed: boolean }>;
}

const defaultLogError = (message: string, err: unknown) =>
  console.error(JSON.stringify({ level: "ERROR", message, error: String(err) }));

export class EpisodeService {
  private readonly now: () => number;
  private readonly rules: readonly RewardRule[];
  private readonly tenancy: EpisodeTenancyHooks;
  private readonly running = new Map<string, RunningStep>();
  private readonly logError: (message: string, err: unknown) => void;
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(private readonly deps: EpisodeServiceDeps) {
    this.now = deps.now ?? Date.now;
    this.rules = deps.rewardRules ?? openEnvRewardRules;
    this.tenancy = deps.tenancy ?? noTenancy;
    this.logError = deps.logError ?? defaultLogError;
    this.sleep = deps.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
  }

  /** The episode's files (list, read, upload): core/files.ts. */
  files(): EpisodeFiles {
    this.episodeFiles ??= new EpisodeFiles({
      ...this.deps,
      tenancy: this.tenancy,
      now: this.now,
      logError: this.logError,
    });
    return this.episodeFiles;
  }

  private episodeFiles: EpisodeFiles | undefined;

  private async load(tenantId: string, id: string): Promise<Episode> {
    const got = await this.deps.repository.load(tenantId, id, { nowMs: this.now() });
    // Ids are scoped by tenant in the repository: another tenant's episode is simply not there.
    if (!got || got.episode.tenantId !== tenantId) throw new EpisodeNotFoundError(id);
    return got.episode;
  }

  async reset(tenantId: string, opts: ResetOpts): Promise<StepResponse> {
    const { config } = this.deps;
    if ((opts.step_timeout_s ?? 0) > config.maxStepTimeoutS) {
      throw new ValidationError([
        {
          loc: ["body", "step_timeout_s"],
          msg: `step_timeout_s must be at most ${config.maxStepTimeoutS}`,
          type: "less_than_equal",
        },
      ]);
    }
    const stepTimeoutS = this.tenancy.stepTimeoutForReset
      ? this.tenancy.stepTimeoutForReset(tenantId, opts.step_timeout_s, config.defaultStepTimeoutS)
      : (opts.step_timeout_s ?? config.defaultStepTimeoutS);
    const ttlS = opts.ttl_s ?? config.defaultTtlS;
    if (ttlS > config.maxTtlS) {
      throw new ValidationError([
        { loc: ["body", "ttl_s"], msg: `ttl_s must be at most ${config.maxTtlS}`, type: "less_than_equal" },
      ]);
    }
    const nowMs = this.now();
    const id = opts.episode_id ?? newEpisodeId();
    await this.tenancy.reserveEpisodeSlot({ tenantId, episodeId: id, nowMs });
    // A chosen id replaces this tenant's episode of that id (another tenant's is neither touched
    // nor revealed: ids are scoped by tenant).
    const { episode, replaced } = await this.deps.repository.create(
      {
        id,
        tenantId,
        policy: opts.policy ?? "openenv",
        additionalImports: [...new Set(opts.additional_imports ?? [])],
        stepTimeoutS,
        ttlS,
        ...(opts.seed !== undefined ? { seed: opts.seed } : {}),
        createdAtMs: nowMs,
        snapshot: null,
      },
      { replaceExisting: opts.episode_id !== undefined, nowMs },
    );
    if (replaced !== null) this.discard(tenantId, episode.id);
    return {
      observation: { ...EMPTY_OBSERVATION },
      reward: 0.0,
      done: false,
      episode_id: episode.id,
      step_count: 0,
    };
  }

  /**
   * Runs one code cell: one strongly consistent read, the step claim, one executor call, one
   * conditional write. One step at a time per episode: a second one while a step runs is answered
   * 409 `step_in_progress` before it reaches the executor: at once in this process (where a repeat
   * of the running `request_id` waits for it instead), and on any instance by the claim (a repeat of
   * the running `request_id` is told so: `same_request`).
   * @returns the response and whether it was replayed from an earlier identical request.
   */
  async step(
    tenantId: string,
    episodeId: string,
    opts: StepOpts,
  ): Promise<{ body: StepResponse; replayed: boolean }> {
    const { config } = this.deps;
    const codeBytes = Buffer.byteLength(opts.code, "utf8");
    if (codeBytes > config.maxCodeBytes) {
      throw new PayloadTooLargeError(
        `action.code is ${codeBytes} bytes; the limit is ${config.maxCodeBytes}.`,
        {
          limit_bytes: config.maxCodeBytes,
        },
      );
    }
    const key = `${tenantId}\u0000${episodeId}`;
    const running = this.running.get(key);
    if (running) {
      if (opts.request_id === undefined || running.requestId !== opts.request_id) {
        throw new StepInProgressError(episodeId);
      }
      const first = await running.done;
      return { body: first.body, replayed: true };
    }
    const done = (async () => {
      const end = await this.tenancy.beginStep({ tenantId, nowMs: this.now() });
      try {
        return await this.runStep(tenantId, episodeId, opts);
      } finally {
        end();
      }
    })();
    this.running.set(key, { requestId: opts.request_id, done });
    try {
      return await done;
    } finally {
      this.running.delete(key);
    }
  }

  private async runStep(
    tenantId: string,
    episodeId: string,
    opts: StepOpts,
  ): Promise<{ body: StepResponse; replayed: boolean }> {
    const { repository } = this.deps;
    const startMs = this.now();
    const loaded = await repository.load(tenantId, episodeId, {
      nowMs: startMs,
      ...(opts.request_id !== undefined ? { requestId: opts.request_id } : {}),
    });
    if (!loaded || loaded.episode.tenantId !== tenantId) throw new EpisodeNotFoundError(episodeId);
    const episode = loaded.episode;
    if (loaded.replay) return { body: responseOf(episode.id, loaded.replay), replayed: true };

    const timeoutS = Math.min(opts.timeout_s ?? episode.stepTimeoutS, episode.stepTimeoutS);
    // A state bucket: the executor reads a state in S3 and writes a large new one itself.
    const input = await stateInput(repository, episode, this.deps.config.maxStateBytes);
    const transfer = input.state ?? null;
    const request: ExecuteRequest & { tenantId: string; incarnation: string } = {
      tenantId,
      incarnation: episode.incarnation,
      episodeId: episode.id,
      stateVersion: episode.version,
      ...input,
      code: opts.code,
      policy: { mode: episode.policy, additionalImports: episode.additionalImports },
      timeoutMs: Math.max(1, Math.round(timeoutS * 1000)),
      ...(episode.seed !== undefined ? { seed: episode.seed } : {}),
    };
    // One step at a time per episode on every API instance (the in-process map above cannot see
    // another instance): a live claim of another attempt is a 409 before the executor.
    const claim = await this.claimStep(episode, opts.request_id, timeoutS);
    const invokeStart = performance.now();
    let result: StepResult;
    let newSnapshot: string | null;
    let newObject: StateObjectRef | undefined;
    try {
      const answer = await this.deps.executor.execute(request);
      result = answer;
      ({ snapshot: newSnapshot, stateObject: newObject } = stateAfter(episode, answer, transfer, this.now()));
    } catch (err) {
      if (!(err instanceof ExecutorCrashedError)) {
        // No answer in time: the code ran (for how long is unknown), so its wall time is billed.
        if (err instanceof ExecutorTimeoutError) {
          await this.meter(tenantId, episodeId, performance.now() - invokeStart, "executor_timeout");
          // The invocation may still be running: its claim lapses at its deadline instead of now,
          // so a retry of this request cannot run beside it.
        } else await this.releaseStep(episode, claim);
        throw err;
      }
      // The executor's process ended mid-step (user code can end it in Lambda mode): a crashed
      // step like any other, with the state as before and its wall time billed.
      result = crashedStepResult(performance.now() - invokeStart);
      newSnapshot = episode.snapshot;
      newObject = episode.stateObject;
    }
    // The object this step wrote, if no version may end up naming it (413, lost race): deleted.
    const written = newObject && newObject.key === transfer?.put_ref ? newObject.key : null;
    if (result.error_code === "busy") {
      await this.releaseStep(episode, claim);
      // A step of this episode is running in the executor (sent by another API instance): nothing
      // ran. A twin of this request may be that step: wait for it and answer with its response.
      if (opts.request_id !== undefined) return this.awaitTwin(episode, opts.request_id, timeoutS);
      throw new StepInProgressError(episodeId);
    }
    // Billed executor time: what the executor measured (falls back to the invoke's wall time).
    const executorMs =
      typeof result.duration_ms === "number" ? result.duration_ms : performance.now() - invokeStart;
    try {
      if (result.error_code === "state_too_large") {
        const bytes = typeof result.snapshot_bytes === "number" ? result.snapshot_bytes : 0;
        throw new StateTooLargeError(bytes, this.deps.config.maxStateBytes);
      }
      const stateBytes = stateBytesOf({ snapshot: newSnapshot, stateObject: newObject });
      this.tenancy.checkState({ tenantId, stateBytes });
      if (stateBytes > this.deps.config.maxStateBytes) {
        throw new StateTooLargeError(stateBytes, this.deps.config.maxStateBytes);
      }
      const nowMs = this.now();
      const { record } = stepOutcome({
        result,
        code: opts.code,
        rules: this.rules,
        step: episode.version + 1,
        ...(opts.request_id !== undefined ? { requestId: opts.request_id } : {}),
        startMs,
        nowMs,
      });
      const committed = await repository.commitStep({
        before: episode,
        snapshot: newSnapshot,
        ...(newObject ? { stateObject: newObject } : {}),
        lastExitCode: record.observation.exit_code,
        nowMs,
        record,
        ...(opts.request_id !== undefined ? { requestId: opts.request_id } : {}),
        usage: { executorMs, stateBytes },
      });
      if (committed.kind === "committed") return { body: responseOf(episode.id, record), replayed: false };
      if (committed.kind === "duplicate") {
        await this.meter(tenantId, episodeId, executorMs, "duplicate");
        if (written !== null) this.discardObject(written);
        return { body: responseOf(episode.id, committed.record), replayed: true };
      }
      throw new ConflictError(episodeId);
    } catch (err) {
      // The code ran but did not commit: its execution is still the tenant's.
      const reason: UncommittedReason =
        err instanceof ConflictError
          ? "conflict"
          : err instanceof ApiError && err.status === 413
            ? "state_too_large"
            : "commit_failed";
      await this.meter(tenantId, episodeId, executorMs, reason);
      if (written !== null) this.discardObject(written);
      // After a conflict another step committed over this one's version: its claim is void already.
      if (reason !== "conflict") await this.releaseStep(episode, claim);
      throw err;
    }
  }

  /** The episode's step claim until the step's limit plus the executor's grace (core/step-claim.ts). */
  private claimStep(episode: Episode, requestId: string | undefined, timeoutS: number): Promise<StepClaim> {
    return claimEpisode(this.deps.repository, episode, {
      nowMs: this.now(),
      limitS: timeoutS,
      graceS: this.deps.config.executorGraceS,
      ...(requestId !== undefined ? { requestId } : {}),
    });
  }

  /** Gives back the claim of a step that did not commit (best effort: else it lapses). */
  private releaseStep(episode: Episode, claim: StepClaim): Promise<void> {
    return releaseClaim(this.deps.repository, episode, claim, this.logError);
  }

  /** Deletes a state object no version names (fire and forget; else the lifecycle rule does). */
  private discardObject(key: string): void {
    this.deps.repository
      .discardStateObject?.(key)
      .catch((err: unknown) => this.logError("could not delete an uncommitted state object", err));
  }

  /**
   * Waits (re-reading, with backoff) until a concurrent twin with the same request id has
   * committed, then answers with its response. If another step commits instead, or nothing
   * commits within the step's time, this step did not run: 409.
   */
  private async awaitTwin(
    before: Episode,
    requestId: string,
    timeoutS: number,
  ): Promise<{ body: StepResponse; replayed: boolean }> {
    const deadline = this.now() + timeoutS * 1000 + 5_000;
    for (let pause = 25; this.now() < deadline; pause = Math.min(pause * 2, 1_000)) {
      await this.sleep(pause);
      const got = await this.deps.repository.load(before.tenantId, before.id, {
        nowMs: this.now(),
        requestId,
      });
      if (!got) throw new EpisodeNotFoundError(before.id);
      if (got.replay) return { body: responseOf(before.id, got.replay), replayed: true };
      if (got.episode.version !== before.version || got.episode.incarnation !== before.incarnation) break;
    }
    throw new StepInProgressError(before.id);
  }

  /** Keeps the usage of an execution that did not commit (best effort: logged when it fails). */
  private async meter(tenantId: string, episodeId: string, executorMs: number, reason: UncommittedReason) {
    try {
      await this.deps.repository.recordExecution({
        tenantId,
        episodeId,
        nowMs: this.now(),
        executorMs,
        reason,
      });
    } catch (err) {
      this.logError("could not record an uncommitted execution", err);
    }
  }

  async state(tenantId: string, id: string): Promise<EpisodeState> {
    return toState(await this.load(tenantId, id));
  }

  /**
   * One page of the trajectory, oldest first: at most `limit` steps after `cursor` (from the
   * previous page's `next_cursor`), fewer past a few MB of records; `next_cursor` is `null` at
   * the end.
   */
  async history(
    tenantId: string,
    id: string,
    opts: { readonly limit?: number; readonly cursor?: string } = {},
  ): Promise<HistoryPageBody> {
    const ep = await this.load(tenantId, id);
    const limit = Math.min(Math.max(1, Math.trunc(opts.limit ?? HISTORY_DEFAULT_LIMIT)), HISTORY_MAX_LIMIT);
    const afterStep = opts.cursor === undefined ? 0 : parseCursor(opts.cursor, ep);
    const page = await this.deps.repository.historyPage(ep, {
      afterStep,
      limit,
      maxBytes: HISTORY_PAGE_BYTES,
    });
    return {
      episode_id: ep.id,
      steps: page.steps,
      next_cursor: page.lastStep === null ? null : makeCursor(ep, page.lastStep),
    };
  }

  /**
   * The trajectory from the start (or after `cursor`) page by page (one page in memory at a time),
   * for the JSONL export; `cursorAfter(step)` names where a later part of the export resumes.
   */
  async historyStream(
    tenantId: string,
    id: string,
    opts: { readonly cursor?: string } = {},
  ): Promise<{
    episode_id: string;
    steps: AsyncIterable<StepRecord>;
    cursorAfter: (step: number) => string;
  }> {
    const ep = await this.load(tenantId, id);
    const afterStep = opts.cursor === undefined ? 0 : parseCursor(opts.cursor, ep);
    return {
      episode_id: ep.id,
      steps: allSteps(this.deps.repository, ep, afterStep),
      cursorAfter: (step) => makeCursor(ep, step),
    };
  }

  /** A new episode with a copy of the source's Python state, settings and history. */
  async fork(tenantId: string, id: string): Promise<StepResponse> {
    const source = await this.load(tenantId, id);
    const nowMs = this.now();
    const targetId = newEpisodeId();
    await this.tenancy.reserveEpisodeSlot({ tenantId, episodeId: targetId, nowMs });
    let target: Episode;
    try {
      target = await this.deps.repository.fork(
        source,
        {
          id: targetId,
          tenantId,
          policy: source.policy,
          additionalImports: source.additionalImports,
          stepTimeoutS: source.stepTimeoutS,
          ttlS: source.ttlS,
          ...(source.seed !== undefined ? { seed: source.seed } : {}),
          forkedFrom: source.id,
          createdAtMs: nowMs,
          snapshot: source.snapshot,
        },
        nowMs,
      );
    } catch (err) {
      // No fork was created (the repository removed what it copied): its slot goes back.
      try {
        await this.tenancy.releaseEpisodeSlot({ tenantId, episodeId: targetId, nowMs: this.now() });
      } catch (releaseErr) {
        this.logError("could not release an active-episode slot", releaseErr);
      }
      throw err;
    }
    return {
      observation: { ...EMPTY_OBSERVATION },
      reward: 0.0,
      done: false,
      episode_id: target.id,
      step_count: target.version,
      forked_from: source.id,
    };
  }

  async delete(tenantId: string, id: string): Promise<void> {
    const ep = await this.load(tenantId, id);
    if (!(await this.deps.repository.delete(ep))) throw new EpisodeNotFoundError(id);
    this.discard(tenantId, id);
    try {
      await this.tenancy.releaseEpisodeSlot({ tenantId, episodeId: id, nowMs: this.now() });
    } catch (err) {
      // The active set only over-counts until its next prune.
      this.logError("could not release an active-episode slot", err);
    }
  }

  /**
   * One page of the tenant's live episodes, in id order: at most `limit` after `cursor` (the
   * previous page's `next_cursor`, `null` at the end). Ids come from the tenancy's active set, which
   * may still list expired or deleted episodes: those are read and skipped (a page can be short).
   */
  async list(tenantId: string, page: { limit: number; cursor?: string }): Promise<EpisodeList> {
    const listed = (await this.tenancy.listEpisodeIds?.(tenantId)) ?? [];
    const ids = [...new Set(listed)].sort().filter((id) => page.cursor === undefined || id > page.cursor);
    const slice = ids.slice(0, page.limit);
    const found = await Promise.all(
      slice.map(async (id) => {
        try {
          return await this.load(tenantId, id);
        } catch (err) {
          if (err instanceof EpisodeNotFoundError) return undefined;
          throw err;
        }
      }),
    );
    const episodes: EpisodeSummary[] = [];
    for (const ep of found) {
      if (!ep) continue;
      const state = toState(ep);
      episodes.push({
        episode_id: state.episode_id,
        step_count: state.step_count,
        created_at: state.created_at,
        updated_at: state.updated_at,
        ...(state.forked_from !== undefined ? { forked_from: state.forked_from } : {}),
      });
    }
    const more = ids.length > slice.length;
    return { episodes, next_cursor: more ? (slice.at(-1) ?? null) : null };
  }

  /** Drops the episode's warm workers in the executor (fire and forget). */
  private discard(tenantId: string, episodeId: string): void {
    const executor = this.deps.executor as DiscardingExecutor;
    if (typeof executor.discard !== "function") return;
    executor.discard({ tenantId, episodeId }).catch((err: unknown) => this.logError("discard failed", err));
  }
}

/** One row of `GET /episodes` (the wire schema's type). */
export type EpisodeSummary = z.output<typeof EpisodeSummarySchema>;
/** Body of `GET /episodes` (the wire schema's type). */
export type EpisodeList = z.output<typeof EpisodesListSchema>;

export function newEpisodeId(): string {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return `ep_${Buffer.from(bytes).toString("hex")}`;
}
