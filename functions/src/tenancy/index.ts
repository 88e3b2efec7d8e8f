/**
 * Hosted mode: API keys, tenant resolution, usage metering and quotas. Storage is behind the ports
 * of `repositories.ts` (DynamoDB adapters in ../store/). See `README.md` here.
 */
export * from "./active-episodes.js";
export * from "./auth.js";
export * from "./errors.js";
export * from "./hosted.js";
export * from "./keys.js";
export * from "./metering.js";
export * from "./quotas.js";
export * from "./repositories.js";
export * from "./step-limits.js";
export * from "./usage.js";
