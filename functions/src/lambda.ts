// AWS entry: API Gateway HTTP API (payload v2) and the function's own function URL (the same
// format) -> Hono. Clients are built once per container from environment variables
// (docs/LOCAL-STACK.md) and reused across invocations.
import { Logger } from "@aws-lambda-powertools/logger";
import { handle } from "hono/aws-lambda";
import { createApp } from "./app.js";
import { API_ENV, configFromEnv } from "./config.js";
import { buildDeps } from "./deps.js";
import { functionUrlAccessFields, type HttpEventContext, isFunctionUrlEvent } from "./function-url.js";
import { fitLambdaResult, isContentTypeBinary } from "./http/fit-lambda-result.js";
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

// The JSON Lines export is text (hono would send it base64-encoded, a third larger).
const honoHandler = handle(app, { isContentTypeBinary });

/**
 * One invocation: the app's answer, fitted to Lambda's response limit. A request that came through
 * the function URL gets the access line API Gateway's stage writes for the HTTP API (function-url.ts),
 * at INFO, so `LOG_LEVEL` WARN turns it off as it does the API's own request lines.
 */
export const handler = async (
  event: Parameters<typeof honoHandler>[0],
  context?: Parameters<typeof honoHandler>[1],
) => {
  const startMs = performance.now();
  const result = fitLambdaResult(await honoHandler(event, context), (refused) =>
    logger.error("response over Lambda's limit", { ...refused }),
  );
  const http = event as HttpEventContext;
  if (isFunctionUrlEvent(http)) {
    logger.info("access", { ...functionUrlAccessFields(http, result, performance.now() - startMs) });
  }
  return result;
};
