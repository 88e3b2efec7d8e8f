// The local DynamoDB: dynalite's storage, validation and expression engine behind our own small
// HTTP front, which adds the one operation our step needs and dynalite lacks: TransactWriteItems
// (plus a no-op UpdateTimeToLive, so the same table setup code runs locally and in AWS).
//
// Atomicity and isolation: every ordinary operation holds a shared lock and a transaction holds
// the exclusive lock, so nobody observes a half-applied transaction. Within the lock the writes
// are applied one by one with their own conditions (item keys in one transaction are distinct, so
// no write can see another's effect, exactly as DynamoDB evaluates them against the prior state);
// if write i fails, writes 0..i-1 are rolled back from their ALL_OLD images before the lock is
// released. The handlers talk to this server through the real `@aws-sdk/client-dynamodb`.
import { once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";

const require = createRequire(import.meta.url);

type Callback = (err: DynaliteError | null, data?: Record<string, unknown>) => void;
type Action = (store: unknown, data: Record<string, unknown>, cb: Callback) => void;
interface DynaliteError extends Error {
  statusCode?: number;
  body?: { __type: string; message?: string };
}
interface Validation {
  types: unknown;
  custom?: unknown;
}
interface DynaliteValidations {
  checkTypes(data: unknown, types: unknown): Record<string, unknown>;
  checkValidations(data: unknown, types: unknown, custom: unknown, store: unknown): void;
  toLowerFirst(s: string): string;
}
interface DynaliteDb {
  create(opts: Record<string, unknown>): DynaliteStore;
  checkConditional(data: unknown, existing: unknown): DynaliteError | null | undefined;
}
interface DynaliteStore {
  db: { close(cb: (err?: Error) => void): void };
  lifecycleManager?: { gracefulClose(cb: (err?: Error) => void): void };
}

const validations = require("dynalite/validations") as DynaliteValidations;
const dynaliteDb = require("dynalite/db") as DynaliteDb;

const operations = [
  "BatchGetItem",
  "BatchWriteItem",
  "CreateTable",
  "DeleteItem",
  "DeleteTable",
  "DescribeTable",
  "DescribeTimeToLive",
  "GetItem",
  "ListTables",
  "PutItem",
  "Query",
  "Scan",
  "UpdateItem",
  "UpdateTable",
] as const;
const actions = new Map<string, { action: Action; validation: Validation }>();
for (const op of operations) {
  const name = validations.toLowerFirst(op);
  actions.set(op, {
    action: require(`dynalite/actions/${name}`) as Action,
    validation: require(`dynalite/validations/${name}`) as Validation,
  });
}

const MAX_REQUEST_BYTES = 16 * 1024 * 1024;
const MAX_TRANSACT_ITEMS = 100;
const MAX_TRANSACT_BYTES = 4 * 1024 * 1024;

/** Options of {@link startDynalite}. */
export interface DynaliteOpts {
  /** LevelDB folder; `null` keeps everything in memory. @default null */
  readonly path?: string | null;
  /** @default 0 (a free port) */
  readonly port?: number;
  /** @default "127.0.0.1" */
  readonly host?: string;
}

export interface DynaliteHandle {
  readonly endpoint: string;
  readonly server: Server;
  /** Requests served, by operation (e.g. `GetItem`): the round trips the API made. */
  readonly requestCounts: Map<string, number>;
  /** Time spent serving requests (ms, from the complete body to the answer), by operation. */
  readonly requestMs: Map<string, number>;
  stop(): Promise<void>;
}

/** A readers-writer lock: many ordinary operations at once, or one transaction alone. */
class SharedExclusiveLock {
  private readers = 0;
  private writer = false;
  private readonly waiting: Array<{ exclusive: boolean; resolve: () => void }> = [];

  async shared(): Promise<() => void> {
    if (!this.writer && !this.waiting.some((w) => w.exclusive)) {
      this.readers++;
      return () => this.releaseShared();
    }
    await new Promise<void>((resolve) => this.waiting.push({ exclusive: false, resolve }));
    return () => this.releaseShared();
  }

  async exclusive(): Promise<() => void> {
    if (!this.writer && this.readers === 0) {
      this.writer = true;
      return () => this.releaseExclusive();
    }
    await new Promise<void>((resolve) => this.waiting.push({ exclusive: true, resolve }));
    return () => this.releaseExclusive();
  }

  private releaseShared(): void {
    this.readers--;
    this.drain();
  }

  private releaseExclusive(): void {
    this.writer = false;
    this.drain();
  }

  private drain(): void {
    while (this.waiting.length > 0 && !this.writer) {
      const next = this.waiting[0];
      if (!next) break;
      if (next.exclusive) {
        if (this.readers > 0) break;
        this.waiting.shift();
        this.writer = true;
        next.resolve();
        break;
      }
      this.waiting.shift();
      this.readers++;
      next.resolve();
    }
  }
}

class OperationError extends Error {
  constructor(
    readonly statusCode: number,
    readonly body: Record<string, unknown>,
  ) {
    super(String(body.message ?? body.__type));
  }
}

function validationError(message: string): OperationError {
  return new OperationError(400, { __type: "com.amazon.coral.validate#ValidationException", message });
}

/** Runs one dynalite action with dynalite's own validation; rejects with its error body. */
/** dynalite's own type checks and validations (parses the expressions); throws `OperationError`. */
function validate(store: object, op: string, input: Record<string, unknown>): Record<string, unknown> {
  const entry = actions.get(op);
  if (!entry) throw new OperationError(400, { __type: "com.amazon.coral.service#UnknownOperationException" });
  try {
    const data = validations.checkTypes(input, entry.validation.types);
    validations.checkValidations(data, entry.validation.types, entry.validation.custom, store);
    return data;
  } catch (err) {
    const e = err as DynaliteError;
    if (e.statusCode && e.body) throw new OperationError(e.statusCode, e.body);
    throw err;
  }
}

/** Runs one dynalite action on validated input. */
function runValidated(
  store: object,
  op: string,
  data: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  const entry = actions.get(op);
  if (!entry) return Promise.reject(new Error(`unknown operation ${op}`));
  return new Promise((resolve, reject) => {
    entry.action(store, data, (err, result) => {
      if (err) {
        if (err.statusCode && err.body) reject(new OperationError(err.statusCode, err.body));
        else reject(err);
        return;
      }
      resolve(result ?? {});
    });
  });
}

/** Runs one dynalite action with dynalite's own validation; rejects with its error body. */
function runAction(
  store: object,
  op: string,
  input: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  try {
    return runValidated(store, op, validate(store, op, input));
  } catch (err) {
    return Promise.reject(err);
  }
}

type TransactItem = {
  Put?: Record<string, unknown> & { TableName: string; Item: Record<string, unknown> };
  Update?: Record<string, unknown> & { TableName: string; Key: Record<string, unknown> };
  Delete?: Record<string, unknown> & { TableName: string; Key: Record<string, unknown> };
  ConditionCheck?: Record<string, unknown> & { TableName: string; Key: Record<string, unknown> };
};

const keySchemas = new WeakMap<object, Map<string, string[]>>();

/** The key attribute names of a table (cached: our tables never change their key schema). */
async function keyNamesOf(store: object, tableName: string): Promise<string[]> {
  let perStore = keySchemas.get(store);
  if (!perStore) {
    perStore = new Map();
    keySchemas.set(store, perStore);
  }
  const cached = perStore.get(tableName);
  if (cached) return cached;
  const described = await runAction(store, "DescribeTable", { TableName: tableName });
  const names = (described.Table as { KeySchema: Array<{ AttributeName: string }> }).KeySchema.map(
    (k) => k.AttributeName,
  );
  perStore.set(tableName, names);
  return names;
}

async function keyOf(store: object, tableName: string, item: Record<string, unknown>): Promise<string> {
  const names = await keyNamesOf(store, tableName);
  return `${tableName}|${names.map((k) => JSON.stringify(item[k] ?? null)).join("|")}`;
}

function keyFrom(item: Record<string, unknown>, keyNames: string[]): Record<string, unknown> {
  return Object.fromEntries(keyNames.map((k) => [k, item[k]]));
}

/** Bytes as DynamoDB counts them: binary values by their decoded size, not their base64. */
function wireSize(value: unknown): number {
  if (typeof value === "string") return Buffer.byteLength(value);
  if (Array.isArray(value)) return value.reduce((n: number, v) => n + wireSize(v), 0);
  if (value && typeof value === "object") {
    let n = 0;
    for (const [k, v] of Object.entries(value)) {
      n += Buffer.byteLength(k);
      n += k === "B" && typeof v === "string" ? Math.floor((v.length * 3) / 4) : wireSize(v);
    }
    return n;
  }
  return 8;
}

function opOf(
  ti: TransactItem,
): [
  "PutItem" | "UpdateItem" | "DeleteItem" | "ConditionCheck",
  Record<string, unknown> & { TableName: string },
] {
  if (ti.Put) return ["PutItem", ti.Put];
  if (ti.Update) return ["UpdateItem", ti.Update];
  if (ti.Delete) return ["DeleteItem", ti.Delete];
  return ["ConditionCheck", ti.ConditionCheck as Record<string, unknown> & { TableName: string }];
}

/** TransactWriteItems with DynamoDB's semantics and error shapes (called under the exclusive lock). */
async function transactWriteItems(
  store: object,
  input: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  const items = input.TransactItems as TransactItem[] | undefined;
  if (!Array.isArray(items) || items.length === 0 || items.length > MAX_TRANSACT_ITEMS) {
    throw validationError(
      `1 validation error detected: Value at 'transactItems' failed to satisfy constraint: Member must have length between 1 and ${MAX_TRANSACT_ITEMS}`,
    );
  }
  if (wireSize(items) > MAX_TRANSACT_BYTES) {
    throw validationError("Transaction request cannot be larger than 4 MB");
  }
  const seen = new Set<string>();
  for (const ti of items) {
    const op = ti.Put ?? ti.Update ?? ti.Delete ?? ti.ConditionCheck;
    if (!op) throw validationError("TransactItems can only contain one of Check, Put, Update or Delete");
    const key = await keyOf(store, op.TableName, ti.Put ? ti.Put.Item : (op.Key as Record<string, unknown>));
    if (seen.has(key)) {
      throw validationError("Transaction request cannot include multiple operations on one item");
    }
    seen.add(key);
  }

  const reasons: Array<{ Code: string; Message?: string }> = items.map(() => ({ Code: "None" }));
  const cancelled = () =>
    new OperationError(400, {
      __type: "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
      message: `Transaction cancelled, please refer cancellation reasons for specific reasons [${reasons.map((r) => r.Code).join(", ")}]`,
      CancellationReasons: reasons,
    });

  // Validate every operation once (this parses its expressions: the costly part).
  const ops = [];
  for (let i = 0; i < items.length; i++) {
    const [op, params] = opOf(items[i] as TransactItem);
    const { ReturnValuesOnConditionCheckFailure: _ignored, ...rest } = params;
    const input = op === "ConditionCheck" ? rest : { ...rest, ReturnValues: "ALL_OLD" };
    try {
      const data = validate(store, op === "ConditionCheck" ? "DeleteItem" : op, input);
      const keyNames = await keyNamesOf(store, params.TableName);
      const key =
        op === "PutItem"
          ? keyFrom(params.Item as Record<string, unknown>, keyNames)
          : (params.Key as Record<string, unknown>);
      const conditioned = params.ConditionExpression !== undefined || params.Expected !== undefined;
      ops.push({ index: i, op, data, key, tableName: params.TableName, conditioned });
    } catch (err) {
      const e = err as OperationError;
      reasons[i] = { Code: "ValidationError", Message: String(e.body?.message ?? e.message) };
      throw cancelled();
    }
  }

  const conditioned = ops.filter((o) => o.conditioned);
  // 1. With several conditions, evaluate them all against the state before the transaction
  //    (DynamoDB reports each failure). With one, it is evaluated by its own write, done first.
  if (conditioned.length > 1) {
    for (const o of conditioned) {
      const got = await runAction(store, "GetItem", {
        TableName: o.tableName,
        Key: o.key,
        ConsistentRead: true,
      });
      if (dynaliteDb.checkConditional(o.data, got.Item)) {
        reasons[o.index] = { Code: "ConditionalCheckFailed", Message: "The conditional request failed" };
      }
    }
    if (reasons.some((r) => r.Code !== "None")) throw cancelled();
  }
  const order = conditioned.length === 1 ? [...conditioned, ...ops.filter((o) => !o.conditioned)] : ops;

  // 2. The writes, undone from their old images if one fails.
  const undo: Array<() => Promise<unknown>> = [];
  for (const o of order) {
    try {
      if (o.op === "ConditionCheck") {
        if (conditioned.length === 1) {
          const got = await runAction(store, "GetItem", {
            TableName: o.tableName,
            Key: o.key,
            ConsistentRead: true,
          });
          if (dynaliteDb.checkConditional(o.data, got.Item)) {
            throw new OperationError(400, { __type: "ConditionalCheckFailedException" });
          }
        }
        continue;
      }
      const result = await runValidated(store, o.op, o.data);
      const old = result.Attributes as Record<string, unknown> | undefined;
      undo.push(() =>
        old
          ? runAction(store, "PutItem", { TableName: o.tableName, Item: old })
          : runAction(store, "DeleteItem", { TableName: o.tableName, Key: o.key }),
      );
    } catch (err) {
      for (const u of undo.reverse()) await u();
      if (err instanceof OperationError) {
        const type = String(err.body.__type);
        reasons[o.index] = type.endsWith("ConditionalCheckFailedException")
          ? { Code: "ConditionalCheckFailed", Message: "The conditional request failed" }
          : { Code: "ValidationError", Message: String(err.body.message ?? "") };
        throw cancelled();
      }
      throw err;
    }
  }
  return {};
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader("Content-Type", "application/x-amz-json-1.0");
  res.setHeader("Content-Length", Buffer.byteLength(text));
  res.setHeader("x-amzn-RequestId", Math.random().toString(36).slice(2));
  res.end(text);
}

async function readBody(req: IncomingMessage): Promise<Buffer | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_REQUEST_BYTES) return null;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/**
 * Starts the local DynamoDB on a port.
 *
 * @example
 * const ddb = await startDynalite({ path: null });
 * // new DynamoDBClient({ endpoint: ddb.endpoint, region: "local", credentials: ... })
 * await ddb.stop();
 */
export async function startDynalite(opts: DynaliteOpts = {}): Promise<DynaliteHandle> {
  const store = dynaliteDb.create({
    path: opts.path ?? undefined,
    createTableMs: 0,
    deleteTableMs: 0,
    updateTableMs: 0,
  });
  if (opts.path) {
    // Open now, so a folder in use by another process (LevelDB's lock) fails clearly at startup.
    try {
      await (store.db as unknown as { open(): Promise<void> }).open();
    } catch (err) {
      const cause = (err as { cause?: { message?: string } }).cause?.message ?? (err as Error).message;
      throw new Error(
        `cannot open the DynamoDB data in ${opts.path}: ${cause} (is another coding-env using this folder? Set CODING_ENV_DATA_DIR to another one.)`,
      );
    }
  }
  const lock = new SharedExclusiveLock();
  const requestCounts = new Map<string, number>();
  const requestMs = new Map<string, number>();

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
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
    const exclusive = target === "TransactWriteItems";
    const release = exclusive ? await lock.exclusive() : await lock.shared();
    try {
      let result: Record<string, unknown>;
      if (target === "TransactWriteItems") result = await transactWriteItems(store, data);
      else if (target === "UpdateTimeToLive") {
        // dynalite keeps items forever; the local stack's sweeper enforces expiry instead.
        result = { TimeToLiveSpecification: data.TimeToLiveSpecification };
      } else result = await runAction(store, target, data);
      send(res, 200, result);
    } catch (err) {
      if (err instanceof OperationError) send(res, err.statusCode, err.body);
      else
        send(res, 500, {
          __type: "com.amazonaws.dynamodb.v20120810#InternalServerError",
          message: String(err),
        });
    } finally {
      release();
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
