// The local DynamoDB: dynalite's storage, validation and expression engine behind our own HTTP
// front, which makes it behave like DynamoDB where our code depends on it (test/dynamodb/parity
// test states each behaviour):
// - transactions (TransactWriteItems, TransactGetItems) that hold their items: an overlapping
//   transaction is cancelled with `TransactionConflict`, a single write to a held item fails with
//   TransactionConflictException (transactions.ts);
// - single and batch item operations with DynamoDB's 400 KB item size in UTF-8 bytes,
//   ReturnValuesOnConditionCheckFailure and write units (item-operations.ts);
// - BatchGetItem answers at most `batchGetMaxBytes` (16 MB) and returns the rest in UnprocessedKeys;
//   BatchWriteItem returns items held by a transaction in UnprocessedItems;
// - a change feed of DynamoDB Streams records (NEW_AND_OLD_IMAGES) for every applied write, and a
//   Time to Live sweep whose removals carry the TTL service identity (time-to-live.ts);
// - with `accessKeyId`, every request must be signed with that access key id (403 otherwise).
import { once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { createStore, forgetTable, runAction } from "./dynalite-store.js";
import { type ChangeRecord, OperationError, unrecognizedClient } from "./dynamodb-rules.js";
import { ItemLocks, ReadersWriterLock } from "./item-locks.js";
import { itemOperations } from "./item-operations.js";
import { timeToLive } from "./time-to-live.js";
import { type TransactionContext, transactGetItems, transactWriteItems } from "./transactions.js";

export type { ChangeRecord } from "./dynamodb-rules.js";

const MAX_REQUEST_BYTES = 16 * 1024 * 1024;

/** Options of {@link startDynalite}. */
export interface DynaliteOpts {
  /** LevelDB folder; `null` keeps everything in memory. @default null */
  readonly path?: string | null;
  /** @default 0 (a free port) */
  readonly port?: number;
  /** @default "127.0.0.1" */
  readonly host?: string;
  /** When set, only requests signed with this access key id are served (403 otherwise). */
  readonly accessKeyId?: string;
  /** Response size at which BatchGetItem stops and returns UnprocessedKeys. @default 16 MiB */
  readonly batchGetMaxBytes?: number;
  /** Called once a transaction holds its items, before it reads them (tests pause here). */
  readonly onTransactionPending?: (ids: readonly string[]) => Promise<void>;
}

export interface DynaliteHandle {
  readonly endpoint: string;
  readonly server: Server;
  /** Requests served, by operation (e.g. `GetItem`): the round trips the API made. */
  readonly requestCounts: Map<string, number>;
  /** Time spent serving requests (ms, from the complete body to the answer), by operation. */
  readonly requestMs: Map<string, number>;
  /** Receives the stream records of every applied write; returns the unsubscribe function. */
  onChange(listener: (records: ChangeRecord[]) => void): () => void;
  /** Deletes the items whose Time to Live passed, as DynamoDB TTL does; returns how many. */
  sweepExpired(nowMs?: number): Promise<number>;
  stop(): Promise<void>;
}

let requestCounter = 0;

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  // One writeHead with every header (no per-header bookkeeping): this runs twice per step.
  res.writeHead(status, [
    "Content-Type",
    "application/x-amz-json-1.0",
    "Content-Length",
    String(Buffer.byteLength(text)),
    "x-amzn-RequestId",
    (++requestCounter).toString(36),
  ]);
  res.end(text);
}

/** The body, or null past MAX_REQUEST_BYTES (stream events: no async iterator and its promises per chunk). */
function readBody(req: IncomingMessage): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on("data", (chunk: Buffer) => {
      if (tooLarge) return;
      size += chunk.length;
      if (size > MAX_REQUEST_BYTES) tooLarge = true;
      else chunks.push(chunk);
    });
    req.on("end", () =>
      resolve(tooLarge ? null : chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks)),
    );
    req.on("error", reject);
  });
}

/** The access key id a SigV4 `Authorization` header names (`Credential=<id>/<date>/...`). */
function accessKeyIdOf(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  return header ? /Credential=([^/,\s]+)\//.exec(header)?.[1] : undefined;
}

/**
 * Starts the local DynamoDB on a port.
 *
 * @example
 * const ddb = await startDynalite({ path: null, accessKeyId: "0123..." });
 * // new DynamoDBClient({ endpoint: ddb.endpoint, region: "local", credentials: { accessKeyId: "0123...", ... } })
 * await ddb.stop();
 */
export async function startDynalite(opts: DynaliteOpts = {}): Promise<DynaliteHandle> {
  const store = createStore(opts.path ?? null);
  if (opts.path) {
    // Open now, so a folder in use by another process (LevelDB's lock) fails clearly at startup.
    try {
      await store.db.open?.();
    } catch (err) {
      const cause = (err as { cause?: { message?: string } }).cause?.message ?? (err as Error).message;
      throw new Error(
        `cannot open the DynamoDB data in ${opts.path}: ${cause} (is another coding-env using this folder? Set CODING_ENV_DATA_DIR to another one.)`,
      );
    }
  }
  const locks = new ItemLocks();
  const commitLock = new ReadersWriterLock();
  const listeners = new Set<(records: ChangeRecord[]) => void>();
  const emit = (records: ChangeRecord[]) => {
    for (const listener of listeners) listener(records);
  };
  const ctx: TransactionContext = {
    store,
    locks,
    commitLock,
    emit,
    ...(opts.onTransactionPending ? { onTransactionPending: opts.onTransactionPending } : {}),
  };

  const { singleWrite, batchWriteItem, batchGetItem } = itemOperations({
    ...ctx,
    batchGetMaxBytes: opts.batchGetMaxBytes ?? 16 * 1024 * 1024,
    hasListeners: () => listeners.size > 0,
  });
  const { updateTimeToLive, describeTimeToLive, sweepExpired } = timeToLive({
    store,
    commitLock,
    path: opts.path ?? null,
    singleWrite,
  });

  const dispatch = async (
    target: string,
    data: Record<string, unknown>,
  ): Promise<Record<string, unknown>> => {
    switch (target) {
      case "TransactWriteItems":
        return transactWriteItems(ctx, data);
      case "TransactGetItems":
        return transactGetItems(ctx, data);
      case "PutItem":
      case "UpdateItem":
      case "DeleteItem":
        return singleWrite(target, data);
      case "BatchWriteItem":
        return batchWriteItem(data);
      case "UpdateTimeToLive":
        return updateTimeToLive(data);
      case "DescribeTimeToLive":
        return describeTimeToLive(data);
      case "DeleteTable":
      case "UpdateTable":
        forgetTable(store, String(data.TableName));
        return runAction(store, target, data);
      case "CreateTable":
        return runAction(store, target, data);
    }
    // Reads wait while a transaction commits, so none sees half of one.
    const release = await commitLock.shared();
    try {
      if (target === "BatchGetItem") return await batchGetItem(data);
      // GetItem, Query, Scan, DescribeTable, ListTables; validate() refuses unknown operations.
      return await runAction(store, target, data);
    } finally {
      release();
    }
  };

  const requestCounts = new Map<string, number>();
  const requestMs = new Map<string, number>();
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (opts.accessKeyId !== undefined && accessKeyIdOf(req) !== opts.accessKeyId) {
      req.resume();
      const refused = unrecognizedClient();
      send(res, refused.statusCode, refused.body);
      return;
    }
    if (req.method === "GET") {
      send(res, 200, { status: "healthy" });
      return;
    }
    const body = await readBody(req);
    if (body === null) {
      send(res, 413, {
        __type: "com.amazon.coral.service#SerializationException",
        message: "Request too large",
      });
      return;
    }
    let data: Record<string, unknown>;
    try {
      data = JSON.parse(body.toString("utf8")) as Record<string, unknown>;
    } catch {
      send(res, 400, { __type: "com.amazon.coral.service#SerializationException" });
      return;
    }
    const target = String(req.headers["x-amz-target"] ?? "").split(".")[1] ?? "";
    requestCounts.set(target, (requestCounts.get(target) ?? 0) + 1);
    const startedAt = performance.now();
    try {
      send(res, 200, await dispatch(target, data));
    } catch (err) {
      if (err instanceof OperationError) send(res, err.statusCode, err.body);
      else
        send(res, 500, {
          __type: "com.amazonaws.dynamodb.v20120810#InternalServerError",
          message: String(err),
        });
    } finally {
      requestMs.set(target, (requestMs.get(target) ?? 0) + performance.now() - startedAt);
    }
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) send(res, 500, { __type: "InternalServerError", message: String(err) });
    });
  });
  server.keepAliveTimeout = 60_000;
  server.listen(opts.port ?? 0, opts.host ?? "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://${opts.host ?? "127.0.0.1"}:${port}`,
    server,
    requestCounts,
    requestMs,
    onChange: (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    sweepExpired,
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve, reject) => {
        const close = store.lifecycleManager
          ? store.lifecycleManager.gracefulClose.bind(store.lifecycleManager)
          : store.db.close.bind(store.db);
        close((err?: Error) => (err ? reject(err) : resolve()));
      });
    },
  };
}
