// AWS entry: API Gateway HTTP API (payload v2) -> Hono. Clients are built once per container from
// environment variables (docs/LOCAL-STACK.md) and reused across invocations.
import { Logger } from "@aws-lambda-powertools/logger";
import { handle } from "hono/aws-lambda";
import { createApp } from "./app.js";
import { API_ENV, configFromEnv } from "./config.js";
import { buildDeps } from "./deps.js";
import { fitStepBody } from "./http/fit-step-body.js";
import { webAssets } from "./web-assets.js";

const config = configFromEnv({ [API_ENV.auth]: "on", ...process.env });
const dynamodbEndpoint = process.env[API_ENV.dynamodbEndpoint];
const executorEndpoint = process.env[API_ENV.executorEndpoint];
const deps = buildDeps({
  config,
  ...(dynamodbEndpoint ? { dynamodbEndpoint } : {}),
  ...(executorEndpoint ? { executorEndpoint } : {}),
});

// JSON lines with the service name and level from POWERTOOLS_SERVICE_NAME / LOG_LEVEL (set by infra/).
const logger = new Logger({ serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? "coding-env-api" });

export const app = createApp({ ...deps, webAssets, logger });

/** Largest response a Lambda function may return (6 MB), less room for what the runtime adds. */
export const LAMBDA_RESPONSE_LIMIT_BYTES = 6 * 1024 * 1024 - 16 * 1024;

interface LambdaResult {
  statusCode: number;
  body: string;
  headers?: Record<string, unknown>;
  isBase64Encoded?: boolean;
}

/**
 * The result within Lambda's response limit, as its JSON envelope counts it (the body is a string
 * in it, so its quotes and backslashes are escaped once more): a step's answer over it gives way in
 * its long strings (http/fit-step-body.ts; the step is stored whole); any other answer over it,
 * which the API's own bounds should make impossible, becomes a 500 in the one error shape.
 */
export function fitLambdaResult<R extends LambdaResult>(result: R): R {
  const bodySize = (text: string) => Buffer.byteLength(JSON.stringify(text), "utf8") - 2;
  if (result.isBase64Encoded) return result;
  const overhead = Buffer.byteLength(JSON.stringify({ ...result, body: "" }), "utf8");
  // A character costs at most 6 bytes in the envelope (`\u0001`): a usual answer is measured by its
  // length alone, so only one that could pass the limit is serialized once more to count its bytes.
  const room = LAMBDA_RESPONSE_LIMIT_BYTES - overhead;
  if (6 * result.body.length <= room || bodySize(result.body) <= room) return result;
  let parsed: unknown;
  try {
    parsed = JSON.parse(result.body);
  } catch {
    parsed = undefined;
  }
  const headers = { ...result.headers };
  delete headers["content-length"];
  const fitted = fitStepBody(
    parsed,
    (data) => data,
    LAMBDA_RESPONSE_LIMIT_BYTES - overhead,
    bodySize,
    "lambda_response_limit",
  );
  if (fitted !== undefined) return { ...result, headers, body: fitted } as R;
  logger.error("response over Lambda's limit", { statusCode: result.statusCode });
  return {
    ...result,
    statusCode: 500,
    headers: { ...headers, "content-type": "application/json" },
    body: JSON.stringify({ error: { code: "internal_error", message: "Internal error." } }),
  } as R;
}

const honoHandler = handle(app);
export const handler = async (
  event: Parameters<typeof honoHandler>[0],
  context?: Parameters<typeof honoHandler>[1],
) => fitLambdaResult(await honoHandler(event, context));
