// Admission of steps (issue 10 point 7): a step takes a slot of a FairQueue before its first store
// read, so a flooding tenant's excess waits in its own bounded queue, doing no work, instead of
// loading its episode and then queueing at the executor, and is answered 429
// `too_many_concurrent_steps` (Retry-After) beyond that queue. Another tenant's step is admitted at
// once (or takes the next freed slot, ahead of every waiting step of the flooder), and once admitted
// it shares the DynamoDB front, the executor and the CPU with at most `tenantMaxRunning` steps of
// each other tenant. The hook sits in the core's `beginStep`, after the one-step-per-episode check
// (409, no queue slot spent) and the tenancy quotas (429, cheapest refusals first), so HTTP and
// WebSocket steps are admitted alike.
//
// With N API instances behind one proxy (the local stack's `CODING_ENV_API_INSTANCES`, requests
// spread in turn) each instance takes 1/N of a tenant's caps, rounded up: a tenant runs at most
// N * ceil(cap / N) steps at once in all. In AWS an API Lambda instance serves one request at a time,
// so there the caps do not bind (docs/DEPLOY.md, "Fair sharing").
import type { ApiConfig } from "../config.js";
import type { EpisodeTenancyHooks } from "../core/tenancy-hooks.js";
import { currentDeadline } from "../executor/deadline.js";
import type { FairQueue, FairQueueLimits } from "./fair-queue.js";

/** The admission queue's limits in one API instance, from the deployment's settings. */
export function admissionLimits(
  config: Pick<
    ApiConfig,
    "tenantMaxRunningSteps" | "tenantMaxWaitingSteps" | "maxStepsInFlight" | "apiInstances" | "authRequired"
  >,
): FairQueueLimits {
  const instances = Math.max(1, config.apiInstances ?? 1);
  const share = (n: number) => Math.max(1, Math.ceil(n / instances));
  const maxRunning = config.maxStepsInFlight ?? DEFAULT_MAX_STEPS_IN_FLIGHT;
  return {
    maxRunning,
    // Keys off: one tenant (`local`) has the stack to itself, and nobody to be fair to.
    tenantMaxRunning: config.authRequired ? share(config.tenantMaxRunningSteps) : maxRunning,
    tenantMaxWaiting: share(config.tenantMaxWaitingSteps),
    // Waiting here costs nothing (no read, no connection): up to the request's deadline, or 30 s.
    maxWaitMs: ADMISSION_MAX_WAIT_MS,
  };
}

/** Longest wait for admission when the request has no sooner deadline (the local stack). */
export const ADMISSION_MAX_WAIT_MS = 30_000;

/**
 * Steps admitted at once in one API process, all tenants, when unset: as many as it makes executor
 * calls at once, so an admitted step never waits for an executor slot after its store read.
 */
export const DEFAULT_MAX_STEPS_IN_FLIGHT = 64;

/**
 * The core's tenancy hooks with admission added to `beginStep`: the inner hooks' checks first, then
 * a slot of `queue` for the rest of the step (given back when the step ends, however it ends).
 */
export function admitSteps(hooks: EpisodeTenancyHooks, queue: FairQueue): EpisodeTenancyHooks {
  const admitted: EpisodeTenancyHooks = {
    reserveEpisodeSlot: (ctx) => hooks.reserveEpisodeSlot(ctx),
    releaseEpisodeSlot: (ctx) => hooks.releaseEpisodeSlot(ctx),
    checkState: (ctx) => hooks.checkState(ctx),
    beginStep: async (ctx) => {
      const end = await hooks.beginStep(ctx);
      let release: () => void;
      try {
        release = await queue.acquire(ctx.tenantId, currentDeadline());
      } catch (err) {
        end();
        throw err;
      }
      return () => {
        release();
        end();
      };
    },
  };
  if (hooks.stepTimeoutForReset) admitted.stepTimeoutForReset = hooks.stepTimeoutForReset.bind(hooks);
  if (hooks.listEpisodeIds) admitted.listEpisodeIds = hooks.listEpisodeIds.bind(hooks);
  return admitted;
}
