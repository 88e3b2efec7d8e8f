// What a trivial step costs in AWS, from what the API's code actually reads and writes: the
// episode service runs `print(1)` steps against a local stack's DynamoDB and executor, and the
// repository counts the request units DynamoDB would bill (item sizes under DynamoDB's rules,
// functions/src/store/item-size.ts). The rest of the bill uses docs/DEPLOY.md's prices and
// assumptions; docs/DEPLOY.md's cost table is derived from this output.
import { randomUUID } from "node:crypto";
import { configFromEnv } from "../../functions/src/config.js";
import { buildDeps } from "../../functions/src/deps.js";
import type { LocalStack } from "../../functions/src/local/stack.js";

/** us-east-1 on-demand prices (docs/DEPLOY.md). */
export const PRICES = {
  apiGatewayPerMillion: 1.0,
  lambdaRequestsPerMillion: 0.2,
  lambdaGbSecond: 0.0000133334,
  readUnitPerMillion: 0.125,
  writeUnitPerMillion: 0.625,
  logsPerGb: 0.5,
};

/** Assumptions that cannot be measured without AWS (docs/DEPLOY.md). */
export const ASSUMED = {
  executorGb: 1,
  apiGb: 0.5,
  /** Lambda bills the executor's ~0.6 ms as 1 ms. */
  executorBilledMs: 1,
  /** In-region Invoke + DynamoDB round trips beside the executor. */
  apiMs: 30,
  /**
   * API Gateway's access log line (the template's format, typical values) plus CloudWatch's 26
   * bytes per event. A successful request has no line of the API's own (it logs them at DEBUG)
   * and Lambda's platform lines are off (system log level WARN).
   */
  logBytesPerStep:
    Buffer.byteLength(
      JSON.stringify({
        requestId: "Fv2xsiwJoAMEMsA=",
        ip: "203.0.113.10",
        method: "POST",
        path: "/step",
        routeKey: "$default",
        status: 200,
        latencyMs: 35,
        integrationLatency: 34,
        integrationError: "-",
        responseLength: "254",
      }),
    ) + 26,
};

export interface StepUnits {
  readonly steps: number;
  readonly readsPerStep: number;
  readonly writesPerStep: number;
  readonly readUnitsPerStep: number;
  readonly writeUnitsPerStep: number;
}

export interface CostLine {
  readonly item: string;
  readonly dollarsPerMillion: number;
}

/** Runs `steps` trivial steps through the episode service and returns the units per step. */
export async function measureStepUnits(
  stack: LocalStack,
  opts: { readonly steps: number; readonly withRequestId: boolean },
): Promise<StepUnits> {
  const config = configFromEnv({ CODING_ENV_AUTH: "off", CODING_ENV_TABLE: stack.tableName });
  const deps = buildDeps({
    config,
    dynamodbEndpoint: stack.dynamodbEndpoint,
    executorEndpoint: stack.executorEndpoint,
    localCredentials: stack.credentials,
    env: {},
  });
  try {
    const { episode_id: id } = await deps.episodes.reset("local", {});
    const step = () =>
      deps.episodes.step("local", id, {
        code: "print(1)",
        ...(opts.withRequestId ? { request_id: randomUUID() } : {}),
      });
    // Warm up: the recent request ids fill up (their size is part of every later step's items).
    for (let i = 0; i < 20; i++) await step();
    const before = { ...deps.store.stats };
    for (let i = 0; i < opts.steps; i++) await step();
    const after = deps.store.stats;
    const per = (k: keyof typeof before) => (after[k] - before[k]) / opts.steps;
    return {
      steps: opts.steps,
      readsPerStep: per("reads"),
      writesPerStep: per("writes"),
      readUnitsPerStep: per("readUnits"),
      writeUnitsPerStep: per("writeUnits"),
    };
  } finally {
    deps.destroy();
  }
}

/** Dollars per million trivial steps, item by item (docs/DEPLOY.md's formula). */
export function costPerMillion(units: StepUnits): { lines: CostLine[]; total: number } {
  const gbs = (gb: number, ms: number) => gb * (ms / 1000) * PRICES.lambdaGbSecond * 1e6;
  const lines: CostLine[] = [
    { item: "API Gateway HTTP API", dollarsPerMillion: PRICES.apiGatewayPerMillion },
    { item: "Lambda requests (API + executor)", dollarsPerMillion: 2 * PRICES.lambdaRequestsPerMillion },
    {
      item: "executor duration (1 GB, 1 ms)",
      dollarsPerMillion: gbs(ASSUMED.executorGb, ASSUMED.executorBilledMs),
    },
    { item: "API duration (0.5 GB, 30 ms)", dollarsPerMillion: gbs(ASSUMED.apiGb, ASSUMED.apiMs) },
    {
      item: `DynamoDB reads (${units.readUnitsPerStep} RRU)`,
      dollarsPerMillion: units.readUnitsPerStep * PRICES.readUnitPerMillion,
    },
    {
      item: `DynamoDB writes (${units.writeUnitsPerStep} WRU)`,
      dollarsPerMillion: units.writeUnitsPerStep * PRICES.writeUnitPerMillion,
    },
    {
      item: `logs (${ASSUMED.logBytesPerStep} B)`,
      dollarsPerMillion: (ASSUMED.logBytesPerStep * 1e6 * PRICES.logsPerGb) / 1e9,
    },
  ];
  return { lines, total: lines.reduce((n, l) => n + l.dollarsPerMillion, 0) };
}
