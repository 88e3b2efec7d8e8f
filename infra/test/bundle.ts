// Test helpers for the Node.js functions exactly as `cdk deploy` uploads them: the staged esbuild
// bundle of a function of a synthesized stack, loaded by a plain `node` process outside the
// repository (no node_modules to fall back on), invoked with events in order, with the environment
// the template gives the function plus what the Lambda runtime sets.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { LocalStack } from "../../functions/src/local/stack.js";
import { dynamoDbApiKeyStore } from "../../functions/src/store/dynamodb-api-keys.js";
import { onlyResource, propsOf, type SynthesizedAssembly, serviceOf } from "./synth.js";

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

// Runs inside the child: imports the bundle once (one container's cold start), then, for each line
// of stdin (a batch: its events, and the variables the Lambda runtime sets per invocation such as
// the trace header), invokes handler(event, context) for each event in order and prints the results
// after a marker, on one line. Events come through stdin: a body of megabytes does not fit in an
// argument.
const INVOKE_SCRIPT = `
const { createInterface } = await import("node:readline");
const { handler } = await import(process.argv[1]);
const context = {
  functionName: process.env.AWS_LAMBDA_FUNCTION_NAME, functionVersion: "$LATEST",
  invokedFunctionArn: "arn:aws:lambda:us-east-1:123456789012:function:" + process.env.AWS_LAMBDA_FUNCTION_NAME,
  memoryLimitInMB: "512", awsRequestId: "00000000-0000-4000-8000-000000000000",
  logGroupName: "/aws/lambda/test", logStreamName: "test", callbackWaitsForEmptyEventLoop: true,
  getRemainingTimeInMillis: () => 28000,
};
for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
  const { events, env } = JSON.parse(line);
  for (const [name, value] of Object.entries(env)) process.env[name] = value;
  const results = [];
  for (const event of events) results.push((await handler(event, context)) ?? null);
  for (const name of Object.keys(env)) delete process.env[name];
  process.stdout.write("\\n@@RESULTS@@" + JSON.stringify(results) + "\\n");
}
// stdin closed (stop(), or the test process ended): the container is gone.
process.exit(0);
`;

/** What one run of {@link invokeBundle} returned and printed. */
export interface BundleRun<T> {
  readonly results: T[];
  /** The JSON lines the bundle logged. */
  readonly logs: Record<string, unknown>[];
}

/** One `node` process with the bundle loaded: one Lambda container, invoked again and again. */
export interface BundleProcess {
  /**
   * Invokes the handler with `events` in order (the batch after the ones before it, warm); `env`
   * holds variables the Lambda runtime sets per invocation (e.g. `_X_AMZN_TRACE_ID`).
   */
  invoke<T = unknown>(events: readonly object[], env?: Record<string, string>): Promise<BundleRun<T>>;
  stop(): void;
}

/**
 * Starts a `node` process that loads the bundle (a cold start) with the environment the template
 * gives the function plus what the Lambda runtime sets, for {@link BundleProcess.invoke} calls in turn.
 */
export function startBundle(
  bundle: StagedBundle,
  envOverrides: Record<string, string> = {},
  functionName = "CodingEnv-Function",
): BundleProcess {
  const child = spawn(
    process.execPath,
    ["--enable-source-maps", "--input-type=module", "-e", INVOKE_SCRIPT, bundle.path],
    {
      cwd: join(bundle.path, ".."),
      stdio: ["pipe", "pipe", "pipe"],
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
  );
  // stdout decoded up to its last newline (a chunk may end inside a UTF-8 character), then cut
  // after each batch's results line.
  const chunks: Buffer[] = [];
  let text = "";
  let stderr = "";
  let exited: string | undefined;
  const waiting: { resolve: (output: string) => void; reject: (err: Error) => void }[] = [];
  const MARKER = "\n@@RESULTS@@";
  child.stdout.on("data", (chunk: Buffer) => {
    chunks.push(chunk);
    if (!chunk.includes(10)) return;
    const received = Buffer.concat(chunks.splice(0));
    const cut = received.lastIndexOf(10) + 1;
    if (cut < received.length) chunks.push(received.subarray(cut));
    text += received.subarray(0, cut).toString("utf8");
    for (;;) {
      const marker = text.indexOf(MARKER);
      const end = marker < 0 ? -1 : text.indexOf("\n", marker + MARKER.length);
      if (end < 0) break;
      waiting.shift()?.resolve(text.slice(0, end));
      text = text.slice(end + 1);
    }
  });
  child.stderr.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString("utf8")).slice(-4000);
  });
  child.stdin.on("error", () => {
    // The process ended: the exit handler fails what waits.
  });
  child.on("exit", (code, signal) => {
    exited = `the bundle's process exited (${signal ?? code}): ${stderr}`;
    for (const w of waiting.splice(0)) w.reject(new Error(exited));
  });
  // A test's time limit bounds an invocation; the process itself must not outlive the worker.
  child.unref();
  for (const stream of [child.stdin, child.stdout, child.stderr])
    (stream as unknown as { unref?: () => void }).unref?.();

  return {
    invoke: async <T>(events: readonly object[], env: Record<string, string> = {}) => {
      if (exited !== undefined) throw new Error(exited);
      const output = await new Promise<string>((resolve, reject) => {
        waiting.push({ resolve, reject });
        child.stdin.write(`${JSON.stringify({ events, env })}\n`);
      });
      const marker = output.lastIndexOf(MARKER);
      const logs = output
        .slice(0, marker)
        .split("\n")
        .filter((line) => line.startsWith("{"))
        .map((line) => JSON.parse(line) as Record<string, unknown>);
      return { results: JSON.parse(output.slice(marker + MARKER.length)) as T[], logs };
    },
    stop: () => {
      child.stdin.end();
      child.kill("SIGTERM");
    },
  };
}

/** Invokes the bundle's handler with `events`, in one fresh `node` process (one cold container). */
export async function invokeBundle<T = unknown>(
  bundle: StagedBundle,
  events: readonly object[],
  envOverrides: Record<string, string> = {},
  functionName = "CodingEnv-Function",
): Promise<BundleRun<T>> {
  const fresh = startBundle(bundle, envOverrides, functionName);
  try {
    return await fresh.invoke<T>(events);
  } finally {
    fresh.stop();
  }
}
