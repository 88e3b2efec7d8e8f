// The episode service: reset, step, state, history, fork, delete. Takes its store, executor and
// settings as parameters (no globals), so the same core runs in the Lambda, the local stack and
// tests. HTTP concerns (cookies, headers, status codes of success) stay in app.ts.
import { randomBytes } from "node:crypto";
import type { ApiConfig } from "../config.js";
import type { ExecuteResult, Executor } from "../executor/executor.js";
import type { Episode, EpisodeStore, Policy, StepRecord, TransactItem } from "../store/episode-store.js";
import { ConflictError, EpisodeNotFoundError, PayloadTooLargeError, ValidationError } from "./errors.js";
import { computeReward, openEnvRewardRules, type RewardRule } from "./rewards.js";

/** OpenEnv's observation, exactly its fields (clients reject unknown keys there). */
export interface Observation {
  stdout: string;
  stderr: string;
  exit_code: number;
}

/** Body of `/reset`, `/step` and fork responses: OpenEnv's fields, then ours at the top level. */
export interface StepResponse {
  observation: Observation;
  reward: number;
  done: boolean;
  metadata?: Record<string, unknown>;
  episode_id: string;
  step_count: number;
  info?: Record<string, unknown>;
  forked_from?: string;
}

export interface EpisodeState {
  episode_id: string;
  step_count: number;
  last_exit_code: number;
  policy: Policy;
  additional_imports: string[];
  step_timeout_s: number;
  ttl_s: number;
  seed?: number;
  forked_from?: string;
  created_at: string;
  updated_at: string;
  expires_at: string;
}

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

/** A write of the core that tenancy extends with its own transaction items (appended last). */
export type TransactionalWrite<T> = (extraItems: readonly TransactItem[]) => Promise<T>;

/** What {@link EpisodeTenancyHooks.createEpisode} knows of a reset or fork. */
export interface CreateEpisodeCtx {
  readonly tenantId: string;
  readonly episodeId: string;
  readonly stateBytes: number;
  readonly nowMs: number;
}
/** What {@link EpisodeTenancyHooks.deleteEpisode} knows of a delete. */
export interface DeleteEpisodeCtx {
  readonly tenantId: string;
  readonly episodeId: string;
}
/** What {@link EpisodeTenancyHooks.beforeStep} knows before the executor runs. */
export interface BeforeStepCtx {
  readonly tenantId: string;
  readonly nowMs: number;
}
/** What {@link EpisodeTenancyHooks.commitStep} knows of an executed step. */
export interface CommitStepCtx {
  readonly tenantId: string;
  readonly executorMs: number;
  readonly stateBytes: number;
  readonly nowMs: number;
}

/**
 * Hosted-mode hooks (issue 7, `functions/src/tenancy/`): each "around" hook gets the write to
 * perform, adds its items (usage counters, quota conditions) to that write's transaction and maps
 * a cancellation its items caused to the right error. Without hooks every write is plain.
 */
export interface EpisodeTenancyHooks {
  createEpisode<T>(ctx: CreateEpisodeCtx, write: TransactionalWrite<T>): Promise<T>;
  deleteEpisode<T>(ctx: DeleteEpisodeCtx, write: TransactionalWrite<T>): Promise<T>;
  /** Before the executor runs: may refuse a tenant out of quota (throws). */
  beforeStep(ctx: BeforeStepCtx): void;
  commitStep<T>(ctx: CommitStepCtx, write: TransactionalWrite<T>): Promise<T>;
  /** The per-step limit a reset may use (may throw a quota error). @default the request's or the deployment default */
  stepTimeoutForReset?(tenantId: string, requestedS: number | undefined, deploymentDefaultS: number): number;
}

const noTenancy: EpisodeTenancyHooks = {
  createEpisode: (_ctx, write) => write([]),
  deleteEpisode: (_ctx, write) => write([]),
  beforeStep: () => {},
  commitStep: (_ctx, write) => write([]),
};

export interface EpisodeServiceDeps {
  readonly store: EpisodeStore;
  readonly executor: Executor;
  readonly config: ApiConfig;
  /** @default OpenEnv's safety + quality rules */
  readonly rewardRules?: readonly RewardRule[];
  /** @default none: no metering, no quotas */
  readonly tenancy?: EpisodeTenancyHooks;
  /** @default Date.now */
  readonly now?: () => number;
}

const EMPTY_OBSERVATION: Observation = { stdout: "", stderr: "", exit_code: 0 };

export function newEpisodeId(): string {
  return `ep_${randomBytes(12).toString("hex")}`;
}

/**
 * Whether the code failed to parse. The runtime says so (`error_code: "syntax_error"`, `null`
 * otherwise); for an answer without the field, a failed step whose traceback ends in a compile
 * error and has no frame of running code is a parse error.
 */
function failedToParse(result: ExecuteResult): boolean {
  if ("error_code" in result) return result.error_code === "syntax_error";
  if (result.exit_code === 0) return false;
  const lines = result.stderr.trimEnd().split("\n");
  const last = lines[lines.length - 1] ?? "";
  if (!/^(SyntaxError|IndentationError|TabError)\b/.test(last)) return false;
  return !result.stderr.includes(", in <module>");
}

export class EpisodeService {
  private readonly now: () => number;
  private readonly rules: readonly RewardRule[];
  private readonly inflight = new Map<string, number>();
  private readonly tenancy: EpisodeTenancyHooks;

  constructor(private readonly deps: EpisodeServiceDeps) {
    this.now = deps.now ?? Date.now;
    this.rules = deps.rewardRules ?? openEnvRewardRules;
    this.tenancy = deps.tenancy ?? noTenancy;
  }

  private async load(tenantId: string, id: string): Promise<Episode> {
    const ep = await this.deps.store.get(tenantId, id, this.now());
    // Another tenant's episode answers exactly like a missing one.
    if (!ep || ep.tenantId !== tenantId) throw new EpisodeNotFoundError(id);
    return ep;
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
    // A chosen id replaces this tenant's episode of that id; even an expired or absent one may
    // have leftovers under it, which are cleaned up. Ids are scoped by tenant (the store's key), so
    // another tenant's episode of the same id is neither touched nor revealed.
    const replaceExisting = opts.episode_id !== undefined;
    const episode: Episode = {
      id: opts.episode_id ?? newEpisodeId(),
      tenantId,
      incarnation: randomBytes(8).toString("hex"),
      version: 0,
      policy: opts.policy ?? "openenv",
      additionalImports: [...new Set(opts.additional_imports ?? [])],
      stepTimeoutS,
      ttlS,
      lastExitCode: 0,
      ...(opts.seed !== undefined ? { seed: opts.seed } : {}),
      createdAtMs: nowMs,
      updatedAtMs: nowMs,
      expiresAt: Math.floor(nowMs / 1000) + ttlS,
      snapshot: null,
    };
    await this.tenancy.createEpisode(
      { tenantId, episodeId: episode.id, stateBytes: 0, nowMs },
      (extraItems) => this.deps.store.create(episode, { replaceExisting, extraItems }),
    );
    return {
      observation: { ...EMPTY_OBSERVATION },
      reward: 0.0,
      done: false,
      episode_id: episode.id,
      step_count: 0,
    };
  }

  /**
   * Runs one code cell: 1 read (skipped when this process holds the episode's current copy),
   * 1 executor call, 1 conditional transaction.
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
    // Steps of this process in flight per episode: a step that starts while another one on the
    // same episode runs here is concurrent, so it reads the store and may get a 409.
    const inflight = this.inflight.get(episodeId) ?? 0;
    this.inflight.set(episodeId, inflight + 1);
    try {
      return await this.stepOnce(tenantId, episodeId, opts, inflight === 0);
    } finally {
      const n = (this.inflight.get(episodeId) ?? 1) - 1;
      if (n <= 0) this.inflight.delete(episodeId);
      else this.inflight.set(episodeId, n);
    }
  }

  private async stepOnce(
    tenantId: string,
    episodeId: string,
    opts: StepOpts,
    mayUseCache: boolean,
  ): Promise<{ body: StepResponse; replayed: boolean }> {
    const { store, executor } = this.deps;
    const startMs = this.now();
    let episode: Episode | null;
    let fromCache = false;
    if (opts.request_id !== undefined) {
      const got = await store.getWithRequest(tenantId, episodeId, opts.request_id, startMs);
      episode = got.episode;
      if (episode && episode.tenantId === tenantId && got.replayStep !== null) {
        return { body: await this.replay(episode, got.replayStep), replayed: true };
      }
    } else {
      episode = mayUseCache ? store.cached(tenantId, episodeId, startMs) : null;
      fromCache = episode !== null;
      episode ??= await store.get(tenantId, episodeId, startMs);
    }
    if (!episode || episode.tenantId !== tenantId) throw new EpisodeNotFoundError(episodeId);

    this.tenancy.beforeStep({ tenantId, nowMs: startMs });
    const timeoutS = Math.min(opts.timeout_s ?? episode.stepTimeoutS, episode.stepTimeoutS);
    const invokeStart = performance.now();
    const result = await executor.execute({
      episodeId: episode.id,
      stateVersion: episode.version,
      snapshot: episode.snapshot,
      code: opts.code,
      policy: { mode: episode.policy, additionalImports: episode.additionalImports },
      timeoutMs: Math.max(1, Math.round(timeoutS * 1000)),
    });
    // Billed executor time: what the executor measured (falls back to the invoke's wall time).
    const executorMs = result.duration_ms ?? performance.now() - invokeStart;
    const { reward, metadata } = computeReward(
      { code: opts.code, parses: !failedToParse(result) },
      this.rules,
    );
    const nowMs = this.now();
    const observation: Observation = {
      stdout: result.stdout,
      stderr: result.stderr,
      exit_code: result.exit_code,
    };
    const info: Record<string, unknown> = {
      duration_ms: result.duration_ms ?? 0,
      timed_out: result.timed_out ?? false,
      stdout_truncated: result.stdout_truncated ?? false,
      stderr_truncated: result.stderr_truncated ?? false,
      dropped_variables: result.dropped ?? [],
      ...(result.out_of_memory ? { out_of_memory: true } : {}),
      ...(result.crashed ? { crashed: true } : {}),
      ...(result.error_code ? { error_code: result.error_code } : {}),
    };
    const fullMetadata = { ...metadata, last_code: opts.code };
    const record: StepRecord = {
      step: episode.version + 1,
      code: opts.code,
      observation,
      reward,
      done: false,
      metadata: fullMetadata,
      info,
      ...(opts.request_id !== undefined ? { request_id: opts.request_id } : {}),
      started_at: new Date(startMs).toISOString(),
      duration_ms: nowMs - startMs,
    };
    const stateBytes = Buffer.byteLength(result.snapshot, "base64");
    const before = episode;
    let committed: Awaited<ReturnType<EpisodeStore["commitStep"]>>;
    try {
      committed = await this.tenancy.commitStep({ tenantId, executorMs, stateBytes, nowMs }, (extraItems) =>
        store.commitStep({
          before,
          snapshot: result.snapshot,
          lastExitCode: result.exit_code,
          nowMs,
          record,
          ...(opts.request_id !== undefined ? { requestId: opts.request_id } : {}),
          extraItems,
        }),
      );
    } catch (err) {
      if (!(err instanceof ConflictError) || !fromCache) throw err;
      // Our copy was older than the store's. If the newer version was committed before this step
      // began (by another API instance), the copy was merely stale: run the step again on the
      // current state (executor runs have no effects beyond the state they return). A commit
      // during this step is a real concurrent step: 409.
      const fresh = await store.get(tenantId, episodeId, this.now());
      if (!fresh || fresh.tenantId !== tenantId) throw new EpisodeNotFoundError(episodeId);
      if (fresh.updatedAtMs >= startMs) throw err;
      return this.stepOnce(tenantId, episodeId, opts, false);
    }
    if (committed.kind === "duplicate") {
      // A concurrent twin with the same request_id committed first: answer with its response.
      const again = await store.getWithRequest(tenantId, episodeId, opts.request_id as string, this.now());
      if (!again.episode || again.replayStep === null) throw new ConflictError(episodeId);
      return { body: await this.replay(again.episode, again.replayStep), replayed: true };
    }
    return {
      body: {
        observation,
        reward,
        done: false,
        metadata: fullMetadata,
        episode_id: episode.id,
        step_count: committed.episode.version,
        info,
      },
      replayed: false,
    };
  }

  private async replay(episode: Episode, step: number): Promise<StepResponse> {
    const rec = await this.deps.store.getStep(episode, step);
    if (!rec) throw new ConflictError(episode.id);
    return {
      observation: rec.observation,
      reward: rec.reward,
      done: rec.done,
      metadata: rec.metadata,
      episode_id: episode.id,
      step_count: rec.step,
      info: rec.info,
    };
  }

  async state(tenantId: string, id: string): Promise<EpisodeState> {
    return toState(await this.load(tenantId, id));
  }

  async history(tenantId: string, id: string): Promise<{ episode_id: string; steps: StepRecord[] }> {
    const ep = await this.load(tenantId, id);
    return { episode_id: ep.id, steps: await this.deps.store.history(ep) };
  }

  /** A new episode with a copy of the source's Python state, settings and history. */
  async fork(tenantId: string, id: string): Promise<StepResponse> {
    const source = await this.load(tenantId, id);
    const nowMs = this.now();
    const target: Episode = {
      ...source,
      id: newEpisodeId(),
      incarnation: randomBytes(8).toString("hex"),
      forkedFrom: source.id,
      createdAtMs: nowMs,
      updatedAtMs: nowMs,
      expiresAt: Math.floor(nowMs / 1000) + source.ttlS,
    };
    const stateBytes = source.snapshot ? Buffer.byteLength(source.snapshot, "base64") : 0;
    await this.tenancy.createEpisode({ tenantId, episodeId: target.id, stateBytes, nowMs }, (extraItems) =>
      this.deps.store.fork(source, target, extraItems),
    );
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
    const deleted = await this.tenancy.deleteEpisode({ tenantId, episodeId: id }, (extraItems) =>
      this.deps.store.delete(ep, extraItems),
    );
    if (!deleted) throw new EpisodeNotFoundError(id);
  }
}

function toState(ep: Episode): EpisodeState {
  return {
    episode_id: ep.id,
    step_count: ep.version,
    last_exit_code: ep.lastExitCode,
    policy: ep.policy,
    additional_imports: [...ep.additionalImports],
    step_timeout_s: ep.stepTimeoutS,
    ttl_s: ep.ttlS,
    ...(ep.seed !== undefined ? { seed: ep.seed } : {}),
    ...(ep.forkedFrom !== undefined ? { forked_from: ep.forkedFrom } : {}),
    created_at: new Date(ep.createdAtMs).toISOString(),
    updated_at: new Date(ep.updatedAtMs).toISOString(),
    expires_at: new Date(ep.expiresAt * 1000).toISOString(),
  };
}
