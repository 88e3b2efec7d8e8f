// The executor client with the cross-instance governor in front of each step's invoke
// (admission/executor-governor.ts): a throttled invoke engages governed mode; while governed, a
// step holds one of its tenant's slots for the time of its invoke. The core is unchanged: it sees
// the same Executor, and the same typed errors (429 `executor_throttled` when throttled, 429
// `too_many_concurrent_steps` at the tenant's cap: both mean the code did not run, and the SDKs
// retry both after Retry-After).
//
// A throttled step is not retried here: it never ran, it is answered 429 with Retry-After, and its
// retry (the SDK's) is governed.
import { ExecutorError, ExecutorThrottledError } from "../core/errors.js";
import { currentDeadline } from "../executor/deadline.js";
import type {
  DiscardRequest,
  ExecuteRequest,
  ExecuteResult,
  Executor,
  FilesRequest,
  FilesResult,
} from "../executor/executor.js";
import type { ExecutorGovernor } from "./executor-governor.js";

/** Options of {@link GovernedExecutor}. */
export interface GovernedExecutorOpts {
  readonly governor: ExecutorGovernor;
  /**
   * A tenant's slots while governed (its `concurrent_steps` quota, at most its share of the
   * executor's reserved concurrency: {@link governedTenantCap}); `Infinity`: never governed.
   */
  readonly capFor: (tenantId: string) => number;
  /** Time the executor gets beyond the step's own limit (ms): a slot is held until then. */
  readonly graceMs: number;
}

/**
 * Share of the executor's reserved concurrency one tenant may hold while governed: half, so a
 * flooding tenant always leaves room for the others (two flooding tenants together can still
 * fill it; the flag then stays on and each holds at most its half).
 */
export const GOVERNED_TENANT_SHARE = 0.5;

/** A tenant's cap while governed: its quota, at most its share of the reserved concurrency (if known). */
export function governedTenantCap(
  concurrentStepsQuota: number,
  reservedConcurrency: number | undefined,
): number {
  if (reservedConcurrency === undefined) return concurrentStepsQuota;
  return Math.min(concurrentStepsQuota, Math.max(1, Math.floor(reservedConcurrency * GOVERNED_TENANT_SHARE)));
}

export class GovernedExecutor implements Executor {
  constructor(
    private readonly inner: Executor,
    private readonly opts: GovernedExecutorOpts,
  ) {}

  async execute(req: ExecuteRequest): Promise<ExecuteResult> {
    // The slot is held as long as the invoke may take (the executor client's own wait).
    let untilMs = Date.now() + req.timeoutMs + this.opts.graceMs;
    const deadline = currentDeadline();
    if (deadline !== undefined) untilMs = Math.min(untilMs, deadline);
    const release = await this.opts.governor.admit(req.tenantId, this.opts.capFor(req.tenantId), untilMs);
    try {
      return await this.inner.execute(req);
    } catch (err) {
      if (err instanceof ExecutorThrottledError) await this.opts.governor.throttled();
      throw err;
    } finally {
      await release();
    }
  }

  discard(req: DiscardRequest): Promise<void> {
    return this.inner.discard(req);
  }

  async files(req: FilesRequest): Promise<FilesResult> {
    if (!this.inner.files) throw new ExecutorError("This executor cannot read episode files.");
    // Runs no code and is short: no slot, but a throttle engages governed mode all the same.
    try {
      return await this.inner.files(req);
    } catch (err) {
      if (err instanceof ExecutorThrottledError) await this.opts.governor.throttled();
      throw err;
    }
  }
}
