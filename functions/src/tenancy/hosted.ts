// Hosted mode in one object: what the API needs from the tenancy layer, behind a small surface so
// the app and the core change in only a few places (see README.md here for where each hook goes).

import { AsyncLocalStorage } from "node:async_hooks";
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type {
  BeforeStepCtx,
  CommitStepCtx,
  CreateEpisodeCtx,
  DeleteEpisodeCtx,
  EpisodeTenancyHooks,
  TransactionalWrite,
} from "../core/episodes.js";
import { episodePk } from "../store/episode-store.js";
import { ActiveEpisodes, batchGetLiveEpisodes } from "./active-episodes.js";
import { Authenticator, type HeaderSource, LOCAL_TENANT_ID, type TenantContext } from "./auth.js";
import { ApiKeyStore } from "./keys.js";
import {
  cancellationReasons,
  episodeCreatedTransactItem,
  isRetryableTransactionConflict,
  StepQuotaGate,
  stepQuotaErrorFromCancellation,
  stepUsageTransactItem,
} from "./metering.js";
import {
  checkStateSize,
  checkStepTimeout,
  localQuotasFromEnv,
  type QuotaLimits,
  quotaDefaultsFromEnv,
} from "./quotas.js";
import { queryUsage, type UsageReport } from "./usage.js";

/** Options of {@link HostedTenancy}. */
export interface HostedTenancyOpts {
  /** The low-level client of the service table. */
  readonly client: DynamoDBClient;
  readonly tableName: string;
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
   * Whether usage is counted. Only the local stack may turn it off (`CODING_ENV_METERING=off`, auth
   * off): it saves the usage item in every step's and reset's transaction (~0.7 ms per step on
   * dynalite) for benchmarks; `GET /usage` then reports nothing and `steps_per_day` is not enforced.
   * @default true (`CODING_ENV_METERING`, "on")
   */
  readonly metering?: boolean;
  /** Clock in ms. @default Date.now */
  readonly now?: () => number;
}

// The hooks' shape is the core's (`EpisodeTenancyHooks` in core/episodes.ts): HostedTenancy is its
// hosted-mode implementation.
export type { EpisodeTenancyHooks, TransactionalWrite } from "../core/episodes.js";

/** Retries a transaction cancelled only by `TransactionConflict` (it changed nothing), with jitter. */
export async function retryTransactionConflicts<T>(
  send: () => Promise<T>,
  opts: { readonly maxAttempts?: number; readonly baseDelayMs?: number } = {},
): Promise<T> {
  const maxAttempts = opts.maxAttempts ?? 5;
  const baseDelayMs = opts.baseDelayMs ?? 10;
  for (let attempt = 1; ; attempt++) {
    try {
      return await send();
    } catch (err) {
      if (attempt >= maxAttempts || !isRetryableTransactionConflict(err)) throw err;
      await new Promise((r) => setTimeout(r, Math.random() * baseDelayMs * 2 ** attempt));
    }
  }
}

/**
 * Keys, the request's tenant, metering and quotas for the API.
 *
 * The request's `TenantContext` (tenant and the quotas of the key it used) is kept in an
 * `AsyncLocalStorage` scope opened by the app's tenant middleware (`runAs`), so the core's hooks see
 * the calling key's quotas without every core method taking a context parameter.
 *
 * @example
 * const tenancy = new HostedTenancy({ client, tableName, authRequired: true, executorMemoryMb: 1024 });
 * app.use("*", async (c, next) => tenancy.runAs(await tenancy.authenticate((n) => c.req.header(n)), next));
 */
export class HostedTenancy implements EpisodeTenancyHooks {
  readonly authRequired: boolean;
  readonly keys: ApiKeyStore;
  readonly authenticator: Authenticator;
  readonly active: ActiveEpisodes;
  readonly defaultQuotas: QuotaLimits;
  readonly localQuotas: QuotaLimits;
  private readonly client: DynamoDBClient;
  private readonly tableName: string;
  private readonly executorMemoryMb: number;
  private readonly now: () => number;
  /** Whether usage items are written (see `HostedTenancyOpts.metering`). */
  readonly metering: boolean;
  private readonly gate = new StepQuotaGate();
  private readonly scope = new AsyncLocalStorage<TenantContext>();

  constructor(opts: HostedTenancyOpts) {
    if (!opts.tableName) throw new Error("HostedTenancy: tableName is required.");
    if (!Number.isInteger(opts.executorMemoryMb) || opts.executorMemoryMb <= 0) {
      throw new Error("HostedTenancy: executorMemoryMb must be a positive integer.");
    }
    const env = opts.env ?? process.env;
    this.client = opts.client;
    this.tableName = opts.tableName;
    this.authRequired = opts.authRequired;
    this.executorMemoryMb = opts.executorMemoryMb;
    this.now = opts.now ?? Date.now;
    this.defaultQuotas = opts.defaultQuotas ?? quotaDefaultsFromEnv(env);
    this.localQuotas = opts.localQuotas ?? localQuotasFromEnv(env);
    const meteringRaw = (env.CODING_ENV_METERING ?? "on").toLowerCase();
    if (!["on", "off"].includes(meteringRaw)) {
      throw new Error(`CODING_ENV_METERING must be 'on' or 'off', got '${env.CODING_ENV_METERING}'.`);
    }
    this.metering = opts.metering ?? meteringRaw === "on";
    if (!this.metering && opts.authRequired) {
      throw new Error("HostedTenancy: metering cannot be off when auth is on (quotas and billing need it).");
    }
    const ttlRaw = env.CODING_ENV_AUTH_CACHE_TTL_MS;
    const ttlFromEnv = ttlRaw === undefined || ttlRaw === "" ? undefined : Number(ttlRaw);
    if (ttlFromEnv !== undefined && !(Number.isFinite(ttlFromEnv) && ttlFromEnv >= 0)) {
      throw new Error(`CODING_ENV_AUTH_CACHE_TTL_MS must be a number >= 0, got '${ttlRaw}'.`);
    }
    this.keys = new ApiKeyStore({ client: opts.client, tableName: opts.tableName });
    const cacheTtlMs = opts.authCacheTtlMs ?? ttlFromEnv;
    this.authenticator = new Authenticator({
      authRequired: opts.authRequired,
      keys: this.keys,
      defaultQuotas: opts.authRequired ? this.defaultQuotas : this.localQuotas,
      now: this.now,
      ...(cacheTtlMs !== undefined ? { cacheTtlMs } : {}),
    });
    this.active = new ActiveEpisodes({
      client: opts.client,
      tableName: opts.tableName,
      // The episode store's META item: `EP#<tenant>#<id>`/`META` with `tenant_id` and `expires_at`.
      lookupLive: batchGetLiveEpisodes({
        client: opts.client,
        tableName: opts.tableName,
        episodeKey: (tenantId, id) => ({ pk: { S: episodePk(tenantId, id) }, sk: { S: "META" } }),
        now: () => new Date(this.now()),
      }),
    });
  }

  /** The caller's tenant from its headers; 401 `UnauthorizedError` when auth is on and the key is bad. */
  authenticate(headers: HeaderSource): Promise<TenantContext> {
    return this.authenticator.authenticate(headers);
  }

  /** Runs `fn` (the rest of the request) with `tenant` as the request's tenant. */
  runAs<T>(tenant: TenantContext, fn: () => Promise<T>): Promise<T> {
    return this.scope.run(tenant, fn);
  }

  /** The quotas that apply to `tenantId` in this request (the calling key's, else the defaults). */
  quotasFor(tenantId: string): QuotaLimits {
    const current = this.scope.getStore();
    if (current && current.tenantId === tenantId) return current.quotas;
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

  async createEpisode<T>(ctx: CreateEpisodeCtx, write: TransactionalWrite<T>): Promise<T> {
    const limit = this.quotasFor(ctx.tenantId).activeEpisodes;
    const at = new Date(ctx.nowMs);
    const created = episodeCreatedTransactItem({
      tableName: this.tableName,
      tenantId: ctx.tenantId,
      at,
      stateBytes: ctx.stateBytes,
    });
    // Unlimited tenants are not tracked: their set would only grow.
    const usageItems = this.metering ? [created] : [];
    if (!Number.isFinite(limit)) return write(usageItems);
    const items = [this.active.reserveItem(ctx.tenantId, ctx.episodeId, limit), ...usageItems];
    for (let attempt = 0; ; attempt++) {
      try {
        return await retryTransactionConflicts(() => write(items));
      } catch (err) {
        const reasons = cancellationReasons(err);
        const reserveIndex = reasons ? reasons.length - items.length : -1;
        if (reasons?.[reserveIndex]?.Code !== "ConditionalCheckFailed") throw err;
        // The set says the tenant is at its limit; it may list episodes that expired meanwhile.
        const pruned = await this.active.prune(ctx.tenantId);
        if (pruned.pruned.length === 0 || attempt >= 2) {
          throw this.active.quotaError(limit, pruned.earliestExpiry, new Date(this.now()));
        }
      }
    }
  }

  async deleteEpisode<T>(ctx: DeleteEpisodeCtx, write: TransactionalWrite<T>): Promise<T> {
    if (!Number.isFinite(this.quotasFor(ctx.tenantId).activeEpisodes)) return write([]);
    return retryTransactionConflicts(() => write([this.active.releaseItem(ctx.tenantId, ctx.episodeId)]));
  }

  beforeStep(ctx: BeforeStepCtx): void {
    this.gate.assertOpen(ctx.tenantId, this.quotasFor(ctx.tenantId).stepsPerDay, new Date(ctx.nowMs));
  }

  async commitStep<T>(ctx: CommitStepCtx, write: TransactionalWrite<T>): Promise<T> {
    const quotas = this.quotasFor(ctx.tenantId);
    checkStateSize(ctx.stateBytes, quotas);
    if (!this.metering) return write([]);
    const at = new Date(ctx.nowMs);
    const items = [
      stepUsageTransactItem({
        tableName: this.tableName,
        tenantId: ctx.tenantId,
        at,
        executorMs: ctx.executorMs,
        memoryMb: this.executorMemoryMb,
        stateBytes: ctx.stateBytes,
        stepsPerDay: quotas.stepsPerDay,
      }),
    ];
    try {
      return await retryTransactionConflicts(() => write(items));
    } catch (err) {
      const reasons = cancellationReasons(err);
      const quotaError = reasons
        ? stepQuotaErrorFromCancellation(err, reasons.length - items.length, {
            stepsPerDay: quotas.stepsPerDay,
            at,
          })
        : undefined;
      if (!quotaError) throw err;
      this.gate.markExhausted(ctx.tenantId, quotas.stepsPerDay, at);
      throw quotaError;
    }
  }

  /** `GET /usage` for the tenant. 400 for a bad range. */
  usage(tenantId: string, from: string | undefined, to: string | undefined): Promise<UsageReport> {
    return queryUsage({
      client: this.client,
      tableName: this.tableName,
      tenantId,
      ...(from !== undefined ? { from } : {}),
      ...(to !== undefined ? { to } : {}),
      now: new Date(this.now()),
    });
  }
}
