// Sizes the per-tenant step cap to what this API process can serve now (issue 10 point 7). The API
// process (and, locally, the DynamoDB front on the same event loop) is shared by every tenant:
// once its event loop is busy most of the time, every request waits in the loop's own FIFO, where
// no fair queue can reorder it, and a flooding tenant's steps make another tenant's step wait
// behind them. So the governor watches the loop's utilization (the share of time it was not idle,
// including time the machine did not give it a core) and, like TCP's congestion control, halves
// the per-tenant cap while the loop is busier than `high` and raises it by one while it is calmer
// than `low`. A flooding tenant's excess then waits in its own admission queue, doing no work,
// and a tenant with one step at a time (cap >= 1) is never held back.
import { performance } from "node:perf_hooks";
import type { FairQueue } from "./fair-queue.js";

/** Options of {@link LoadGovernor}. */
export interface LoadGovernorOpts {
  /** How often the loop's utilization is read. @default 100 ms */
  readonly intervalMs?: number;
  /** Utilization above which the cap is halved. @default 0.6 */
  readonly high?: number;
  /** Utilization below which the cap grows by one. @default 0.4 */
  readonly low?: number;
}

/** The next per-tenant cap from the current one and the loop's utilization over the last interval. */
export function nextTenantCap(
  cap: number,
  utilization: number,
  max: number,
  opts: { readonly high: number; readonly low: number },
): number {
  if (utilization > opts.high) return Math.max(1, Math.floor(cap / 2));
  if (utilization < opts.low) return Math.min(max, cap + 1);
  return cap;
}

export class LoadGovernor {
  private readonly timer: NodeJS.Timeout;
  private last = performance.eventLoopUtilization();

  /**
   * @param queue the admission queue whose per-tenant cap is governed
   * @param max the configured per-tenant cap (never exceeded)
   */
  constructor(
    private readonly queue: FairQueue,
    private readonly max: number,
    opts: LoadGovernorOpts = {},
  ) {
    const thresholds = { high: opts.high ?? 0.6, low: opts.low ?? 0.4 };
    this.timer = setInterval(() => {
      const now = performance.eventLoopUtilization();
      const { utilization } = performance.eventLoopUtilization(now, this.last);
      this.last = now;
      const cap = this.queue.currentTenantMaxRunning();
      const next = nextTenantCap(cap, utilization, this.max, thresholds);
      if (next !== cap) this.queue.setTenantMaxRunning(next);
    }, opts.intervalMs ?? 100);
    // Never keeps a process alive (a stopped stack, a Lambda instance between requests).
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
