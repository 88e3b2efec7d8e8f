// What the core asks of hosted mode (functions/src/tenancy/): slots of the active-episode quota,
// limits checked before a step runs, and the tenant's state limit. Metering is not here: every
// execution is kept by the repository with its usage and rolled up from the table's stream.

/** What {@link EpisodeTenancyHooks.reserveEpisodeSlot} knows of a reset, fork or delete. */
export interface EpisodeSlotCtx {
  readonly tenantId: string;
  readonly episodeId: string;
  readonly nowMs: number;
}
/** What {@link EpisodeTenancyHooks.beginStep} knows before the executor runs. */
export interface BeforeStepCtx {
  readonly tenantId: string;
  readonly nowMs: number;
}
/** What {@link EpisodeTenancyHooks.checkState} knows of a step's new state. */
export interface StateCtx {
  readonly tenantId: string;
  readonly stateBytes: number;
}

/**
 * What hosted mode (`functions/src/tenancy/`) needs around the core's operations. Metering is not
 * here: every execution is kept by the repository with its usage (committed steps with their
 * record, the others as execution records) and rolled up from the table's change stream.
 */
export interface EpisodeTenancyHooks {
  /** Before a reset or fork creates `episodeId`: takes a slot of the active-episode quota (429). */
  reserveEpisodeSlot(ctx: EpisodeSlotCtx): Promise<void>;
  /** After a delete: gives the slot back. */
  releaseEpisodeSlot(ctx: EpisodeSlotCtx): Promise<void>;
  /**
   * Before the executor runs: may refuse the step (daily steps, concurrent steps: 429).
   * @returns called once when the step has ended, whatever its outcome
   */
  beginStep(ctx: BeforeStepCtx): Promise<() => void>;
  /** The step's new state against the tenant's limit (413); the execution is metered first. */
  checkState(ctx: StateCtx): void;
  /** The per-step limit a reset may use (may throw a quota error). @default the request's or the deployment default */
  stepTimeoutForReset?(tenantId: string, requestedS: number | undefined, deploymentDefaultS: number): number;
  /**
   * Ids of the tenant's episodes that may be alive (a superset: expired or deleted ones may linger),
   * for `GET /episodes`. @default none: the server cannot list episodes (empty list)
   */
  listEpisodeIds?(tenantId: string): Promise<string[]>;
}

export const noTenancy: EpisodeTenancyHooks = {
  reserveEpisodeSlot: async () => {},
  releaseEpisodeSlot: async () => {},
  beginStep: async () => () => {},
  checkState: () => {},
};
