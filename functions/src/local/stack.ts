// The one-command local stack: the local DynamoDB (dynalite behind our front), the Python executor
// behind its local Lambda Invoke-API server, and the API on @hono/node-server (one instance in this
// process, or N in child processes behind one port). The handlers reach DynamoDB and the executor
// through the real AWS SDK clients with endpoint overrides, exactly as in AWS, signed with
// credentials made at start-up that both local services require.
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import {
  CreateTableCommand,
  DescribeTableCommand,
  DescribeTimeToLiveCommand,
  DynamoDBClient,
  UpdateTimeToLiveCommand,
} from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { API_ENV, configFromEnv, EXECUTOR_GOVERNOR_ENV } from "../config.js";
import { type BuiltDeps, buildDeps, type LocalCredentials } from "../deps.js";
import { LambdaExecutor } from "../executor/executor.js";
import { processStreamBatch } from "../metering/stream-aggregator.js";
import { HEAD_SK, parseEpisodePk } from "../store/layout.js";
import { type ApiInstances, startApiInstances } from "./api-instances.js";
import { type ApiServer, startApiServer } from "./api-server.js";
import { type DynamoPart, startDynamoInThread, startDynamoWorker } from "./dynamo-part.js";
import type { ChangeRecord } from "./dynamodb-rules.js";
import { type ExecutorMode, type ExecutorProcess, startExecutor, stopExecutor } from "./executor-process.js";
import { type LocalS3, startLocalS3 } from "./s3-server.js";
import { removeStackFile, writeStackFile } from "./stack-file.js";
import { type StreamPump, startStreamPump } from "./stream-pump.js";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

/** Options of {@link startLocalStack}. */
export interface LocalStackOpts {
  /** API port; 0 picks a free one. @default 8000 */
  readonly port?: number;
  /** @default "127.0.0.1" */
  readonly host?: string;
  /** Folder for the DynamoDB data (kept across restarts); `null` keeps it in memory. @default "<repo>/.data" */
  readonly dataDir?: string | null;
  /** Require API keys. @default `CODING_ENV_AUTH` of `env` or the process (off when unset) */
  readonly auth?: boolean;
  /** Extra API environment (e.g. `CODING_ENV_DEFAULT_STEP_TIMEOUT_S`), over `process.env`. @default {} */
  readonly env?: Record<string, string>;
  /** Forward the executor's log lines to this process's stderr. @default false */
  readonly logExecutor?: boolean;
  /**
   * Where dynalite runs: this thread (no thread hop per DynamoDB call, less memory) or its own
   * worker thread (+35 MB). The worker takes CPU off the API's thread but not off the stack (CPU
   * per step, medians of 3 interleaved rounds on the shared 2-core machine, 2026-12-02: API thread
   * 6.4 -> 4.7 ms sequential, 5.0 -> 4.4 ms with 64 concurrent episodes; whole stack 7.6 -> 7.7 ms
   * and 7.1 -> 8.1 ms), so with both cores busy it does not raise steps/s (docs/LOCAL-STACK.md).
   * @default "main"
   */
  readonly dynamodbThread?: "worker" | "main";
  /**
   * Episodes whose Python worker the executor keeps warm (their next step skips the restore). One
   * executor serves every episode of the local stack, so this should cover the episodes stepping
   * at once: 64 concurrent episodes run at about twice the rate with 96+ than with the runtime's
   * default of 32. @default 128
   */
  readonly maxWarmWorkers?: number;
  /** How often expired items are deleted (DynamoDB TTL's job in AWS). @default 60000 */
  readonly sweepIntervalMs?: number;
  /**
   * API processes behind the one port, each request to the next in turn, each with its own
   * EpisodeService and caches (as API Lambda instances); they share the DynamoDB and the executor.
   * 1 serves from this process with no proxy hop. @default env `CODING_ENV_API_INSTANCES`, else 1
   */
  readonly apiInstances?: number;
  /**
   * "local": the runtime's local Invoke server; "lambda": the Lambda-mode harness
   * (python-runtime/harness/lambda_env.py: Lambda's constraints). @default env `CODING_ENV_EXECUTOR_MODE`, else "local"
   */
  readonly executorMode?: ExecutorMode;
  /** How often the change feed is handed to the metering roll-up, as a stream trigger. @default 1000 */
  readonly streamIntervalMs?: number;
  /**
   * Response size past which the local BatchGetItem returns the rest in UnprocessedKeys
   * (DynamoDB: 16 MB; smaller makes callers' retry loops run in tests). @default 16 MiB
   */
  readonly dynamodbBatchGetMaxBytes?: number;
  /**
   * Emulates the executor function's reserved concurrency: the local executor throttles (Lambda's
   * 429 TooManyRequestsException) past this many invocations at once, and the API is told it.
   * @default env `CODING_ENV_EXECUTOR_RESERVED_CONCURRENCY`, else none (no limit)
   */
  readonly executorReservedConcurrency?: number;
}

/** Why a part of the stack stopped on its own. */
export interface PartExit {
  readonly part: "executor" | "api" | "dynamodb";
  readonly message: string;
}

export interface LocalStack {
  readonly baseUrl: string;
  readonly dynamodbEndpoint: string;
  readonly executorEndpoint: string;
  /** The local S3 (large state objects; same start-up credentials) and its bucket. */
  readonly s3Endpoint: string;
  readonly stateBucket: string;
  readonly tableName: string;
  /** The start-up credentials the local DynamoDB and executor require. */
  readonly credentials: LocalCredentials;
  /** PIDs of child processes (the executor, then the API instances when several), for RSS measurement. */
  readonly childPids: readonly number[];
  /** DynamoDB requests served so far and the time dynalite spent on them (ms), by operation. */
  dynamodbStats(): Promise<{ counts: Record<string, number>; ms: Record<string, number> }>;
  /**
   * Runs the TTL sweep now (the timer runs it every `sweepIntervalMs`) as if the clock read `nowMs`;
   * returns the items removed.
   */
  sweepExpired(nowMs?: number): Promise<number>;
  /** Hands every change record so far to the metering roll-up now (the timer does it every `streamIntervalMs`). */
  flushStream(): Promise<void>;
  /** Settles when a part stops unexpectedly (never when `stop()` is called). */
  readonly crashed: Promise<PartExit>;
  stop(): Promise<void>;
}

/** Creates the table (key `pk`/`sk`) unless it exists, and turns on its TTL (`expires_at`). */
export async function ensureTable(
  client: import("@aws-sdk/client-dynamodb").DynamoDBClient,
  tableName: string,
): Promise<void> {
  let exists = true;
  try {
    await client.send(new DescribeTableCommand({ TableName: tableName }));
  } catch (err) {
    if ((err as { name?: string }).name !== "ResourceNotFoundException") throw err;
    exists = false;
  }
  if (!exists) {
    await client.send(
      new CreateTableCommand({
        TableName: tableName,
        AttributeDefinitions: [
          { AttributeName: "pk", AttributeType: "S" },
          { AttributeName: "sk", AttributeType: "S" },
        ],
        KeySchema: [
          { AttributeName: "pk", KeyType: "HASH" },
          { AttributeName: "sk", KeyType: "RANGE" },
        ],
        BillingMode: "PAY_PER_REQUEST",
      }),
    );
  }
  // Also for a table made before TTL was kept (DynamoDB refuses to enable it twice).
  const ttl = await client.send(new DescribeTimeToLiveCommand({ TableName: tableName }));
  if (ttl.TimeToLiveDescription?.TimeToLiveStatus !== "ENABLED") {
    await client.send(
      new UpdateTimeToLiveCommand({
        TableName: tableName,
        TimeToLiveSpecification: { AttributeName: "expires_at", Enabled: true },
      }),
    );
  }
}

function apiInstancesFrom(opts: LocalStackOpts): number {
  const raw = opts.apiInstances ?? process.env[API_ENV.apiInstances] ?? 1;
  const count = Number(raw);
  if (!Number.isInteger(count) || count < 1 || count > 64) {
    throw new Error(`${API_ENV.apiInstances} must be an integer 1..64, got '${raw}'`);
  }
  return count;
}

function executorModeFrom(opts: LocalStackOpts): ExecutorMode {
  const mode = opts.executorMode ?? process.env[API_ENV.executorMode] ?? "local";
  if (mode !== "local" && mode !== "lambda") {
    throw new Error(`${API_ENV.executorMode} must be "local" or "lambda", got '${mode}'`);
  }
  return mode;
}

function reservedConcurrencyFrom(opts: LocalStackOpts): number | undefined {
  const raw =
    opts.executorReservedConcurrency ??
    opts.env?.[EXECUTOR_GOVERNOR_ENV.reservedConcurrency] ??
    process.env[EXECUTOR_GOVERNOR_ENV.reservedConcurrency];
  if (raw === undefined || raw === "") return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) {
    throw new Error(`${EXECUTOR_GOVERNOR_ENV.reservedConcurrency} must be a positive integer, got '${raw}'`);
  }
  return n;
}

/**
 * Starts the local DynamoDB, the executor and the API.
 *
 * @example
 * const stack = await startLocalStack({ port: 0, dataDir: null });
 * await fetch(`${stack.baseUrl}/health`);
 * await stack.stop();
 */
export async function startLocalStack(opts: LocalStackOpts = {}): Promise<LocalStack> {
  const host = opts.host ?? "127.0.0.1";
  const dataDir = opts.dataDir === undefined ? join(repoRoot, ".data") : opts.dataDir;
  const instanceCount = apiInstancesFrom(opts);
  const executorMode = executorModeFrom(opts);
  const reservedConcurrency = reservedConcurrencyFrom(opts);
  // The start-up secret: user code that reaches these endpoints does not have it.
  const credentials: LocalCredentials = {
    accessKeyId: randomBytes(16).toString("hex"),
    secretAccessKey: randomBytes(30).toString("base64url"),
  };
  let stopping = false;
  let dbPath: string | null = null;
  if (dataDir !== null) {
    dbPath = join(resolve(dataDir), "dynamodb");
    mkdirSync(dbPath, { recursive: true, mode: 0o700 });
  }
  // The local S3 for large state, first: the Lambda-mode harness needs its address to relay it
  // into its environments. Under the data folder (objects survive a restart), or a temporary
  // folder removed at stop for an in-memory stack.
  const s3Dir =
    dataDir !== null ? join(resolve(dataDir), "s3") : mkdtempSync(join(tmpdir(), "coding-env-s3-"));
  mkdirSync(s3Dir, { recursive: true, mode: 0o700 });
  const stateBucket = "coding-env-state";
  const s3: LocalS3 = await startLocalS3({ directory: s3Dir, bucket: stateBucket, credentials });
  // Both start at once; if one fails, the other is stopped too (nothing is left running).
  const dynamoOpts = {
    path: dbPath,
    host: "127.0.0.1",
    accessKeyId: credentials.accessKeyId,
    ...(opts.dynamodbBatchGetMaxBytes !== undefined
      ? { batchGetMaxBytes: opts.dynamodbBatchGetMaxBytes }
      : {}),
  };
  const [dynamoStart, executorStart] = await Promise.allSettled([
    opts.dynamodbThread !== "worker" ? startDynamoInThread(dynamoOpts) : startDynamoWorker(dynamoOpts),
    startExecutor({
      repoRoot,
      mode: executorMode,
      log: opts.logExecutor ?? false,
      maxWarmWorkers: opts.maxWarmWorkers ?? 128,
      accessKeyId: credentials.accessKeyId,
      s3Endpoint: s3.endpoint,
      ...(reservedConcurrency !== undefined ? { reservedConcurrency } : {}),
    }),
  ]);
  if (dynamoStart.status === "rejected" || executorStart.status === "rejected") {
    if (executorStart.status === "fulfilled") await stopExecutor(executorStart.value);
    if (dynamoStart.status === "fulfilled") await dynamoStart.value.stop();
    await s3.close();
    if (dataDir === null) rmSync(s3Dir, { recursive: true, force: true });
    throw dynamoStart.status === "rejected"
      ? dynamoStart.reason
      : (executorStart as PromiseRejectedResult).reason;
  }
  const ddb: DynamoPart = dynamoStart.value;
  const exe: ExecutorProcess = executorStart.value;

  const envAuth = opts.env?.[API_ENV.auth] ?? process.env[API_ENV.auth] ?? "off";
  const env: Record<string, string | undefined> = {
    ...process.env,
    ...opts.env,
    [API_ENV.auth]: opts.auth === undefined ? envAuth : opts.auth ? "on" : "off",
    // Each instance takes its share of the per-tenant step caps (functions/src/admission/).
    [API_ENV.apiInstances]: String(instanceCount),
    // In Lambda mode the harness relays the local S3's address (only it) into each environment's
    // network namespace, as the VPC's S3 gateway endpoint lets the executor reach S3 only.
    [API_ENV.stateBucket]: stateBucket,
    [API_ENV.s3Endpoint]: s3.endpoint,
    ...(reservedConcurrency !== undefined
      ? { [EXECUTOR_GOVERNOR_ENV.reservedConcurrency]: String(reservedConcurrency) }
      : {}),
  };
  const config = configFromEnv(env);
  const endpoints = { dynamodbEndpoint: ddb.endpoint, executorEndpoint: exe.endpoint };
  let api: ApiServer | undefined;
  let instances: ApiInstances | undefined;
  let deps: BuiltDeps | undefined;
  // The stream trigger: the front's change records, in batches, to the same roll-up as in AWS
  // (usage per tenant and day; TTL removals of an episode clean up its other items).
  const streamClient = new DynamoDBClient({
    endpoint: ddb.endpoint,
    region: "local",
    credentials,
    maxAttempts: 3,
  });
  const pump: StreamPump = startStreamPump({
    intervalMs: opts.streamIntervalMs ?? 1000,
    process: async (records) => {
      await processStreamBatch(records, {
        doc: DynamoDBDocumentClient.from(streamClient),
        tableName: config.tableName,
      });
      discardExpired(records);
    },
  });
  // An episode head removed by TTL: its warm worker goes at once (fire and forget, as on DELETE).
  const discardExpired = (records: readonly ChangeRecord[]) => {
    if (!deps) return;
    const executor = new LambdaExecutor({ client: deps.lambda, functionName: config.executorFunction });
    for (const r of records) {
      if (r.eventName !== "REMOVE" || r.userIdentity?.type !== "Service") continue;
      if (r.dynamodb.Keys.sk?.S !== HEAD_SK) continue;
      const episode = parseEpisodePk(r.dynamodb.Keys.pk?.S ?? "");
      if (!episode) continue;
      const incarnation = r.dynamodb.OldImage?.incarnation?.S;
      void executor.discard({
        tenantId: episode.tenantId,
        episodeId: episode.id,
        ...(incarnation ? { incarnation } : {}),
      });
    }
  };
  ddb.onChange((records) => pump.push(records));
  const stopParts = async () => {
    await api?.close();
    await instances?.close();
    if (!api) deps?.destroy();
    await pump.stop();
    streamClient.destroy();
    await stopExecutor(exe);
    await ddb.stop();
    await s3.close();
    if (dataDir === null) rmSync(s3Dir, { recursive: true, force: true });
  };
  try {
    if (instanceCount === 1) {
      api = await startApiServer({
        config,
        env,
        ...endpoints,
        credentials,
        host,
        port: opts.port ?? 8000,
        publicHost: host,
      });
      deps = api.deps;
    } else {
      // This process keeps clients of its own for the table set-up and the sweeps.
      deps = buildDeps({ config, ...endpoints, env, localCredentials: credentials });
    }
    await ensureTable(deps.dynamodb, config.tableName);
    if (instanceCount > 1) {
      instances = await startApiInstances({
        count: instanceCount,
        host,
        port: opts.port ?? 8000,
        repoRoot,
        start: { env, ...endpoints, credentials, publicHost: host },
      });
    }
  } catch (err) {
    await stopParts();
    throw err;
  }
  const port = api?.port ?? (instances as ApiInstances).port;
  const listening = api?.server ?? (instances as ApiInstances).server;
  // DynamoDB's TTL: the front deletes expired items as the TTL service (REMOVE records the
  // roll-up sees, as in AWS).
  const sweep = (nowMs?: number) => ddb.sweepExpired(nowMs);
  const sweeper = setInterval(() => {
    sweep().catch(() => {
      /* the next sweep retries */
    });
  }, opts.sweepIntervalMs ?? 60_000);
  sweeper.unref();

  const crashed = new Promise<PartExit>((res) => {
    void exe.exited.then(({ code, signal, stderrTail }) => {
      if (!stopping) {
        res({
          part: "executor",
          message: `the Python executor exited (code ${code}, signal ${signal})${stderrTail ? `:\n${stderrTail}` : ""}`,
        });
      }
    });
    listening.on("error", (err) => {
      if (!stopping) res({ part: "api", message: `the API server failed: ${err.message}` });
    });
    void instances?.exited.then((message) => {
      if (!stopping) res({ part: "api", message });
    });
    void ddb.exited.then((message) => {
      if (!stopping) res({ part: "dynamodb", message });
    });
  });

  const urlHost = host.includes(":") ? `[${host}]` : host;
  const baseUrl = `http://${urlHost}:${port}`;
  if (dataDir !== null) {
    writeStackFile(resolve(dataDir), {
      baseUrl,
      ...endpoints,
      tableName: config.tableName,
      region: "local",
      ...credentials,
    });
  }
  return {
    baseUrl,
    ...endpoints,
    s3Endpoint: s3.endpoint,
    stateBucket,
    tableName: config.tableName,
    credentials,
    childPids: [...(exe.child.pid ? [exe.child.pid] : []), ...(instances?.pids ?? [])],
    dynamodbStats: () => ddb.stats(),
    sweepExpired: sweep,
    flushStream: () => pump.flush(),
    crashed,
    stop: async () => {
      if (stopping) return;
      stopping = true;
      clearInterval(sweeper);
      if (dataDir !== null) removeStackFile(resolve(dataDir));
      await stopParts();
    },
  };
}
