// Test helpers for the Node.js functions exactly as `cdk deploy` uploads them: the staged esbuild
// bundle of a function of a synthesized stack, loaded by a plain `node` process outside the
// repository (no node_modules to fall back on), invoked with events in order, with the environment
// the template gives the function plus what the Lambda runtime sets.
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { LocalStack } from "../../functions/src/local/stack.js";
import { dynamoDbApiKeyStore } from "../../functions/src/store/dynamodb-api-keys.js";
import { onlyResource, propsOf, type SynthesizedAssembly, serviceOf } from "./synth.js";

const run = promisify(execFile);

/**
 * What a staged API or WebSocket bundle needs to reach a local stack's parts instead of AWS's: the
 * endpoint overrides the bundle honours (the same SDK clients as in AWS), the table, an executor
 * ARN, and the stack's start-up secret (its DynamoDB and executor refuse any other key id).
 */
export function localStackBundleEnv(stack: LocalStack): Record<string, string> {
  return {
    CODING_ENV_TABLE: stack.tableName,
    CODING_ENV_EXECUTOR_FUNCTION: "arn:aws:lambda:us-east-1:123456789012:function:coding-env-executor",
    CODING_ENV_DYNAMODB_ENDPOINT: stack.dynamodbEndpoint,
    CODING_ENV_EXECUTOR_ENDPOINT: stack.executorEndpoint,
    CODING_ENV_LOCAL_ACCESS_KEY_ID: stack.credentials.accessKeyId,
    CODING_ENV_LOCAL_SECRET_ACCESS_KEY: stack.credentials.secretAccessKey,
  };
}

/** Creates a real API key for `tenantId` in a local stack's table (keys on) and returns it. */
export async function createStackKey(stack: LocalStack, tenantId: string, name?: string): Promise<string> {
  const client = new DynamoDBClient({
    endpoint: stack.dynamodbEndpoint,
    region: "us-east-1",
    credentials: stack.credentials,
  });
  try {
    const store = dynamoDbApiKeyStore({ client, tableName: stack.tableName });
    return (await store.create({ tenantId, ...(name !== undefined ? { name } : {}) })).key;
  } finally {
    client.destroy();
  }
}

/** A staged function bundle and the environment its template gives it. */
export interface StagedBundle {
  readonly path: string;
  /** The template's variables, CloudFormation references replaced by placeholders. */
  readonly env: Record<string, string>;
}

/** The bundle (`index.mjs`) and environment of the stack's function running as `service`. */
export function stagedBundle(s: SynthesizedAssembly, service: string): StagedBundle {
  const [, fn] = onlyResource(s.json, "AWS::Lambda::Function", (r) => serviceOf(r) === service);
  const key = (propsOf(fn).Code as { S3Key: string }).S3Key;
  const path = join(s.outdir, `asset.${key.replace(/\.zip$/, "")}`, "index.mjs");
  const variables = (propsOf(fn).Environment as { Variables: Record<string, unknown> }).Variables;
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(variables)) {
    env[name] = typeof value === "string" ? value : `resolved-${name.toLowerCase()}`;
  }
  return { path, env };
}

// Runs inside the child: imports the bundle, invokes handler(event, context) for each event in
// order (read from a file: an event with a body of megabytes does not fit in an argument), prints
// the results after a marker.
const INVOKE_SCRIPT = `
const { readFileSync } = await import("node:fs");
const [bundle, events] = [process.argv[1], JSON.parse(readFileSync(process.argv[2], "utf8"))];
const { handler } = await import(bundle);
const context = {
  functionName: process.env.AWS_LAMBDA_FUNCTION_NAME, functionVersion: "$LATEST",
  invokedFunctionArn: "arn:aws:lambda:us-east-1:123456789012:function:" + process.env.AWS_LAMBDA_FUNCTION_NAME,
  memoryLimitInMB: "512", awsRequestId: "00000000-0000-4000-8000-000000000000",
  logGroupName: "/aws/lambda/test", logStreamName: "test", callbackWaitsForEmptyEventLoop: true,
  getRemainingTimeInMillis: () => 28000,
};
const results = [];
for (const event of events) results.push((await handler(event, context)) ?? null);
process.stdout.write("\\n@@RESULTS@@" + JSON.stringify(results));
`;

/** What one run of {@link invokeBundle} returned and printed. */
export interface BundleRun<T> {
  readonly results: T[];
  /** The JSON lines the bundle logged. */
  readonly logs: Record<string, unknown>[];
}

/** Invokes the bundle's handler with `events`, in one fresh `node` process (one cold container). */
export async function invokeBundle<T = unknown>(
  bundle: StagedBundle,
  events: readonly object[],
  envOverrides: Record<string, string> = {},
  functionName = "CodingEnv-Function",
): Promise<BundleRun<T>> {
  const eventsDir = mkdtempSync(join(tmpdir(), "coding-env-events-"));
  const eventsFile = join(eventsDir, "events.json");
  writeFileSync(eventsFile, JSON.stringify(events));
  const { stdout } = await run(
    process.execPath,
    ["--enable-source-maps", "--input-type=module", "-e", INVOKE_SCRIPT, bundle.path, eventsFile],
    {
      cwd: join(bundle.path, ".."),
      timeout: 90_000,
      maxBuffer: 64 * 1024 * 1024,
      env: {
        // The Lambda environment: the template's variables plus what the Lambda runtime sets.
        PATH: process.env.PATH ?? "",
        ...bundle.env,
        AWS_REGION: "us-east-1",
        AWS_DEFAULT_REGION: "us-east-1",
        AWS_LAMBDA_FUNCTION_NAME: functionName,
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE: "512",
        AWS_LAMBDA_FUNCTION_VERSION: "$LATEST",
        AWS_LAMBDA_LOG_FORMAT: "JSON",
        AWS_EXECUTION_ENV: "AWS_Lambda_nodejs22.x",
        AWS_ACCESS_KEY_ID: "AKIAIOSFODNN7EXAMPLE",
        AWS_SECRET_ACCESS_KEY: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        AWS_SESSION_TOKEN: "test",
        ...envOverrides,
      },
    },
  ).finally(() => rmSync(eventsDir, { recursive: true, force: true }));
  const marker = stdout.lastIndexOf("@@RESULTS@@");
  if (marker < 0) throw new Error(`no result in the bundle's output: ${stdout.slice(-2000)}`);
  const logs = stdout
    .slice(0, marker)
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  return { results: JSON.parse(stdout.slice(marker + "@@RESULTS@@".length)) as T[], logs };
}
