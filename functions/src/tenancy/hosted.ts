// Hosted mode in one object: what the API needs from the tenancy layer, behind a small surface so
// the app and the core change in only a few places (see README.md here for where each hook goes).

import { AsyncLocalStorage } from "node:async_hooks";
import { API_ENV } from "../config.js";
import type { BeforeStepCtx, EpisodeSlotCtx, EpisodeTenancyHooks, StateCtx } from "../core/episodes.js";
import { ActiveEpisodes } from "./active-episodes.js";
import { Authenticator, type HeaderSource, LOCAL_TENANT_ID, type TenantContext } from "./auth.js";
import { ApiKeyStore } from "./keys.js";
import {
  checkStateSize,
  checkStepTimeout,
  localQuotasFromEnv,
  MAX_ACTIVE_EPISODES_QUOTA,
  QUOTA_KEYS,
  type QuotaLimits,
  quotaDefaultsFromEnv,
} from "./quotas.js";
import type { TenancyRepositories, UsageRepository } from "./repositories.js";
import { ConcurrentSteps, DailyStepQuota } from "./step-limits.js";
import { queryUsage, type UsageReport } from "./usage.js";

/** Whether two sets of limits are the same, limit by limit. */
function sameQuotas(a: QuotaLimits, b: QuotaLimits): boolean {
  return a === b || QUOTA_KEYS.every((key) => a[key] === b[key]);
}

/** Options of {@link HostedTenancy}. */
export interface HostedTenancyOpts {
  /**
   * Where keys, active-episode sets and usage are kept (on DynamoDB:
   * `dynamoDbTenancyRepositories` in store/dynamodb-tenancy.ts).
   */
  readonly repositories: TenancyRepositories;
  /** Whether requests must carry an API key (`CODING_ENV_AUTH`). */
  readonly authRequired: boolean;
  /** The executor's configured memory, for GB-seconds (`CODING_ENV_EXECUTOR_MEMORY_MB`). */
  readonly executorMemoryMb: number;
  /** Quotas of key holders without overrides. @default quotaDefaultsFromEnv(env) */
  readonly defaultQuotas?: QuotaLimits;
  /** Quotas of the `local` tenant (auth off). @default localQuotasFromEnv(env): unlimited unless set */
  readonly localQuotas?: QuotaLimits;
  /** How long a key lookup is cached (`CODING_ENV_AUTH_CACHE_TTL_MS`). @default 10_000 */
  readonly authCacheTtlMs?: number;
  /** Environment to read the defaults from. @default process.env */
  readonly env?: Record<string, string | undefined>;
  /**
   * Whether the daily step quota is enforced (usage itself is always kept with each step's items).
   * Only the local stack may turn it off (`CODING_ENV_METERING=off`, auth off).
   * @default true (`CODING_ENV_METERING`, "on")
   */
  readonly metering?: boolean;
  /** Clock in ms. @default Date.now */
  readonly now?: () => number;
}

// The hooks' shape is the core's (`EpisodeTenancyHooks` in core/episodes.ts): HostedTenancy is its
// hosted-mode implementation.
export type { EpisodeTenancyHooks } from "../core/episodes.js";

/**
 * Keys, the request's tenant, metering and quotas for the API.
 *
 * The request's `TenantContext` (tenant and the quotas of the key it used) is kept in an
 * `AsyncLocalStorage` scope opened by the app's tenant middleware (`runAs`), so the core's hooks see
 * the calling key's quotas without every core method taking a context parameter.
 *
 * @example
 * const repositories = dynamoDbTenancyRepositories({ client, tableName });
 * const tenancy = new HostedTenancy({ repositories, authRequired: true, executorMemoryMb: 1024 });
 * app.use("*", async (c, next) => tenancy.runAs(await tenancy.authenticate((n) => c.req.header(n)), next));
 */
export class HostedTenancy implements EpisodeTenancyHooks {
  readonly authRequired: boolean;
  readonly keys: ApiKeyStore;
  readonly authenticator: Authenticator;
  readonly active: ActiveEpisodes;
  readonly defaultQuotas: QuotaLimits;
  readonly localQuotas: QuotaLimits;
  private readonly usageRepository: UsageRepository;
  private readonly now: () => number;
  /** Whether the daily step quota is enforced (see `HostedTenancyOpts.metering`). */
  readonly metering: boolean;
  private readonly dailySteps: DailyStepQuota;
  private readonly concurrentSteps = new ConcurrentSteps();
  private readonly scope = new AsyncLocalStorage<TenantContext>();

  constructor(opts: HostedTenancyOpts) {
    if (!Number.isInteger(opts.executorMemoryMb) || opts.executorMemoryMb <= 0) {
      throw new Error("HostedTenancy: executorMemoryMb must be a positive integer.");
    }
    const env = opts.env ?? process.env;
    this.usageRepository = opts.repositories.usage;
    this.authRequired = opts.authRequired;
    this.now = opts.now ?? Date.now;
    this.defaultQuotas = opts.defaultQuotas ?? quotaDefaultsFromEnv(env);
    this.localQuotas = opts.localQuotas ?? localQuotasFromEnv(env);
    const meteringRaw = (env[API_ENV.metering] ?? "on").toLowerCase();
    if (!["on", "off"].includes(meteringRaw)) {
      throw new Error(`${API_ENV.metering} must be 'on' or 'off', got '${env[API_ENV.metering]}'.`);
    }
    this.metering = opts.metering ?? meteringRaw === "on";
    if (!this.metering && opts.authRequired) {
      throw new Error("HostedTenancy: metering cannot be off when auth is on (quotas and billing need it).");
    }
    const ttlRaw = env[API_ENV.authCacheTtlMs];
    const ttlFromEnv = ttlRaw === undefined || ttlRaw === "" ? undefined : Number(ttlRaw);
    if (ttlFromEnv !== undefined && !(Number.isFinite(ttlFromEnv) && ttlFromEnv >= 0)) {
      throw new Error(`${API_ENV.authCacheTtlMs} must be a number >= 0, got '${ttlRaw}'.`);
    }
    this.keys = new ApiKeyStore({ repository: opts.repositories.apiKeys });
    const cacheTtlMs = opts.authCacheTtlMs ?? ttlFromEnv;
    this.authenticator = new Authenticator({
      authRequired: opts.authRequired,
      keys: this.keys,
      defaultQuotas: opts.authRequired ? this.defaultQuotas : this.localQuotas,
      now: this.now,
      ...(cacheTtlMs !== undefined ? { cacheTtlMs } : {}),
    });
    this.active = new ActiveEpisodes({
      repository: opts.repositories.activeEpisodes,
      lookupLive: opts.repositories.liveEpisodes,
    });
    this.dailySteps = new DailyStepQuota({ usage: opts.repositories.usage });
  }

  /** The caller's tenant from its headers; 401 `UnauthorizedError` when auth is on and the key is bad. */
  authenticate(headers: HeaderSource): Promise<TenantContext> {
    return this.authenticator.authenticate(headers);
  }

  /**
   * Runs `fn` (the rest of the request) with `tenant` as the request's tenant. A scope is opened
   * only when it changes what {@link quotasFor} answers (a key with quota overrides): on Node 20 the
   * first scope turns on promise hooks for the whole process, a cost on every promise of every
   * request after it (DynamoDB front included), so the local tenant and keys without overrides run
   * without one.
   */
  runAs<T>(tenant: TenantContext, fn: () => Promise<T>): Promise<T> {
    if (
      this.scope.getStore() === undefined &&
      sameQuotas(tenant.quotas, this.unscopedQuotas(tenant.tenantId))
    )
      return fn();
    return this.scope.run(tenant, fn);
  }

  /** The quotas that apply to `tenantId` in this request (the calling key's, else the defaults). */
  quotasFor(tenantId: string): QuotaLimits {
    const current = this.scope.getStore();
    if (current && current.tenantId === tenantId) return current.quotas;
    return this.unscopedQuotas(tenantId);
  }

  /** The quotas of `tenantId` outside any request's scope: the local tenant's, or the defaults. */
  private unscopedQuotas(tenantId: string): QuotaLimits {
    return tenantId === LOCAL_TENANT_ID && !this.authRequired ? this.localQuotas : this.defaultQuotas;
  }

  /**
   * The per-step timeout a reset may use: 429 when `requestedS` is over the tenant's
   * `max_step_timeout_s`; when the reset asks for none, the deployment default capped at the quota.
   */
  stepTimeoutForReset(tenantId: string, requestedS: number | undefined, deploymentDefaultS: number): number {
    const quotas = this.quotasFor(tenantId);
    if (requestedS !== undefined) {
      checkStepTimeout(requestedS, quotas);
      return requestedS;
    }
    return Math.min(deploymentDefaultS, quotas.maxStepTimeoutS);
  }

  async reserveEpisodeSlot(ctx: EpisodeSlotCtx): Promise<void> {
    const limit = this.quotasFor(ctx.tenantId).activeEpisodes;
    if (!Number.isFinite(limit)) {
      // Unlimited tenants are listed too (GET /episodes), up to the set's size cap, never refused.
      await this.active.track(ctx.tenantId, ctx.episodeId, MAX_ACTIVE_EPISODES_QUOTA, new Date(ctx.nowMs));
      return;
    }
    await this.active.reserve(ctx.tenantId, ctx.episodeId, limit, new Date(ctx.nowMs));
  }

  async releaseEpisodeSlot(ctx: EpisodeSlotCtx): Promise<void> {
    await this.active.release(ctx.tenantId, ctx.episodeId);
  }

  /** The ids in the tenant's active set (GET /episodes reads them and skips the dead ones). */
  async listEpisodeIds(tenantId: string): Promise<string[]> {
    return (await this.active.listed(tenantId)).ids;
  }

  async beginStep(ctx: BeforeStepCtx): Promise<() => void> {
    const quotas = this.quotasFor(ctx.tenantId);
    const end = Number.isFinite(quotas.concurrentSteps)
      ? this.concurrentSteps.begin(ctx.tenantId, quotas.concurrentSteps)
      : () => {};
    try {
      if (this.metering) await this.dailySteps.begin(ctx.tenantId, quotas.stepsPerDay, ctx.nowMs);
    } catch (err) {
      end();
      throw err;
    }
    return end;
  }

  checkState(ctx: StateCtx): void {
    checkStateSize(ctx.stateBytes, this.quotasFor(ctx.tenantId));
  }

  /** `GET /usage` for the tenant. 400 for a bad range. */
  usage(tenantId: string, from: string | undefined, to: string | undefined): Promise<UsageReport> {
    return queryUsage({
      repository: this.usageRepository,
      tenantId,
      ...(from !== undefined ? { from } : {}),
      ...(to !== undefined ? { to } : {}),
      now: new Date(this.now()),
    });
  }
}
