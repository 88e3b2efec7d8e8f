import { API_ENV } from "../config.js";
import { QuotaExceededError, StateQuotaExceededError } from "./errors.js";

/** A tenant's limits. All are positive; units are in the names; `Infinity` = unlimited (local tenant only). */
export interface QuotaLimits {
  /** Steps per UTC day (rolled up from the change stream; may overshoot a little, see step-limits.ts). */
  readonly stepsPerDay: number;
  /** Episodes alive at once (not deleted, not expired). */
  readonly activeEpisodes: number;
  /** Size of one episode's stored Python state (the executor's snapshot), in bytes. */
  readonly maxStateBytes: number;
  /** Largest per-step timeout a tenant may ask for (`step_timeout_s` on reset, `timeout_s` on step). */
  readonly maxStepTimeoutS: number;
  /** Steps of the tenant running at once in one API instance. */
  readonly concurrentSteps: number;
}

/** Per-key overrides of the deployment's defaults (stored on the key item). */
export type QuotaOverrides = Partial<QuotaLimits>;

/** Built-in defaults, used when the corresponding environment variable is unset. */
export const BUILT_IN_QUOTAS: QuotaLimits = Object.freeze({
  stepsPerDay: 10_000,
  activeEpisodes: 50,
  maxStateBytes: 2 * 1024 * 1024,
  maxStepTimeoutS: 300,
  concurrentSteps: 32,
});

/** Environment variable of each quota's deployment default. */
export const QUOTA_ENV: Readonly<Record<keyof QuotaLimits, string>> = Object.freeze({
  stepsPerDay: API_ENV.quotaStepsPerDay,
  activeEpisodes: API_ENV.quotaActiveEpisodes,
  maxStateBytes: API_ENV.quotaMaxStateBytes,
  maxStepTimeoutS: API_ENV.quotaMaxStepTimeoutS,
  concurrentSteps: API_ENV.quotaConcurrentSteps,
});

/** Snake-case names used in key items, the CLI and `details.quota`. */
export const QUOTA_WIRE_NAMES: Readonly<Record<keyof QuotaLimits, string>> = Object.freeze({
  stepsPerDay: "steps_per_day",
  activeEpisodes: "active_episodes",
  maxStateBytes: "max_state_bytes",
  maxStepTimeoutS: "max_step_timeout_s",
  concurrentSteps: "concurrent_steps",
});

export const QUOTA_KEYS = Object.keys(BUILT_IN_QUOTAS) as (keyof QuotaLimits)[];

/**
 * Largest `activeEpisodes` quota: the tenant's active-episode ids live in one DynamoDB item (at most
 * 400 KB), see `active-episodes.ts`.
 */
export const MAX_ACTIVE_EPISODES_QUOTA = 5_000;

function parseLimit(name: string, raw: string, integer: boolean, max = Number.MAX_SAFE_INTEGER): number {
  const value = Number(raw);
  if (raw.trim() === "" || !Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) {
    throw new Error(`${name} must be a positive ${integer ? "integer" : "number"}, got '${raw}'.`);
  }
  if (value > max) throw new Error(`${name} must be at most ${max}, got '${raw}'.`);
  return value;
}

const maxOf = (key: keyof QuotaLimits) =>
  key === "activeEpisodes" ? MAX_ACTIVE_EPISODES_QUOTA : Number.MAX_SAFE_INTEGER;

/**
 * The deployment's default quotas from the environment; fails fast on a malformed value so a typo in
 * the deployment does not silently disable a quota.
 *
 * @example quotaDefaultsFromEnv({ CODING_ENV_QUOTA_STEPS_PER_DAY: "500" }).stepsPerDay // 500
 */
export function quotaDefaultsFromEnv(env: Record<string, string | undefined> = process.env): QuotaLimits {
  const out: Record<string, number> = {};
  for (const key of QUOTA_KEYS) {
    const raw = env[QUOTA_ENV[key]];
    out[key] =
      raw === undefined
        ? BUILT_IN_QUOTAS[key]
        : parseLimit(QUOTA_ENV[key], raw, key !== "maxStepTimeoutS", maxOf(key));
  }
  return out as unknown as QuotaLimits;
}

/**
 * Quotas of the `local` tenant (auth off): only the quotas set explicitly in the environment apply,
 * the others are unlimited (`Infinity`), so the local stack, its tests and benchmarks are not throttled.
 */
export function localQuotasFromEnv(env: Record<string, string | undefined> = process.env): QuotaLimits {
  const configured = quotaDefaultsFromEnv(env);
  const out: Record<string, number> = {};
  for (const key of QUOTA_KEYS)
    out[key] = env[QUOTA_ENV[key]] === undefined ? Number.POSITIVE_INFINITY : configured[key];
  return out as unknown as QuotaLimits;
}

/** Defaults with a key's overrides applied (unknown or invalid override values are ignored). */
export function applyQuotaOverrides(
  defaults: QuotaLimits,
  overrides: QuotaOverrides | undefined,
): QuotaLimits {
  if (!overrides) return defaults;
  const out: Record<string, number> = { ...defaults };
  for (const key of QUOTA_KEYS) {
    const value = overrides[key];
    if (typeof value === "number" && Number.isFinite(value) && value > 0 && value <= maxOf(key))
      out[key] = value;
  }
  return out as unknown as QuotaLimits;
}

/** Parses `{ steps_per_day: 5, ... }` (wire names) into overrides; throws on a bad value. */
export function quotaOverridesFromWire(wire: Record<string, unknown>): QuotaOverrides {
  const out: Record<string, number> = {};
  for (const key of QUOTA_KEYS) {
    const value = wire[QUOTA_WIRE_NAMES[key]];
    if (value === undefined || value === null) continue;
    out[key] = parseLimit(QUOTA_WIRE_NAMES[key], String(value), key !== "maxStepTimeoutS", maxOf(key));
  }
  return out as QuotaOverrides;
}

/** Overrides to wire names (for storage and display). */
export function quotaOverridesToWire(overrides: QuotaOverrides): Record<string, number> {
  const out: Record<string, number> = {};
  for (const key of QUOTA_KEYS) {
    const value = overrides[key];
    if (value !== undefined) out[QUOTA_WIRE_NAMES[key]] = value;
  }
  return out;
}

/** 413 when a state snapshot is over the tenant's `max_state_bytes`. Check before committing a step. */
export function checkStateSize(stateBytes: number, quotas: QuotaLimits): void {
  if (stateBytes > quotas.maxStateBytes) throw new StateQuotaExceededError(stateBytes, quotas.maxStateBytes);
}

/**
 * 429 `quota_exceeded` (`max_step_timeout_s`) when a requested per-step timeout is over the tenant's
 * limit. Check `step_timeout_s` on reset and `timeout_s` on step before running anything.
 */
export function checkStepTimeout(requestedS: number | undefined, quotas: QuotaLimits): void {
  if (requestedS === undefined || requestedS <= quotas.maxStepTimeoutS) return;
  throw new QuotaExceededError({
    quota: "max_step_timeout_s",
    limit: quotas.maxStepTimeoutS,
    resetsAt: null,
    message:
      `Requested step timeout ${requestedS} s is over quota 'max_step_timeout_s' (${quotas.maxStepTimeoutS} s); ` +
      "this quota does not reset: ask for a shorter timeout.",
  });
}
