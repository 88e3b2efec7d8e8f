// The one-command local stack: dynalite (DynamoDB), the Python executor behind its local Lambda
// Invoke-API server, and the API on @hono/node-server. The handlers reach both through the real
// AWS SDK clients with endpoint overrides, exactly as in AWS.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import { CreateTableCommand, DescribeTableCommand, UpdateTimeToLiveCommand } from "@aws-sdk/client-dynamodb";
import { serve, upgradeWebSocket, type WebSocketServerLike } from "@hono/node-server";
import { createApp } from "../app.js";
import { configFromEnv } from "../config.js";
import { buildDeps } from "../deps.js";
import { webAssets } from "../web-assets.js";
import { startDynalite } from "./dynalite-server.js";

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
   * Where dynalite runs: this thread (lowest step latency and memory: no thread hop) or its own
   * worker thread (about 15% more steps/s with many concurrent episodes, +35 MB).
   * One bench/api run each (shared machine): main 3.4 ms p50 / 417 steps/s / 225 MB idle RSS; worker
   * 4.6 ms / 483 steps/s / 261 MB.
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
  readonly tableName: string;
  /** PIDs of child processes (the executor), for RSS measurement. */
  readonly childPids: readonly number[];
  /** DynamoDB requests served so far and the time dynalite spent on them (ms), by operation. */
  dynamodbStats(): Promise<{ counts: Record<string, number>; ms: Record<string, number> }>;
  /** Settles when a part stops unexpectedly (never when `stop()` is called). */
  readonly crashed: Promise<PartExit>;
  stop(): Promise<void>;
}

async function createWebSocketServer(): Promise<WebSocketServerLike | undefined> {
  const moduleName = "ws"; // a variable: an optional dependency, loaded only here
  try {
    const mod = (await import(moduleName)) as {
      WebSocketServer: new (opts: { noServer: true; maxPayload: number }) => WebSocketServerLike;
    };
    return new mod.WebSocketServer({ noServer: true, maxPayload: 4 * 1024 * 1024 });
  } catch {
    return undefined;
  }
}

async function resolvePython(): Promise<string> {
  // scripts/python.mjs belongs to the runtime; imported by URL so tsc need not type it.
  const url = pathToFileURL(join(repoRoot, "scripts", "python.mjs")).href;
  const mod = (await import(url)) as { resolvePython(): Promise<string> };
  return mod.resolvePython();
}

/** Creates the table (key `pk`/`sk`, TTL `expires_at`) unless it exists. */
export async function ensureTable(
  client: import("@aws-sdk/client-dynamodb").DynamoDBClient,
  tableName: string,
): Promise<void> {
  try {
    await client.send(new DescribeTableCommand({ TableName: tableName }));
    return;
  } catch (err) {
    if ((err as { name?: string }).name !== "ResourceNotFoundException") throw err;
  }
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
  await client.send(
    new UpdateTimeToLiveCommand({
      TableName: tableName,
      TimeToLiveSpecification: { AttributeName: "expires_at", Enabled: true },
    }),
  );
}

interface DynamoWorker {
  readonly endpoint: string;
  readonly exited: Promise<string>;
  stats(): Promise<{ counts: Record<string, number>; ms: Record<string, number> }>;
  stop(): Promise<void>;
}

/** Starts dynalite in this thread. */
async function startDynamoInThread(path: string | null, host: string): Promise<DynamoWorker> {
  const handle = await startDynalite({ path, host });
  let stopped: (why: string) => void = () => {};
  const exited = new Promise<string>((res) => {
    stopped = res;
    handle.server.once("error", (err) => res(`dynalite failed: ${err.message}`));
  });
  return {
    endpoint: handle.endpoint,
    exited,
    stats: async () => ({
      counts: Object.fromEntries(handle.requestCounts),
      ms: Object.fromEntries(handle.requestMs),
    }),
    stop: async () => {
      await handle.stop();
      stopped("stopped");
    },
  };
}

/** Starts dynalite on its own thread (see dynalite-worker.ts). */
async function startDynamoWorker(path: string | null, host: string): Promise<DynamoWorker> {
  const worker = new Worker(new URL("./dynalite-worker.mjs", import.meta.url), {
    workerData: { path, host },
  });
  const exited = new Promise<string>((res) => {
    worker.once("error", (err) => res(`dynalite failed: ${err.message}`));
    worker.once("exit", (code) => res(`dynalite stopped (exit code ${code})`));
  });
  const waitFor = <T>(type: string) =>
    new Promise<T>((res, rej) => {
      const onMessage = (msg: { type?: string }) => {
        if (msg.type !== type) return;
        worker.off("message", onMessage);
        res(msg as T);
      };
      worker.on("message", onMessage);
      void exited.then((why) => rej(new Error(why)));
    });
  const ready = await waitFor<{ endpoint: string }>("ready");
  return {
    endpoint: ready.endpoint,
    exited,
    stats: async () => {
      const got = waitFor<{ counts: Record<string, number>; ms: Record<string, number> }>("stats");
      worker.postMessage("stats");
      const { counts, ms } = await got;
      return { counts, ms };
    },
    stop: async () => {
      const stopped = waitFor<{ type: string }>("stopped");
      worker.postMessage("stop");
      await stopped.catch(() => undefined);
      await worker.terminate();
    },
  };
}

interface ExecutorProcess {
  readonly child: ChildProcess;
  readonly endpoint: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderrTail: string }>;
}

async function startExecutor(log: boolean, maxWarmWorkers: number): Promise<ExecutorProcess> {
  const python = await resolvePython();
  const runtimeDir = join(repoRoot, "python-runtime");
  const args = ["--host", "127.0.0.1", "--port", "0", "--max-warm-workers", String(maxWarmWorkers)];
  const child = spawn(python, ["-m", "coding_env_runtime.local_server", ...args], {
    cwd: repoRoot,
    env: { ...process.env, PYTHONPATH: runtimeDir, PYTHONUNBUFFERED: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const tail: string[] = [];
  const remember = (line: string) => {
    tail.push(line);
    if (tail.length > 40) tail.shift();
    if (log) process.stderr.write(`[executor] ${line}\n`);
  };
  createInterface({ input: child.stderr as NodeJS.ReadableStream }).on("line", remember);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderrTail: string }>(
    (res) => {
      child.once("exit", (code, signal) => res({ code, signal, stderrTail: tail.join("\n") }));
    },
  );
  const endpoint = await new Promise<string>((res, rej) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      rej(new Error(`the Python executor did not report LISTENING within 60 s\n${tail.join("\n")}`));
    }, 60_000);
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.on("line", (line) => {
      const m = /^LISTENING (http:\/\/\S+)/.exec(line.trim());
      if (m?.[1]) {
        clearTimeout(timer);
        res(m[1]);
      } else remember(line);
    });
    child.once("error", (err) => {
      clearTimeout(timer);
      rej(new Error(`could not start the Python executor (${python}): ${err.message}`));
    });
    void exited.then(({ code, signal, stderrTail }) => {
      clearTimeout(timer);
      rej(
        new Error(
          `the Python executor exited (code ${code}, signal ${signal}) before listening\n${stderrTail}`,
        ),
      );
    });
  });
  return { child, endpoint, exited };
}

async function stopChild(child: ChildProcess, exited: Promise<unknown>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
  await exited;
  clearTimeout(timer);
}

/**
 * Starts dynalite, the executor and the API.
 *
 * @example
 * const stack = await startLocalStack({ port: 0, dataDir: null });
 * await fetch(`${stack.baseUrl}/health`);
 * await stack.stop();
 */
export async function startLocalStack(opts: LocalStackOpts = {}): Promise<LocalStack> {
  const host = opts.host ?? "127.0.0.1";
  const dataDir = opts.dataDir === undefined ? join(repoRoot, ".data") : opts.dataDir;
  let stopping = false;
  let dbPath: string | null = null;
  if (dataDir !== null) {
    dbPath = join(resolve(dataDir), "dynamodb");
    mkdirSync(dbPath, { recursive: true });
  }
  // Both start at once; if one fails, the other is stopped too (nothing is left running).
  const [dynamoStart, executorStart] = await Promise.allSettled([
    opts.dynamodbThread !== "worker"
      ? startDynamoInThread(dbPath, "127.0.0.1")
      : startDynamoWorker(dbPath, "127.0.0.1"),
    startExecutor(opts.logExecutor ?? false, opts.maxWarmWorkers ?? 128),
  ]);
  if (dynamoStart.status === "rejected" || executorStart.status === "rejected") {
    if (executorStart.status === "fulfilled")
      await stopChild(executorStart.value.child, executorStart.value.exited);
    if (dynamoStart.status === "fulfilled") await dynamoStart.value.stop();
    throw dynamoStart.status === "rejected"
      ? dynamoStart.reason
      : (executorStart as PromiseRejectedResult).reason;
  }
  const ddb = dynamoStart.value;
  const exe = executorStart.value;

  const envAuth = opts.env?.CODING_ENV_AUTH ?? process.env.CODING_ENV_AUTH ?? "off";
  const config = configFromEnv({
    ...process.env,
    ...opts.env,
    CODING_ENV_AUTH: opts.auth === undefined ? envAuth : opts.auth ? "on" : "off",
  });
  const env = { ...process.env, ...opts.env };
  const deps = buildDeps({ config, dynamodbEndpoint: ddb.endpoint, executorEndpoint: exe.endpoint, env });
  try {
    await ensureTable(deps.dynamodb, config.tableName);
  } catch (err) {
    deps.destroy();
    await stopChild(exe.child, exe.exited);
    await ddb.stop();
    throw err;
  }
  // OpenEnv's WebSocket client (`/ws`) needs the `ws` package; without it the stack serves HTTP only.
  const wsServer = await createWebSocketServer();
  const app = createApp({
    ...deps,
    webAssets,
    localBindAddress: host,
    ...(wsServer ? { upgradeWebSocket } : {}),
  });
  const server = serve({
    fetch: app.fetch,
    port: opts.port ?? 8000,
    hostname: host,
    ...(wsServer ? { websocket: { server: wsServer } } : {}),
  });
  await new Promise<void>((res, rej) => {
    server.once("listening", () => res());
    server.once("error", (err) => {
      deps.destroy();
      void stopChild(exe.child, exe.exited).then(() => ddb.stop());
      rej(err);
    });
  });
  if ("keepAliveTimeout" in server) server.keepAliveTimeout = 65_000;
  const port = (server.address() as AddressInfo).port;

  const sweeper = setInterval(() => {
    deps.store.sweepExpired().catch(() => {
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
    server.on("error", (err) => {
      if (!stopping) res({ part: "api", message: `the API server failed: ${err.message}` });
    });
    void ddb.exited.then((message) => {
      if (!stopping) res({ part: "dynamodb", message });
    });
  });

  const urlHost = host.includes(":") ? `[${host}]` : host;
  return {
    baseUrl: `http://${urlHost}:${port}`,
    dynamodbEndpoint: ddb.endpoint,
    executorEndpoint: exe.endpoint,
    tableName: config.tableName,
    childPids: exe.child.pid ? [exe.child.pid] : [],
    dynamodbStats: () => ddb.stats(),
    crashed,
    stop: async () => {
      if (stopping) return;
      stopping = true;
      clearInterval(sweeper);
      const ws = wsServer as { clients?: Set<{ terminate(): void }>; close?: () => void } | undefined;
      for (const client of ws?.clients ?? []) client.terminate();
      ws?.close?.();
      await new Promise<void>((res) => {
        server.close(() => res());
        if ("closeAllConnections" in server) server.closeAllConnections();
      });
      deps.destroy();
      await stopChild(exe.child, exe.exited);
      await ddb.stop();
    },
  };
}
