// What a trivial step costs in AWS, from what the API's code actually reads and writes: the
// episode service runs `print(1)` steps against a local stack's DynamoDB and executor, and the
// repository counts the request units DynamoDB would bill (item sizes under DynamoDB's rules,
// functions/src/store/item-size.ts). The rest of the bill uses docs/DEPLOY.md's prices and
// assumptions; docs/DEPLOY.md's cost table is derived from this output. Two doors: the HTTP API
// (API Gateway) and the API function's function URL (no per-request charge of its own).
import { randomUUID } from "node:crypto";
import { configFromEnv } from "../../functions/src/config.js";
import { buildDeps } from "../../functions/src/deps.js";
import { functionUrlAccessFields } from "../../functions/src/function-url.js";
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

/**
 * The API's access line of a trivial step through the function URL, as its logger writes it
 * (typical values, as for the stage's line in {@link ASSUMED}).
 */
export const FUNCTION_URL_ACCESS_LINE_EXAMPLE = {
  level: "INFO",
  message: "access",
  timestamp: "2026-12-02T09:00:00.000Z",
  service: "coding-env-api",
  sampling_rate: 0,
  xray_trace_id: "1-6745a1b2-0123456789abcdef01234567",
  ...functionUrlAccessFields(
    {
      rawPath: "/step",
      requestContext: {
        requestId: "4c1c8a3e-9f0b-4d4e-8a52-3f2e1d0c9b8a",
        http: { method: "POST", sourceIp: "203.0.113.10" },
      },
    },
    { statusCode: 200, body: "x".repeat(254) },
    35,
  ),
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
  /**
   * Through the function URL there is no stage access log: the API writes its own access line
   * (functions/src/function-url.ts) through its JSON logger, which adds its level, message, time,
   * service, sampling rate and the invocation's trace id; plus CloudWatch's 26 bytes per event.
   * infra/test/function-url-bundle.test.ts checks the bundle writes exactly this line's fields.
   */
  functionUrlLogBytesPerStep: Buffer.byteLength(JSON.stringify(FUNCTION_URL_ACCESS_LINE_EXAMPLE)) + 26,
};

/** The two HTTP doors of a deployment (docs/DEPLOY.md, "Two doors for HTTP"). */
export type Door = "http_api" | "function_url";

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

/**
 * Dollars per million trivial steps through `door`, item by item (docs/DEPLOY.md's formula): the
 * function URL has no API Gateway item, and its log line is the API's own access line.
 */
export function costPerMillion(
  units: StepUnits,
  door: Door = "http_api",
): { lines: CostLine[]; total: number } {
  const gbs = (gb: number, ms: number) => gb * (ms / 1000) * PRICES.lambdaGbSecond * 1e6;
  const logBytes = door === "http_api" ? ASSUMED.logBytesPerStep : ASSUMED.functionUrlLogBytesPerStep;
  const lines: CostLine[] = [
    ...(door === "http_api"
      ? [{ item: "API Gateway HTTP API", dollarsPerMillion: PRICES.apiGatewayPerMillion }]
      : []),
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
      item: `logs (${logBytes} B${door === "http_api" ? ", stage access log" : ", the API's access line"})`,
      dollarsPerMillion: (logBytes * 1e6 * PRICES.logsPerGb) / 1e9,
    },
  ];
  return { lines, total: lines.reduce((n, l) => n + l.dollarsPerMillion, 0) };
}
