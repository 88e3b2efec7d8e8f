import { describe, expect, it } from "vitest";
import {
  applyQuotaOverrides,
  BUILT_IN_QUOTAS,
  checkStateSize,
  checkStepTimeout,
  QuotaExceededError,
  quotaDefaultsFromEnv,
  quotaOverridesFromWire,
  quotaOverridesToWire,
  StateQuotaExceededError,
} from "../../functions/src/tenancy/index.js";

describe("quota defaults", () => {
  it("uses the built-in defaults when nothing is set", () => {
    expect(quotaDefaultsFromEnv({})).toEqual(BUILT_IN_QUOTAS);
  });

  it("reads each CODING_ENV_QUOTA_* variable", () => {
    expect(
      quotaDefaultsFromEnv({
        CODING_ENV_QUOTA_STEPS_PER_DAY: "500",
        CODING_ENV_QUOTA_ACTIVE_EPISODES: "4",
        CODING_ENV_QUOTA_MAX_STATE_BYTES: "1000",
        CODING_ENV_QUOTA_MAX_STEP_TIMEOUT_S: "2.5",
        CODING_ENV_QUOTA_CONCURRENT_STEPS: "3",
      }),
    ).toEqual({
      stepsPerDay: 500,
      activeEpisodes: 4,
      maxStateBytes: 1000,
      maxStepTimeoutS: 2.5,
      concurrentSteps: 3,
    });
  });

  it("fails fast on a malformed value instead of silently dropping a quota", () => {
    for (const bad of ["", "0", "-1", "1.5", "lots"]) {
      expect(() => quotaDefaultsFromEnv({ CODING_ENV_QUOTA_STEPS_PER_DAY: bad })).toThrow(
        /CODING_ENV_QUOTA_STEPS_PER_DAY/,
      );
    }
  });
});

describe("per-key overrides", () => {
  it("override only the quotas they name", () => {
    expect(applyQuotaOverrides(BUILT_IN_QUOTAS, { stepsPerDay: 3 })).toEqual({
      ...BUILT_IN_QUOTAS,
      stepsPerDay: 3,
    });
    expect(applyQuotaOverrides(BUILT_IN_QUOTAS, undefined)).toBe(BUILT_IN_QUOTAS);
  });

  it("round-trip through their wire names and reject bad values", () => {
    const wire = { steps_per_day: 10, active_episodes: 2, max_state_bytes: 99, max_step_timeout_s: 1.5 };
    const overrides = quotaOverridesFromWire(wire);
    expect(overrides).toEqual({
      stepsPerDay: 10,
      activeEpisodes: 2,
      maxStateBytes: 99,
      maxStepTimeoutS: 1.5,
    });
    expect(quotaOverridesToWire(overrides)).toEqual(wire);
    expect(() => quotaOverridesFromWire({ steps_per_day: 0 })).toThrow(/steps_per_day/);
    expect(() => quotaOverridesFromWire({ active_episodes: "x" })).toThrow(/active_episodes/);
  });
});

describe("value checks", () => {
  const quotas = { ...BUILT_IN_QUOTAS, maxStateBytes: 1000, maxStepTimeoutS: 10 };

  it("413 state_too_large above max_state_bytes, nothing at the limit", () => {
    expect(() => checkStateSize(1000, quotas)).not.toThrow();
    let err: unknown;
    try {
      checkStateSize(1001, quotas);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(StateQuotaExceededError);
    expect((err as StateQuotaExceededError).status).toBe(413);
    expect((err as StateQuotaExceededError).code).toBe("state_too_large");
    expect((err as StateQuotaExceededError).details).toMatchObject({ quota: "max_state_bytes", limit: 1000 });
  });

  it("429 quota_exceeded above max_step_timeout_s, with no Retry-After (it never resets)", () => {
    expect(() => checkStepTimeout(10, quotas)).not.toThrow();
    expect(() => checkStepTimeout(undefined, quotas)).not.toThrow();
    let err: unknown;
    try {
      checkStepTimeout(10.5, quotas);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(QuotaExceededError);
    const q = err as QuotaExceededError;
    expect(q.status).toBe(429);
    expect(q.details).toEqual({ quota: "max_step_timeout_s", limit: 10, resets_at: null });
    expect(q.headers).toEqual({});
    expect(q.message).toMatch(/max_step_timeout_s/);
  });
});
