// AWS entry: API Gateway HTTP API (payload v2) -> Hono. Clients are built once per container from
// environment variables (docs/LOCAL-STACK.md) and reused across invocations.
import { Logger } from "@aws-lambda-powertools/logger";
import { handle } from "hono/aws-lambda";
import { createApp } from "./app.js";
import { configFromEnv } from "./config.js";
import { buildDeps } from "./deps.js";
import { webAssets } from "./web-assets.js";

const config = configFromEnv({ CODING_ENV_AUTH: "on", ...process.env });
const deps = buildDeps({
  config,
  ...(process.env.CODING_ENV_DYNAMODB_ENDPOINT
    ? { dynamodbEndpoint: process.env.CODING_ENV_DYNAMODB_ENDPOINT }
    : {}),
  ...(process.env.CODING_ENV_EXECUTOR_ENDPOINT
    ? { executorEndpoint: process.env.CODING_ENV_EXECUTOR_ENDPOINT }
    : {}),
});

// JSON lines with the service name and level from POWERTOOLS_SERVICE_NAME / LOG_LEVEL (set by infra/).
const logger = new Logger({ serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? "coding-env-api" });

export const app = createApp({ ...deps, webAssets, logger });
export const handler = handle(app);
