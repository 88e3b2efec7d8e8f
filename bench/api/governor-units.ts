// What the executor governor (functions/src/admission/executor-governor.ts) adds to a trivial step's
// DynamoDB bill, measured like cost.ts measures the step itself: the episode service runs
// `print(1)` steps against a local stack with the governor on, and both the episode repository and
// the governor's store count the request units DynamoDB would bill. Normal mode (the executor not
// contended): only the cached flag read, once per check interval per API instance. Governed mode
// (after a throttle): a slot taken and given back per step.
import { randomUUID } from "node:crypto";
import { configFromEnv } from "../../functions/src/config.js";
import { buildDeps } from "../../functions/src/deps.js";
import type { LocalStack } from "../../functions/src/local/stack.js";

export interface GovernorUnits {
  readonly steps: number;
  /** The step's own units (episode repository) per step. */
  readonly stepReadUnits: number;
  readonly stepWriteUnits: number;
  /** The governor's units (flag reads and writes, slots) per step. */
  readonly governorReadUnits: number;
  readonly governorWriteUnits: number;
}

/** Runs `steps` trivial steps (with `request_id`) with the governor on, normal or governed. */
export async function measureGovernorUnits(
  stack: LocalStack,
  opts: { readonly steps: number; readonly governed: boolean },
): Promise<GovernorUnits> {
  // Keys off (one tenant, `local`) with a concurrent-steps quota, so the tenant has a cap; the
  // governor is on as in a keyed deployment.
  const env = { CODING_ENV_QUOTA_CONCURRENT_STEPS: "8" };
  const config = configFromEnv({
    CODING_ENV_AUTH: "off",
    CODING_ENV_TABLE: stack.tableName,
    CODING_ENV_EXECUTOR_GOVERNOR: "on",
    ...env,
  });
  const deps = buildDeps({
    config,
    dynamodbEndpoint: stack.dynamodbEndpoint,
    executorEndpoint: stack.executorEndpoint,
    localCredentials: stack.credentials,
    env,
  });
  const governor = deps.executorGovernor;
  if (!governor) throw new Error("the executor governor is off");
  try {
    const { episode_id: id } = await deps.episodes.reset("local", {});
    const step = () => deps.episodes.step("local", id, { code: "print(1)", request_id: randomUUID() });
    for (let i = 0; i < 20; i++) await step();
    // Governed: as after a throttle (the flag marked for 30 s, longer than the run).
    if (opts.governed) await governor.governor.throttled();
    const before = { step: { ...deps.store.stats }, governor: { ...governor.store.stats } };
    for (let i = 0; i < opts.steps; i++) await step();
    const per = (after: number, was: number) => +((after - was) / opts.steps).toFixed(4);
    const result = {
      steps: opts.steps,
      stepReadUnits: per(deps.store.stats.readUnits, before.step.readUnits),
      stepWriteUnits: per(deps.store.stats.writeUnits, before.step.writeUnits),
      governorReadUnits: per(governor.store.stats.readUnits, before.governor.readUnits),
      governorWriteUnits: per(governor.store.stats.writeUnits, before.governor.writeUnits),
    };
    return result;
  } finally {
    deps.destroy();
  }
}
