// DynamoDB episode store. One table, `pk`/`sk` strings, TTL attribute `expires_at`
// (docs/ARCHITECTURE.md):
//   EP#<tenant>#<id> META             the episode: settings, version (= step count), the Python state snapshot
//   EP#<tenant>#<id> SNAP#<v>#<nnn>  chunks of a snapshot too large to sit in META (version v)
//   EP#<tenant>#<id> STEP#<000001>   one trajectory step (JSON, gzip'ed when large)
//   EP#<tenant>#<id> REQ#<id>        idempotency record: request_id -> step number
// Every item carries the episode's `incarnation` (a random token minted by /reset): a reset that
// reuses an id starts a new incarnation, so leftovers of the old one are never read as the new
// one's, even if a slow step of the old one commits while the reset runs.
import { gunzipSync, gzipSync } from "node:zlib";
import { TransactionCanceledException } from "@aws-sdk/client-dynamodb";
import {
  BatchGetCommand,
  BatchWriteCommand,
  DeleteCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  type QueryCommandInput,
  ScanCommand,
  TransactWriteCommand,
} from "@aws-sdk/lib-dynamodb";
import { ConflictError, StateTooLargeError } from "../core/errors.js";

/** Largest snapshot kept inside the META item; larger ones are split into chunk items. */
export const INLINE_SNAPSHOT_BYTES = 300 * 1024;
/** Size of one snapshot chunk item's payload (DynamoDB items are at most 400 KB). */
export const SNAPSHOT_CHUNK_BYTES = 350 * 1024;
/** Largest stored step record (compressed); larger outputs are cut in the history, with a flag. */
const MAX_STEP_RECORD_BYTES = 300 * 1024;
/** Children (steps, chunks, requests) outlive their episode's idle expiry by this much at most. */
const CHILD_RETENTION_S = 30 * 86_400;

export type Policy = "openenv" | "full";

/** The episode as stored (META), with its snapshot. Times: ms since the epoch; expiry: s. */
export interface Episode {
  readonly id: string;
  readonly tenantId: string;
  readonly incarnation: string;
  /** Committed steps since reset; the conditional-write version. */
  readonly version: number;
  readonly policy: Policy;
  readonly additionalImports: readonly string[];
  readonly stepTimeoutS: number;
  readonly ttlS: number;
  readonly lastExitCode: number;
  readonly seed?: number;
  readonly forkedFrom?: string;
  readonly createdAtMs: number;
  readonly updatedAtMs: number;
  /** Epoch seconds (the DynamoDB TTL attribute). */
  readonly expiresAt: number;
  /** The executor's snapshot (base64), `null` before the first step. */
  readonly snapshot: string | null;
}

/** One step of the trajectory, as `GET /episodes/{id}/history` returns it. */
export interface StepRecord {
  readonly step: number;
  readonly code: string;
  readonly observation: { stdout: string; stderr: string; exit_code: number };
  readonly reward: number;
  readonly done: boolean;
  readonly metadata: Record<string, unknown>;
  readonly info: Record<string, unknown>;
  readonly request_id?: string;
  readonly started_at: string;
  readonly duration_ms: number;
  readonly history_truncated?: boolean;
}

/** Extra items a caller adds to a step's transaction (e.g. usage counters with quota conditions). */
export type TransactItem = NonNullable<
  ConstructorParameters<typeof TransactWriteCommand>[0]["TransactItems"]
>[number];

export interface CommitStepInput {
  /** The episode as read before the step (its version and incarnation are the condition). */
  readonly before: Episode;
  readonly snapshot: string;
  readonly lastExitCode: number;
  readonly nowMs: number;
  readonly record: StepRecord;
  readonly requestId?: string;
  readonly extraItems?: readonly TransactItem[];
}

export type CommitStepResult =
  | { readonly kind: "committed"; readonly episode: Episode }
  | { readonly kind: "duplicate" };

/** Count of DynamoDB round trips, for the benchmark and tests. */
export interface StoreStats {
  reads: number;
  writes: number;
}

/**
 * This process's copy of recently used episodes (with their snapshots), so a step can skip the
 * read when this process committed the previous one. Only a hint: every commit is still conditional
 * on the version and incarnation, so a stale copy can cause a retry, never a wrong write.
 */
export class EpisodeCache {
  private readonly entries = new Map<string, Episode>();
  private bytes = 0;

  constructor(
    /** @default 64 MiB of snapshots */
    private readonly maxBytes = 64 * 1024 * 1024,
    /** @default 10000 */
    private readonly maxEntries = 10_000,
  ) {}

  /** @param pk the episode's partition key ({@link episodePk}) */
  get(pk: string): Episode | undefined {
    const ep = this.entries.get(pk);
    if (ep) {
      // Map order is recency order.
      this.entries.delete(pk);
      this.entries.set(pk, ep);
    }
    return ep;
  }

  set(ep: Episode): void {
    const pk = episodePk(ep.tenantId, ep.id);
    this.delete(pk);
    const size = (ep.snapshot?.length ?? 0) + 512;
    if (size > this.maxBytes / 4) return;
    this.entries.set(pk, ep);
    this.bytes += size;
    for (const [oldest, old] of this.entries) {
      if (this.bytes <= this.maxBytes && this.entries.size <= this.maxEntries) break;
      this.entries.delete(oldest);
      this.bytes -= (old.snapshot?.length ?? 0) + 512;
    }
  }

  /** @param pk the episode's partition key ({@link episodePk}) */
  delete(pk: string): void {
    const old = this.entries.get(pk);
    if (!old) return;
    this.entries.delete(pk);
    this.bytes -= (old.snapshot?.length ?? 0) + 512;
  }
}

/**
 * An episode's partition key. Episode ids are scoped by tenant, so two tenants may use the same
 * (client-chosen) id and nothing about one tenant's ids is observable by another. Ids never contain
 * `#` (the API validates them), so the id is what follows the last `#`.
 */
export const episodePk = (tenantId: string, id: string) => `EP#${tenantId}#${id}`;
const metaKey = (tenantId: string, id: string) => ({ pk: episodePk(tenantId, id), sk: "META" });
const stepSk = (n: number) => `STEP#${String(n).padStart(6, "0")}`;
const chunkSk = (version: number, i: number) => `SNAP#${version}#${String(i).padStart(3, "0")}`;

function toBytes(value: unknown): Uint8Array | null {
  if (value instanceof Uint8Array) return value;
  return null;
}

export class EpisodeStore {
  readonly stats: StoreStats = { reads: 0, writes: 0 };
  readonly cache = new EpisodeCache();

  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly tableName: string,
    private readonly maxStateBytes: number,
  ) {}

  /** This process's last known copy of an episode, if it has one and it has not expired. */
  cached(tenantId: string, id: string, nowMs = Date.now()): Episode | null {
    const pk = episodePk(tenantId, id);
    const ep = this.cache.get(pk);
    if (!ep) return null;
    if (ep.expiresAt * 1000 <= nowMs) {
      this.cache.delete(pk);
      return null;
    }
    return ep;
  }

  /** Reads an episode (strongly consistent) with its snapshot; `null` if absent or expired. */
  async get(tenantId: string, id: string, nowMs = Date.now()): Promise<Episode | null> {
    this.stats.reads++;
    const out = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: metaKey(tenantId, id), ConsistentRead: true }),
    );
    const ep = await this.episodeFromItem(out.Item, nowMs);
    if (ep) this.cache.set(ep);
    else this.cache.delete(episodePk(tenantId, id));
    return ep;
  }

  /**
   * Reads an episode and, in the same round trip, the idempotency record of `requestId`.
   * @returns the episode (or null) and the step number stored for that request, if any.
   */
  async getWithRequest(
    tenantId: string,
    id: string,
    requestId: string,
    nowMs = Date.now(),
  ): Promise<{ episode: Episode | null; replayStep: number | null }> {
    this.stats.reads++;
    const reqKey = { pk: episodePk(tenantId, id), sk: `REQ#${requestId}` };
    const out = await this.doc.send(
      new BatchGetCommand({
        RequestItems: { [this.tableName]: { Keys: [metaKey(tenantId, id), reqKey], ConsistentRead: true } },
      }),
    );
    const items = out.Responses?.[this.tableName] ?? [];
    const meta = items.find((i) => i.sk === "META");
    const req = items.find((i) => i.sk === reqKey.sk);
    const episode = await this.episodeFromItem(meta, nowMs);
    const replayStep =
      episode && req && req.incarnation === episode.incarnation && typeof req.step === "number"
        ? req.step
        : null;
    return { episode, replayStep };
  }

  private async episodeFromItem(
    item: Record<string, unknown> | undefined,
    nowMs: number,
  ): Promise<Episode | null> {
    if (!item) return null;
    const expiresAt = Number(item.expires_at);
    // DynamoDB deletes expired items lazily (within days): expiry is enforced on read.
    if (expiresAt * 1000 <= nowMs) return null;
    const pk = String(item.pk);
    const id = pk.slice(pk.lastIndexOf("#") + 1);
    const version = Number(item.version);
    let snapshot: string | null = null;
    const chunks = Number(item.snapshot_chunks ?? 0);
    if (chunks > 0) {
      snapshot = await this.readChunks(pk, id, version, chunks);
    } else {
      const bytes = toBytes(item.snapshot);
      snapshot = bytes ? Buffer.from(bytes).toString("base64") : null;
    }
    return {
      id,
      tenantId: String(item.tenant_id),
      incarnation: String(item.incarnation),
      version,
      policy: item.policy === "full" ? "full" : "openenv",
      additionalImports: Array.isArray(item.additional_imports) ? (item.additional_imports as string[]) : [],
      stepTimeoutS: Number(item.step_timeout_s),
      ttlS: Number(item.ttl_s),
      lastExitCode: Number(item.last_exit_code ?? 0),
      ...(typeof item.seed === "number" ? { seed: item.seed } : {}),
      ...(typeof item.forked_from === "string" ? { forkedFrom: item.forked_from } : {}),
      createdAtMs: Number(item.created_at_ms),
      updatedAtMs: Number(item.updated_at_ms),
      expiresAt,
      snapshot,
    };
  }

  private async readChunks(pk: string, id: string, version: number, count: number): Promise<string> {
    const parts: Uint8Array[] = [];
    for await (const it of this.queryAll({
      KeyConditionExpression: "pk = :pk AND begins_with(sk, :prefix)",
      ExpressionAttributeValues: { ":pk": pk, ":prefix": `SNAP#${version}#` },
    })) {
      const b = toBytes(it.data);
      if (b) parts.push(b);
    }
    // A step committed between our two reads and replaced these chunks: retry the request.
    if (parts.length !== count) throw new ConflictError(id);
    return Buffer.concat(parts).toString("base64");
  }

  private metaItem(ep: Episode, snapshotBytes: Uint8Array | null, chunks: number): Record<string, unknown> {
    return {
      ...metaKey(ep.tenantId, ep.id),
      tenant_id: ep.tenantId,
      incarnation: ep.incarnation,
      version: ep.version,
      policy: ep.policy,
      additional_imports: [...ep.additionalImports],
      step_timeout_s: ep.stepTimeoutS,
      ttl_s: ep.ttlS,
      last_exit_code: ep.lastExitCode,
      seed: ep.seed,
      forked_from: ep.forkedFrom,
      created_at_ms: ep.createdAtMs,
      updated_at_ms: ep.updatedAtMs,
      expires_at: ep.expiresAt,
      snapshot_chunks: chunks,
      ...(chunks === 0 && snapshotBytes ? { snapshot: snapshotBytes } : {}),
    };
  }

  /** Splits a snapshot into META-inline bytes or chunk items; throws `StateTooLargeError` past the limit. */
  private layoutSnapshot(
    ep: Episode,
    snapshot: string | null,
  ): { inline: Uint8Array | null; chunkItems: Record<string, unknown>[] } {
    if (snapshot === null) return { inline: null, chunkItems: [] };
    const bytes = Buffer.from(snapshot, "base64");
    if (bytes.length > this.maxStateBytes) throw new StateTooLargeError(bytes.length, this.maxStateBytes);
    if (bytes.length <= INLINE_SNAPSHOT_BYTES) return { inline: bytes, chunkItems: [] };
    const chunkItems: Record<string, unknown>[] = [];
    for (let off = 0, i = 0; off < bytes.length; off += SNAPSHOT_CHUNK_BYTES, i++) {
      chunkItems.push({
        pk: episodePk(ep.tenantId, ep.id),
        sk: chunkSk(ep.version, i),
        incarnation: ep.incarnation,
        expires_at: ep.expiresAt + CHILD_RETENTION_S,
        data: bytes.subarray(off, off + SNAPSHOT_CHUNK_BYTES),
      });
    }
    return { inline: null, chunkItems };
  }

  /**
   * Creates (or replaces, same id) an episode. Leftover items of an earlier incarnation are
   * ignored by their incarnation and cleaned up best-effort.
   */
  async create(
    ep: Episode,
    opts: { replaceExisting: boolean; extraItems?: readonly TransactItem[] },
  ): Promise<void> {
    const { inline, chunkItems } = this.layoutSnapshot(ep, ep.snapshot);
    if (chunkItems.length > 0) await this.batchPut(chunkItems);
    this.stats.writes++;
    const put = { TableName: this.tableName, Item: this.metaItem(ep, inline, chunkItems.length) };
    const extra = opts.extraItems ?? [];
    if (extra.length > 0) {
      await this.doc.send(new TransactWriteCommand({ TransactItems: [{ Put: put }, ...extra] }));
    } else {
      await this.doc.send(new PutCommand(put));
    }
    this.cache.set(ep);
    if (opts.replaceExisting) await this.deleteChildren(episodePk(ep.tenantId, ep.id), ep.incarnation);
  }

  /**
   * Commits one step in one transaction: META moves from `before.version` to +1 only if it is still
   * there (same incarnation), with the new snapshot, the step record and the idempotency record.
   * @throws ConflictError when another request changed the episode first.
   * @returns `duplicate` when the request id was committed by a concurrent twin of this request.
   */
  async commitStep(input: CommitStepInput): Promise<CommitStepResult> {
    const { before, nowMs } = input;
    const after: Episode = {
      ...before,
      version: before.version + 1,
      lastExitCode: input.lastExitCode,
      updatedAtMs: nowMs,
      expiresAt: Math.floor(nowMs / 1000) + before.ttlS,
      snapshot: input.snapshot,
    };
    const { inline, chunkItems } = this.layoutSnapshot(after, input.snapshot);
    const childExpiry = after.expiresAt + CHILD_RETENTION_S;
    const items: TransactItem[] = [
      {
        Put: {
          TableName: this.tableName,
          Item: this.metaItem(after, inline, chunkItems.length),
          ConditionExpression: "version = :v AND incarnation = :inc",
          ExpressionAttributeValues: { ":v": before.version, ":inc": before.incarnation },
        },
      },
      {
        Put: {
          TableName: this.tableName,
          Item: {
            pk: episodePk(before.tenantId, before.id),
            sk: stepSk(after.version),
            incarnation: before.incarnation,
            expires_at: childExpiry,
            ...encodeRecord(input.record),
          },
        },
      },
    ];
    if (input.requestId !== undefined) {
      // Idempotency record, in the step's own transaction. We looked at
      // @aws-lambda-powertools/idempotency: it writes an INPROGRESS record before the handler and
      // the result after it, in separate writes, keyed by a hash of the whole payload. Here that
      // would add a round trip per step, could leave a stored result for a step whose commit
      // failed (or a committed step with no record), and key on the payload rather than on
      // (episode, request_id). One conditional Put in the commit transaction is atomic with the
      // step: the record exists if and only if the step committed; it points at the step record,
      // from which the response is rebuilt. Trade-off: two truly concurrent duplicates may both
      // reach the executor (side-effect free), but only one commits and both answer with it.
      items.push({
        Put: {
          TableName: this.tableName,
          Item: {
            pk: episodePk(before.tenantId, before.id),
            sk: `REQ#${input.requestId}`,
            incarnation: before.incarnation,
            step: after.version,
            expires_at: childExpiry,
          },
          ConditionExpression: "attribute_not_exists(pk) OR incarnation <> :inc",
          ExpressionAttributeValues: { ":inc": before.incarnation },
        },
      });
    }
    for (const c of chunkItems) items.push({ Put: { TableName: this.tableName, Item: c } });
    // The previous version's chunks are dropped in the same transaction.
    const beforeBytes = before.snapshot ? Buffer.byteLength(before.snapshot, "base64") : 0;
    if (beforeBytes > INLINE_SNAPSHOT_BYTES) {
      const n = Math.ceil(beforeBytes / SNAPSHOT_CHUNK_BYTES);
      for (let i = 0; i < n; i++) {
        items.push({
          Delete: {
            TableName: this.tableName,
            Key: { pk: episodePk(before.tenantId, before.id), sk: chunkSk(before.version, i) },
          },
        });
      }
    }
    if (input.extraItems) items.push(...input.extraItems);
    this.stats.writes++;
    try {
      await this.doc.send(new TransactWriteCommand({ TransactItems: items }));
    } catch (err) {
      this.cache.delete(episodePk(before.tenantId, before.id));
      if (
        err instanceof TransactionCanceledException ||
        (err as { name?: string }).name === "TransactionCanceledException"
      ) {
        const reasons = (err as TransactionCanceledException).CancellationReasons ?? [];
        if (input.requestId !== undefined && reasons[2]?.Code === "ConditionalCheckFailed") {
          return { kind: "duplicate" };
        }
        if (reasons[0]?.Code === "ConditionalCheckFailed") throw new ConflictError(before.id);
      }
      throw err;
    }
    this.cache.set(after);
    return { kind: "committed", episode: after };
  }

  /** Reads one step record of the current incarnation. */
  async getStep(episode: Episode, step: number): Promise<StepRecord | null> {
    this.stats.reads++;
    const out = await this.doc.send(
      new GetCommand({
        TableName: this.tableName,
        Key: { pk: episodePk(episode.tenantId, episode.id), sk: stepSk(step) },
        ConsistentRead: true,
      }),
    );
    if (!out.Item || out.Item.incarnation !== episode.incarnation) return null;
    return decodeRecord(out.Item);
  }

  /** The trajectory, oldest first. */
  async history(episode: Episode): Promise<StepRecord[]> {
    const steps: StepRecord[] = [];
    for await (const it of this.queryAll({
      KeyConditionExpression: "pk = :pk AND begins_with(sk, :prefix)",
      ExpressionAttributeValues: { ":pk": episodePk(episode.tenantId, episode.id), ":prefix": "STEP#" },
    })) {
      if (it.incarnation !== episode.incarnation) continue;
      const rec = decodeRecord(it);
      if (rec.step <= episode.version) steps.push(rec);
    }
    return steps;
  }

  /** Writes a copy of `source` (state and history) as the new episode `target`; META last. */
  async fork(source: Episode, target: Episode, extraItems: readonly TransactItem[] = []): Promise<void> {
    const steps = await this.history(source);
    const childExpiry = target.expiresAt + CHILD_RETENTION_S;
    await this.batchPut(
      steps.map((rec) => ({
        pk: episodePk(target.tenantId, target.id),
        sk: stepSk(rec.step),
        incarnation: target.incarnation,
        expires_at: childExpiry,
        ...encodeRecord(rec),
      })),
    );
    await this.create(target, { replaceExisting: false, extraItems });
  }

  /** Deletes an episode (META first, so it is gone at once; its children best-effort after). */
  async delete(episode: Episode, extraItems: readonly TransactItem[] = []): Promise<boolean> {
    this.stats.writes++;
    this.cache.delete(episodePk(episode.tenantId, episode.id));
    const del = {
      TableName: this.tableName,
      Key: metaKey(episode.tenantId, episode.id),
      ConditionExpression: "incarnation = :inc",
      ExpressionAttributeValues: { ":inc": episode.incarnation },
    };
    try {
      if (extraItems.length > 0) {
        await this.doc.send(new TransactWriteCommand({ TransactItems: [{ Delete: del }, ...extraItems] }));
      } else {
        await this.doc.send(new DeleteCommand(del));
      }
    } catch (err) {
      const name = (err as { name?: string }).name;
      if (name === "ConditionalCheckFailedException") return false;
      const reasons = (err as TransactionCanceledException).CancellationReasons;
      if (name === "TransactionCanceledException" && reasons?.[0]?.Code === "ConditionalCheckFailed")
        return false;
      throw err;
    }
    this.cache.delete(episodePk(episode.tenantId, episode.id));
    await this.deleteChildren(episodePk(episode.tenantId, episode.id), null);
    return true;
  }

  /** Deletes every non-META item under the episode's key not of `keepIncarnation`. */
  private async deleteChildren(pk: string, keepIncarnation: string | null): Promise<void> {
    const keys: Array<{ pk: string; sk: string }> = [];
    for await (const it of this.queryAll({
      KeyConditionExpression: "pk = :pk",
      ExpressionAttributeValues: { ":pk": pk },
      ProjectionExpression: "pk, sk, incarnation",
    })) {
      if (it.sk === "META") continue;
      if (keepIncarnation !== null && it.incarnation === keepIncarnation) continue;
      keys.push({ pk: String(it.pk), sk: String(it.sk) });
    }
    await this.batchWrite(keys.map((Key) => ({ DeleteRequest: { Key } })));
  }

  /** Every item of a strongly consistent query on this table, page by page (a read per page). */
  private async *queryAll(
    input: Omit<QueryCommandInput, "TableName" | "ConsistentRead" | "ExclusiveStartKey">,
  ): AsyncGenerator<Record<string, unknown>> {
    let startKey: Record<string, unknown> | undefined;
    do {
      this.stats.reads++;
      const out = await this.doc.send(
        new QueryCommand({
          ...input,
          TableName: this.tableName,
          ConsistentRead: true,
          ExclusiveStartKey: startKey,
        }),
      );
      yield* out.Items ?? [];
      startKey = out.LastEvaluatedKey;
    } while (startKey);
  }

  private async batchPut(items: Record<string, unknown>[]): Promise<void> {
    await this.batchWrite(items.map((Item) => ({ PutRequest: { Item } })));
  }

  private async batchWrite(requests: Array<Record<string, unknown>>): Promise<void> {
    // 25 per call, and small enough in bytes (16 MB per call; chunk items are ~350 KB).
    const batches: Array<Array<Record<string, unknown>>> = [];
    let current: Array<Record<string, unknown>> = [];
    let bytes = 0;
    for (const r of requests) {
      const size = approxSize(r);
      if (current.length === 25 || bytes + size > 12 * 1024 * 1024) {
        batches.push(current);
        current = [];
        bytes = 0;
      }
      current.push(r);
      bytes += size;
    }
    if (current.length > 0) batches.push(current);
    for (const batch of batches) {
      let pending: Array<Record<string, unknown>> = batch;
      for (let attempt = 0; pending.length > 0; attempt++) {
        this.stats.writes++;
        const out = await this.doc.send(
          new BatchWriteCommand({ RequestItems: { [this.tableName]: pending as never } }),
        );
        pending = (out.UnprocessedItems?.[this.tableName] ?? []) as Array<Record<string, unknown>>;
        if (pending.length > 0) {
          if (attempt >= 8) throw new Error("DynamoDB kept items unprocessed");
          await new Promise((r) => setTimeout(r, 20 * 2 ** attempt));
        }
      }
    }
  }

  /** Deletes expired items (DynamoDB TTL does this in AWS; dynalite does not). @returns count */
  async sweepExpired(nowMs = Date.now()): Promise<number> {
    const keys: Array<{ pk: string; sk: string }> = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const out = await this.doc.send(
        new ScanCommand({
          TableName: this.tableName,
          FilterExpression: "expires_at < :now",
          ExpressionAttributeValues: { ":now": Math.floor(nowMs / 1000) },
          ProjectionExpression: "pk, sk",
          ExclusiveStartKey: startKey,
        }),
      );
      for (const it of out.Items ?? []) keys.push({ pk: String(it.pk), sk: String(it.sk) });
      startKey = out.LastEvaluatedKey;
    } while (startKey);
    await this.batchWrite(keys.map((Key) => ({ DeleteRequest: { Key } })));
    return keys.length;
  }
}

function approxSize(r: Record<string, unknown>): number {
  let n = 0;
  JSON.stringify(r, (_k, v: unknown) => {
    if (v instanceof Uint8Array) {
      n += v.length;
      return null;
    }
    return v;
  });
  return n + 1024;
}

/** Step records are JSON; large ones are gzip'ed, and outputs are cut if still too large. */
function encodeRecord(rec: StepRecord): Record<string, unknown> {
  const json = JSON.stringify(rec);
  if (json.length <= 8 * 1024) return { json };
  let gz = gzipSync(json, { level: 1 });
  if (gz.length > MAX_STEP_RECORD_BYTES) {
    const keep = 64 * 1024;
    const cut: StepRecord = {
      ...rec,
      code: rec.code.length > keep ? rec.code.slice(0, keep) : rec.code,
      observation: {
        ...rec.observation,
        stdout: rec.observation.stdout.slice(0, keep),
        stderr: rec.observation.stderr.slice(0, keep),
      },
      history_truncated: true,
    };
    gz = gzipSync(JSON.stringify(cut), { level: 1 });
  }
  return { gz };
}

function decodeRecord(item: Record<string, unknown>): StepRecord {
  if (typeof item.json === "string") return JSON.parse(item.json) as StepRecord;
  const gz = toBytes(item.gz);
  if (!gz) throw new Error("corrupt step record");
  return JSON.parse(gunzipSync(gz).toString("utf8")) as StepRecord;
}
