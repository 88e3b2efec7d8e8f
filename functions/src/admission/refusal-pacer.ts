// Paced refusals (issue 10 point 7): the Retry-After a tenant is given when it is refused (409
// step_in_progress, 429 too_many_concurrent_steps or concurrent_steps) spreads its retries so that
// they come back at most `refusalsPerSecond` a second, however many clients it runs. Each refusal
// takes the next free retry time of its tenant, one every 1 / refusalsPerSecond seconds: 200 loops
// refused at once are told 1, 1, ..., 2, ..., 20 s (at 10/s), so they return spread out, instead of
// all at once every second. A client that honours Retry-After (the SDKs do) then costs the API at
// most that many refused requests a second; one that ignores it meets API Gateway's throttling in
// AWS. A tenant refused seldom is told 1 s, as before.

/** Options of {@link RefusalPacer}. */
export interface RefusalPacerOpts {
  /** Refused requests of one tenant a second that the retry times are spread to. @default 10 */
  readonly refusalsPerSecond?: number;
  /** Longest Retry-After given, in seconds. @default 30 */
  readonly maxRetryAfterS?: number;
  /** Clock in ms. @default Date.now */
  readonly now?: () => number;
}

/** Tenants tracked before stale entries are dropped. */
const PRUNE_AT = 10_000;

export class RefusalPacer {
  /** Per tenant: the next free retry time (epoch ms). */
  private readonly nextFree = new Map<string, number>();
  private readonly intervalMs: number;
  private readonly maxMs: number;
  private readonly now: () => number;

  constructor(opts: RefusalPacerOpts = {}) {
    const rate = opts.refusalsPerSecond ?? 10;
    const max = opts.maxRetryAfterS ?? 30;
    if (!(rate > 0) || !(max >= 1))
      throw new Error("RefusalPacer: refusalsPerSecond > 0, maxRetryAfterS >= 1");
    this.intervalMs = 1000 / rate;
    this.maxMs = max * 1000;
    this.now = opts.now ?? Date.now;
  }

  /** The Retry-After (whole seconds, at least 1) for one more refusal of `tenantId`. */
  retryAfterS(tenantId: string): number {
    const now = this.now();
    if (this.nextFree.size >= PRUNE_AT) this.prune(now);
    const next = Math.min(
      Math.max(now, this.nextFree.get(tenantId) ?? now) + this.intervalMs,
      now + this.maxMs,
    );
    this.nextFree.set(tenantId, next);
    return Math.max(1, Math.ceil((next - now) / 1000));
  }

  private prune(now: number): void {
    for (const [tenantId, next] of this.nextFree) if (next <= now) this.nextFree.delete(tenantId);
  }
}
