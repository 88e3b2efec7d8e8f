// Fair sharing of the executor between tenants within one API process (issue 10 point 7). A flood
// of steps from one tenant must not fill the executor client's connection pool or the executor's
// workers, so every call takes a slot of a FairQueue first (admission/fair-queue.ts):
//   - at most `maxRunning` calls run at once in the process (the pool holds more connections than
//     that, so a call never queues inside the HTTP agent where its timer would run out);
//   - at most `tenantMaxRunning` of them belong to one tenant;
//   - a tenant's further calls wait in its own queue (at most `tenantMaxWaiting`; beyond it, and
//     past `maxWaitMs` or the request's deadline, 429 `too_many_concurrent_steps`, nothing ran);
//   - a freed slot goes to the waiting tenant with the fewest calls running (rotation among equals).
// Steps are admitted by the same kind of queue before their first store read
// (admission/step-admission.ts), so a step seldom waits here; file operations only wait here.
// In AWS each API Lambda instance serves one request at a time, so these caps do not bind there
// (docs/DEPLOY.md, "Fair sharing").
import { FairQueue, type FairQueueLimits, type FairQueueStats } from "../admission/fair-queue.js";
import type { ApiConfig } from "../config.js";
import { ExecutorError } from "../core/errors.js";
import { currentDeadline } from "./deadline.js";
import type {
  DiscardRequest,
  ExecuteRequest,
  ExecuteResult,
  Executor,
  FilesRequest,
  FilesResult,
} from "./executor.js";

/**
 * The executor queue's limits in one API process, from the deployment's settings. Keys off: one
 * tenant (`local`) has the stack to itself and may use every executor slot, as it may every
 * admission slot (step-admission.ts). Capped at the per-tenant figure (8), 56 of 64 admitted
 * steps waited here with their store reads done, and since a call holds its slot until the busy
 * event loop reads its answer, the 8 slots, not the CPU, bounded the stack's steps/s.
 */
export function executorShareLimits(
  config: Pick<
    ApiConfig,
    "executorMaxConcurrency" | "tenantMaxRunningSteps" | "tenantMaxWaitingSteps" | "authRequired"
  >,
): FairQueueLimits {
  return {
    maxRunning: config.executorMaxConcurrency,
    tenantMaxRunning: config.authRequired ? config.tenantMaxRunningSteps : config.executorMaxConcurrency,
    tenantMaxWaiting: config.tenantMaxWaitingSteps,
  };
}

/** Options of {@link FairShareExecutor}: the limits of its queue. */
export type FairShareOpts = FairQueueLimits;

/** Counts of the scheduler, for tests and the benchmark. */
export type FairShareStats = Omit<FairQueueStats, "refused">;

export class FairShareExecutor implements Executor {
  private readonly queue: FairQueue;

  constructor(
    private readonly inner: Executor,
    opts: FairShareOpts,
  ) {
    this.queue = new FairQueue(opts);
  }

  async execute(req: ExecuteRequest): Promise<ExecuteResult> {
    const release = await this.queue.acquire(req.tenantId, currentDeadline());
    try {
      return await this.inner.execute(req);
    } finally {
      release();
    }
  }

  discard(req: DiscardRequest): Promise<void> {
    // Bounded by the inner executor (a few at once, in the pool's headroom); needs no slot.
    return this.inner.discard(req);
  }

  async files(req: FilesRequest): Promise<FilesResult> {
    if (!this.inner.files) throw new ExecutorError("This executor cannot read episode files.");
    // Runs no code, but takes a slot like a step: a flood of uploads shares the executor fairly too.
    const release = await this.queue.acquire(req.tenantId, currentDeadline());
    try {
      return await this.inner.files(req);
    } finally {
      release();
    }
  }

  stats(): FairShareStats {
    const { running, waiting, tenants } = this.queue.stats();
    return { running, waiting, tenants };
  }
}
