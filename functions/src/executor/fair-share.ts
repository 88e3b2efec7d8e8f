// Fair sharing of the executor between tenants within one API process (issue 10 point 7). A flood
// of steps from one tenant must not fill the executor client's connection pool or the executor's
// workers, so every call takes a slot first:
//   - at most `maxRunning` calls run at once in the process (the pool holds more connections than
//     that, so a call never queues inside the HTTP agent where its timer would run out);
//   - at most `tenantMaxRunning` of them belong to one tenant;
//   - a tenant's further calls wait in its own queue (at most `tenantMaxWaiting`; beyond it, and
//     past `maxWaitMs` or the request's deadline, 429 `too_many_concurrent_steps`, nothing ran);
//   - a freed slot goes to the waiting tenant with the fewest calls running (rotation among equals).
// So another tenant's step starts at once (or after the next slot frees) however many steps the
// flooding tenant sends. In AWS each API Lambda instance serves one request at a time, so these
// caps do not bind there; Lambda's per-tenant environments and the tenancy quotas do that job.
import { ExecutorError, TooManyConcurrentStepsError } from "../core/errors.js";
import { currentDeadline } from "./deadline.js";
import type {
  DiscardRequest,
  ExecuteRequest,
  ExecuteResult,
  Executor,
  FilesRequest,
  FilesResult,
} from "./executor.js";

/** Options of {@link FairShareExecutor}. */
export interface FairShareOpts {
  /** Calls running at once, all tenants. */
  readonly maxRunning: number;
  /** Calls of one tenant running at once. */
  readonly tenantMaxRunning: number;
  /** Calls of one tenant waiting for a slot. */
  readonly tenantMaxWaiting: number;
  /** Longest wait for a slot (ms); the request's deadline, when sooner, wins. @default 10000 */
  readonly maxWaitMs?: number;
}

interface Waiter {
  start(): void;
}

/** One tenant's calls in this process. */
interface Lane {
  running: number;
  readonly waiting: Waiter[];
  /** Whether the lane is in the rotation of lanes with waiting calls. */
  queued: boolean;
}

/** Counts of the scheduler, for tests and the benchmark. */
export interface FairShareStats {
  readonly running: number;
  readonly waiting: number;
  readonly tenants: number;
}

export class FairShareExecutor implements Executor {
  private readonly lanes = new Map<string, Lane>();
  private readonly rotation: string[] = [];
  private running = 0;
  private readonly maxWaitMs: number;

  constructor(
    private readonly inner: Executor,
    private readonly opts: FairShareOpts,
  ) {
    this.maxWaitMs = opts.maxWaitMs ?? 10_000;
  }

  async execute(req: ExecuteRequest): Promise<ExecuteResult> {
    const lane = await this.acquire(req.tenantId);
    try {
      return await this.inner.execute(req);
    } finally {
      this.release(req.tenantId, lane);
    }
  }

  discard(req: DiscardRequest): Promise<void> {
    // Bounded by the inner executor (a few at once, in the pool's headroom); needs no slot.
    return this.inner.discard(req);
  }

  async files(req: FilesRequest): Promise<FilesResult> {
    if (!this.inner.files) throw new ExecutorError("This executor cannot read episode files.");
    // Runs no code, but takes a slot like a step: a flood of uploads shares the executor fairly too.
    const lane = await this.acquire(req.tenantId);
    try {
      return await this.inner.files(req);
    } finally {
      this.release(req.tenantId, lane);
    }
  }

  stats(): FairShareStats {
    let waiting = 0;
    for (const lane of this.lanes.values()) waiting += lane.waiting.length;
    return { running: this.running, waiting, tenants: this.lanes.size };
  }

  private async acquire(tenantId: string): Promise<Lane> {
    let lane = this.lanes.get(tenantId);
    if (!lane) {
      lane = { running: 0, waiting: [], queued: false };
      this.lanes.set(tenantId, lane);
    }
    // Start at once only when nobody waits ahead of us (no overtaking within a tenant).
    if (lane.running < this.opts.tenantMaxRunning && this.running < this.opts.maxRunning) {
      if (lane.waiting.length === 0) {
        lane.running += 1;
        this.running += 1;
        return lane;
      }
    }
    if (lane.waiting.length >= this.opts.tenantMaxWaiting) {
      this.forgetIfIdle(tenantId, lane);
      throw new TooManyConcurrentStepsError(this.opts.tenantMaxRunning + this.opts.tenantMaxWaiting);
    }
    const owned = lane;
    const deadline = currentDeadline();
    const waitMs = Math.min(
      this.maxWaitMs,
      deadline === undefined ? Number.POSITIVE_INFINITY : deadline - Date.now(),
    );
    await new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        start: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(
        () => {
          const i = owned.waiting.indexOf(waiter);
          if (i >= 0) owned.waiting.splice(i, 1);
          this.forgetIfIdle(tenantId, owned);
          reject(new TooManyConcurrentStepsError(this.opts.tenantMaxRunning + this.opts.tenantMaxWaiting));
        },
        Math.max(0, waitMs),
      );
      owned.waiting.push(waiter);
      this.enqueue(tenantId, owned);
      this.dispatch();
    });
    return owned;
  }

  private release(tenantId: string, lane: Lane): void {
    lane.running -= 1;
    this.running -= 1;
    if (lane.waiting.length > 0) this.enqueue(tenantId, lane);
    else this.forgetIfIdle(tenantId, lane);
    this.dispatch();
  }

  private enqueue(tenantId: string, lane: Lane): void {
    if (lane.queued) return;
    lane.queued = true;
    this.rotation.push(tenantId);
  }

  /**
   * Gives each free slot to the waiting tenant with the fewest calls running (the first in the
   * rotation among equals), which then goes to the back of the rotation.
   */
  private dispatch(): void {
    while (this.running < this.opts.maxRunning && this.rotation.length > 0) {
      let best = -1;
      let bestRunning = Number.POSITIVE_INFINITY;
      for (let i = 0; i < this.rotation.length; i++) {
        const tenantId = this.rotation[i] as string;
        const lane = this.lanes.get(tenantId);
        if (!lane || lane.waiting.length === 0 || lane.running >= this.opts.tenantMaxRunning) {
          // Its waiters gave up, or it is at its own cap: out of the rotation until one of its
          // calls ends (release puts it back).
          this.rotation.splice(i, 1);
          i -= 1;
          if (lane) {
            lane.queued = false;
            this.forgetIfIdle(tenantId, lane);
          }
          continue;
        }
        if (lane.running < bestRunning) {
          best = i;
          bestRunning = lane.running;
        }
      }
      if (best < 0) return;
      const tenantId = this.rotation.splice(best, 1)[0] as string;
      const lane = this.lanes.get(tenantId) as Lane;
      const waiter = lane.waiting.shift() as Waiter;
      lane.running += 1;
      this.running += 1;
      if (lane.waiting.length > 0) this.rotation.push(tenantId);
      else lane.queued = false;
      waiter.start();
    }
  }

  private forgetIfIdle(tenantId: string, lane: Lane): void {
    if (lane.running === 0 && lane.waiting.length === 0 && !lane.queued) this.lanes.delete(tenantId);
  }
}
