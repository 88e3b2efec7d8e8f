// Test harness of the WebSocket API's Lambda exactly as deployed: the esbuild bundle staged by
// `cdk synth`, run by a stand-in of API Gateway's WebSocket and management APIs
// (api-gateway-websocket-standin.mjs, two handler instances taking the events in turn), against the
// real parts the bundle talks to in the local stack: DynamoDB (dynalite) and the Python executor.
// The local stack's HTTP API serves the same table, so a test can compare both paths.
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient, ScanCommand } from "@aws-sdk/lib-dynamodb";
import { type LocalStack, startLocalStack } from "../../functions/src/local/stack.js";
import { dynamoDbApiKeyStore } from "../../functions/src/store/dynamodb-api-keys.js";
import type { ApiKeyStore } from "../../functions/src/tenancy/keys.js";
import { openWs, type WsConnection } from "../../test/api/websocket-scenario.js";
import { call } from "../../test/helpers/api.js";
import { localStackBundleEnv, type StagedBundle, stagedBundle } from "./bundle.js";
import { bundledApp } from "./synth.js";

const here = fileURLToPath(new URL(".", import.meta.url));
export const repoRoot = join(here, "..", "..");

/** Handler instances of the stand-in: consecutive events of a connection reach different ones. */
export const HANDLER_INSTANCES = 2;

/** One stand-in of API Gateway's WebSocket API running the bundle with `env`. */
async function startGateway(
  bundle: StagedBundle,
  env: Record<string, string>,
): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(
    process.execPath,
    [join(here, "api-gateway-websocket-standin.mjs"), bundle.path, join(repoRoot, "node_modules", "ws")],
    {
      cwd: join(bundle.path, ".."),
      env: {
        PATH: process.env.PATH ?? "",
        ...bundle.env,
        AWS_REGION: "us-east-1",
        AWS_LAMBDA_FUNCTION_NAME: "CodingEnv-WebSocket",
        AWS_LAMBDA_LOG_FORMAT: "JSON",
        AWS_EXECUTION_ENV: "AWS_Lambda_nodejs22.x",
        AWS_ACCESS_KEY_ID: "AKIAIOSFODNN7EXAMPLE",
        AWS_SECRET_ACCESS_KEY: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        STANDIN_INSTANCES: String(HANDLER_INSTANCES),
        ...env,
      },
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  const port = await new Promise<number>((resolve, reject) => {
    let out = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      out += chunk.toString("utf8");
      const match = /LISTENING (\d+)/.exec(out);
      if (match) resolve(Number(match[1]));
    });
    child.once("exit", (code) => reject(new Error(`stand-in exited ${code}: ${out.slice(-2000)}`)));
  });
  child.stdout?.resume();
  return { url: `http://127.0.0.1:${port}`, child };
}

/** An event the stand-in handed to a handler instance, or a management API call it received. */
export interface GatewayCall {
  readonly route?: string;
  readonly instance?: number;
  readonly method?: string;
  readonly signed?: boolean;
  readonly connectionId: string;
}

/** The running bundle, its stand-in and the local stack behind it. */
export interface WsBundleEnv {
  readonly stack: LocalStack;
  readonly keys: ApiKeyStore;
  readonly doc: DynamoDBDocumentClient;
  /** `http://127.0.0.1:<port>`: the stand-in (`<gatewayUrl>/ws` is the WebSocket stage). */
  readonly gatewayUrl: string;
  /** Opens `<gateway>/ws<query>` with `headers`. */
  connect(opts?: { headers?: Record<string, string>; query?: string }): Promise<WsConnection>;
  /** An HTTP request to the local stack's HTTP API (same table) with `key`. */
  http<T = Record<string, unknown>>(
    key: string,
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: T }>;
  /** What the stand-in saw so far. */
  calls(): Promise<GatewayCall[]>;
  /** The connection items (`WS#<id>`) in the table. */
  connectionItems(): Promise<Record<string, unknown>[]>;
  stop(): Promise<void>;
}

/** Synthesizes and stages the bundle, starts the local stack (keys on) and the stand-in. */
export async function startWsBundleEnv(): Promise<WsBundleEnv> {
  // The stack starts while the bundle is awaited (under npm test, the run's `cdk synth` writing it).
  const [app, started] = await Promise.allSettled([
    bundledApp(),
    startLocalStack({ port: 0, dataDir: null, auth: true }),
  ]);
  if (app.status === "rejected" || started.status === "rejected") {
    if (started.status === "fulfilled") await started.value.stop();
    throw app.status === "rejected" ? app.reason : (started as PromiseRejectedResult).reason;
  }
  const bundle = stagedBundle(app.value, "coding-env-ws");
  const stack = started.value;
  const client = new DynamoDBClient({
    endpoint: stack.dynamodbEndpoint,
    region: "us-east-1",
    credentials: stack.credentials,
  });
  const doc = DynamoDBDocumentClient.from(client);
  const keys = dynamoDbApiKeyStore({ client, tableName: stack.tableName });
  const gateway = await startGateway(bundle, {
    ...localStackBundleEnv(stack),
    // Every message re-reads the key, so a revocation shows at once in these tests.
    CODING_ENV_AUTH_CACHE_TTL_MS: "0",
  });
  const wsBase = `${gateway.url.replace(/^http/, "ws")}/ws`;
  return {
    stack,
    keys,
    doc,
    gatewayUrl: gateway.url,
    connect: (opts = {}) => openWs(`${wsBase}${opts.query ?? ""}`, opts.headers),
    http: async (key, method, path, body) => {
      const reply = await call(stack.baseUrl, method, path, body, { "x-api-key": key });
      return { status: reply.status, body: reply.body as never };
    },
    calls: async () => (await (await fetch(`${gateway.url}/calls`)).json()) as GatewayCall[],
    connectionItems: async () =>
      (
        await doc.send(
          new ScanCommand({
            TableName: stack.tableName,
            FilterExpression: "begins_with(pk, :ws)",
            ExpressionAttributeValues: { ":ws": "WS#" },
          }),
        )
      ).Items ?? [],
    stop: async () => {
      gateway.child.kill("SIGTERM");
      doc.destroy();
      await stack.stop();
    },
  };
}
