/**
 * Hosted mode: API keys, tenant resolution, usage metering and quotas. See `README.md` here for
 * how the API wires these into its routes and transactions.
 */
export * from "./active-episodes.js";
export * from "./auth.js";
export * from "./errors.js";
export * from "./hosted.js";
export * from "./keys.js";
export * from "./metering.js";
export * from "./quotas.js";
export * from "./step-limits.js";
export * from "./usage.js";
