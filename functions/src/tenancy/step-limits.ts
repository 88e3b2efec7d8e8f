// The two limits checked before a step runs, without a DynamoDB write per step:
// - `steps_per_day`: from the tenant's usage item (rolled up from the change stream), read at most
//   once per `cacheMs` per tenant and API instance, plus the steps this instance began since;
// - `concurrent_steps`: steps of one tenant running at once in this API instance.
//
// The daily quota may overshoot: steps are rolled up after they commit (the stream's delay plus its
// batching window, up to about 5 s in AWS, 1 s locally) and each instance sees the others' steps
// only through the usage item. Past its limit a tenant can still start, per API instance, the steps
// it runs within `cacheMs` + that delay (about 10 s), at most `concurrent_steps` at a time; within
// one instance concurrent steps are counted exactly (begun steps count at once).
import { QuotaExceededError } from "./errors.js";
import { nextUtcMidnight, usageDay } from "./metering.js";
import type { UsageRepository } from "./repositories.js";

interface UsageSnapshot {
  readonly day: string;
  readonly readAtMs: number;
  /** Steps in the usage item when read. */
  readonly stored: number;
  /** Steps this instance began since the read. */
  begun: number;
}

export interface DailyStepQuotaOpts {
  /** The tenants' usage per day (DynamoDB: `store/dynamodb-usage.ts`, one GetItem per read). */
  readonly usage: UsageRepository;
  /** How long one read of a tenant's usage is trusted. @default 5000 */
  readonly cacheMs?: number;
}

/** `steps_per_day` from a cached usage read (see the top of this file for the overshoot). */
export class DailyStepQuota {
  private readonly cache = new Map<string, UsageSnapshot>();
  private readonly pending = new Map<string, Promise<UsageSnapshot>>();
  private readonly cacheMs: number;

  constructor(private readonly opts: DailyStepQuotaOpts) {
    this.cacheMs = opts.cacheMs ?? 5_000;
  }

  /** Throws the 429 when the tenant has used its steps today, else counts one step begun. */
  async begin(tenantId: string, stepsPerDay: number, nowMs: number): Promise<void> {
    if (!Number.isFinite(stepsPerDay)) return;
    const at = new Date(nowMs);
    const usage = await this.usage(tenantId, usageDay(at), nowMs);
    if (usage.stored + usage.begun >= stepsPerDay) {
      const resetsAt = nextUtcMidnight(at);
      throw new QuotaExceededError({
        quota: "steps_per_day",
        limit: stepsPerDay,
        resetsAt,
        now: nowMs,
        message:
          `Quota 'steps_per_day' exceeded: ${stepsPerDay} steps per UTC day; it resets at ` +
          `${resetsAt.toISOString()}. The step did not run.`,
      });
    }
    usage.begun += 1;
  }

  private async usage(tenantId: string, day: string, nowMs: number): Promise<UsageSnapshot> {
    const cached = this.cache.get(tenantId);
    if (cached && cached.day === day && nowMs - cached.readAtMs < this.cacheMs) return cached;
    let read = this.pending.get(tenantId);
    if (!read) {
      read = this.opts.usage
        .stepsOn(tenantId, day)
        .then((stored) => {
          const snapshot: UsageSnapshot = { day, readAtMs: nowMs, stored, begun: 0 };
          this.cache.set(tenantId, snapshot);
          return snapshot;
        })
        .finally(() => this.pending.delete(tenantId));
      this.pending.set(tenantId, read);
    }
    return read;
  }
}

/** `concurrent_steps`: steps of a tenant running at once in this API instance. */
export class ConcurrentSteps {
  private readonly running = new Map<string, number>();

  /** Throws the 429 at the limit, else counts the step. @returns the release, to call once */
  begin(tenantId: string, limit: number): () => void {
    const n = this.running.get(tenantId) ?? 0;
    if (n >= limit) {
      throw new QuotaExceededError({
        quota: "concurrent_steps",
        limit,
        resetsAt: null,
        message: `Quota 'concurrent_steps' exceeded: at most ${limit} steps of a tenant may run at once; retry when one has answered.`,
      });
    }
    this.running.set(tenantId, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.running.get(tenantId) ?? 1) - 1;
      if (left <= 0) this.running.delete(tenantId);
      else this.running.set(tenantId, left);
    };
  }
}
