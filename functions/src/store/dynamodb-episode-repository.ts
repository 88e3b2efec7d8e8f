// The episode repository on DynamoDB (layout in layout.ts). A step costs one strongly consistent
// Query (head + latest version) and one conditional PutItem of a new immutable version item; no
// transaction, no item rewritten per step (updates are billed on the larger of old and new item).
import { randomBytes } from "node:crypto";
import type { AttributeValue, DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { DeleteCommand, GetCommand, PutCommand, UpdateCommand } from "@aws-sdk/lib-dynamodb";
import { unmarshall } from "@aws-sdk/util-dynamodb";
import type {
  ClaimStepInput,
  ClaimStepResult,
  CommitStepInput,
  CommitStepResult,
  Episode,
  EpisodeRepository,
  HistoryPage,
  LoadedEpisode,
  NewEpisode,
  StateTransfer,
  StepClaim,
  StepRecord,
  UncommittedExecution,
} from "../core/episode-repository.js";
import { ForkTooLargeError } from "../core/errors.js";
import { envelopeJsonBytes } from "../core/response-size.js";
import { currentDeadline } from "../executor/deadline.js";
import { TableClient } from "./dynamodb-batch.js";
import { DynamoDbStepClaims } from "./dynamodb-step-claims.js";
import { deleteEpisodeRemains, sweepExpired } from "./episode-cleanup.js";
import { itemBytes, MAX_ITEM_BYTES, writeUnits } from "./item-size.js";
import {
  episodePk,
  executionSk,
  HEAD_SK,
  incarnationOfSk,
  METER,
  VERSION_PREFIX,
  versionOfSk,
  versionPrefix,
  versionSk,
} from "./layout.js";
import { decodeRecord, encodeRecord, findRecentRequest, nextRecentRequests } from "./record-codec.js";
import type { S3StateStore } from "./s3-state.js";
import { StateObjectItems, stateObjectOf } from "./s3-state-items.js";
import { SnapshotItems } from "./snapshot-items.js";

export { INLINE_SNAPSHOT_BYTES, SNAPSHOT_CHUNK_BYTES } from "./snapshot-items.js";

/** Chunks outlive the episode's idle expiry by this much (their TTL; superseded ones go free). */
const CHUNK_RETENTION_S = 86_400;
/** Records of executions that did not commit are kept this long after the roll-up (TTL). */
const EXECUTION_RETENTION_S = 30 * 86_400;
/**
 * The head's TTL is refreshed lazily: when a step finds it less than `ttl` away, it is set to
 * `ttl × 1.1` ahead. So it never fires before the episode's real expiry (`ttl` after its last
 * step) and is rewritten at most once per `ttl / 10` of activity.
 */
const HEAD_TTL_SLACK = 1.1;

/** Version items a fork copies per Query page and BatchWriteItem (its memory: one page, <= 1 MB read). */
const FORK_PAGE_ITEMS = 25;
/** Time a fork keeps after its copy to delete what it wrote if it fails, and to answer. */
const FORK_CLEANUP_RESERVE_MS = 8_000;
/** Longest a fork copies, whatever the request's deadline (the AWS deadline, 27 s, less the reserve). */
const FORK_COPY_BUDGET_MS = 19_000;

/** The UTC day usage is booked on. */
const dayOf = (ms: number) => new Date(ms).toISOString().slice(0, 10);
/** Billed executor milliseconds: rounded up to a whole millisecond. */
const billedMs = (ms: number) => (Number.isFinite(ms) && ms > 0 ? Math.ceil(ms) : 0);

/**
 * A new incarnation: 12 hex digits of the creation time in ms, then 8 random ones; strictly after
 * `after` (the episode's previous incarnation), so the newest incarnation's items sort last.
 */
export function mintIncarnation(nowMs: number, after: string | null): string {
  let time = BigInt(Math.trunc(nowMs));
  if (after !== null && /^[0-9a-f]{12}/.test(after)) {
    const previous = BigInt(`0x${after.slice(0, 12)}`);
    if (previous >= time) time = previous + 1n;
  }
  return time.toString(16).padStart(12, "0") + randomBytes(4).toString("hex");
}

function bytesOf(value: unknown): Uint8Array | undefined {
  return value instanceof Uint8Array ? value : undefined;
}

export interface DynamoDbEpisodeRepositoryOpts {
  readonly doc: DynamoDBDocumentClient;
  /**
   * A plain client built with `cacheMiddleware: true` for a step's Query and PutItem (TableClient):
   * about a fifth less CPU per pair than through the document client. @default the document client's
   */
  readonly client?: DynamoDBClient;
  readonly tableName: string;
  /** Largest snapshot kept (bytes); larger ones are refused (413). */
  readonly maxStateBytes: number;
  /** Bytes of snapshots this process keeps to skip re-reading unchanged chunks. @default 64 MiB */
  readonly cacheBytes?: number;
  /** States over the inline size go to S3 (s3-state-items.ts); without it they stay in DynamoDB. */
  readonly stateObjects?: S3StateStore;
}

export class DynamoDbEpisodeRepository implements EpisodeRepository {
  readonly table: TableClient;
  private readonly maxStateBytes: number;
  private readonly snapshots: SnapshotItems;
  /** States kept in S3, when a state bucket is configured. */
  readonly stateObjects: StateObjectItems | null;
  /** The episode's step claim (one conditional write before the executor runs). */
  private readonly claims: DynamoDbStepClaims;
  /** The head's stored TTL of each loaded episode, for the lazy refresh. */
  private readonly headTtl = new WeakMap<Episode, number>();
  /** The recent-requests attribute of each loaded version, carried into the next version. */
  private readonly recent = new WeakMap<Episode, Uint8Array | undefined>();

  constructor(opts: DynamoDbEpisodeRepositoryOpts) {
    this.table = new TableClient(opts.doc, opts.tableName, undefined, opts.client);
    this.maxStateBytes = opts.maxStateBytes;
    this.snapshots = new SnapshotItems(this.table, opts.maxStateBytes, opts.cacheBytes ?? 64 * 1024 * 1024);
    this.stateObjects = opts.stateObjects ? new StateObjectItems(this.table, opts.stateObjects) : null;
    this.claims = new DynamoDbStepClaims(this.table);
  }

  /** Requests made and units billed so far (for the benchmark and tests). */
  get stats() {
    return this.table.stats;
  }

  private get doc() {
    return this.table.doc;
  }
  private get tableName() {
    return this.table.tableName;
  }

  /** The head and the latest version item (one Query), and which incarnation the latter is of. */
  private async readHead(
    pk: string,
  ): Promise<{ head: Record<string, unknown> | undefined; latest: Record<string, unknown> | undefined }> {
    const { items } = await this.table.query({
      KeyConditionExpression: "pk = :pk AND sk BETWEEN :lo AND :hi",
      ExpressionAttributeValues: { ":pk": pk, ":lo": VERSION_PREFIX, ":hi": HEAD_SK },
      ScanIndexForward: false,
      Limit: 2,
    });
    const head = items.find((i) => i.sk === HEAD_SK);
    const latest = items.find((i) => String(i.sk).startsWith(VERSION_PREFIX));
    return { head, latest };
  }

  async load(
    tenantId: string,
    id: string,
    opts: { readonly nowMs: number; readonly requestId?: string },
  ): Promise<LoadedEpisode | null> {
    const pk = episodePk(tenantId, id);
    const read = await this.readHead(pk);
    const head = read.head;
    let latest = read.latest;
    if (!head || head.tenant_id !== tenantId) return null;
    const incarnation = String(head.incarnation);
    if (latest && incarnationOfSk(String(latest.sk)) !== incarnation) {
      // The latest item is of another incarnation: a leftover, or a step that committed after a
      // concurrent reset replaced its incarnation. Read this incarnation's latest (rare).
      const { items } = await this.table.query({
        KeyConditionExpression: "pk = :pk AND begins_with(sk, :prefix)",
        ExpressionAttributeValues: { ":pk": pk, ":prefix": versionPrefix(incarnation) },
        ScanIndexForward: false,
        Limit: 1,
      });
      latest = items[0];
    }
    const ttlS = Number(head.ttl_s);
    const createdAtMs = Number(head.created_at_ms);
    const updatedAtMs = latest ? Number(latest.at) : createdAtMs;
    const expiresAt = Math.floor(updatedAtMs / 1000) + ttlS;
    // DynamoDB deletes expired items lazily (within days): expiry is enforced on read, exactly.
    if (expiresAt * 1000 <= opts.nowMs) return null;
    const version = latest ? versionOfSk(String(latest.sk)) : 0;
    let record: StepRecord | null = null;
    if (latest) record = decodeRecord(version, latest.rec);
    const stateObject = latest ? stateObjectOf(latest) : undefined;
    const episode: Episode = {
      id,
      tenantId,
      incarnation,
      version,
      policy: head.policy === "full" ? "full" : "openenv",
      additionalImports: Array.isArray(head.additional_imports) ? (head.additional_imports as string[]) : [],
      stepTimeoutS: Number(head.step_timeout_s),
      ttlS,
      lastExitCode: record ? record.observation.exit_code : 0,
      ...(typeof head.seed === "number" ? { seed: head.seed } : {}),
      ...(typeof head.forked_from === "string" ? { forkedFrom: head.forked_from } : {}),
      createdAtMs,
      updatedAtMs,
      expiresAt,
      snapshot: latest ? await this.snapshots.read(pk, incarnation, version, latest) : null,
      ...(stateObject ? { stateObject } : {}),
    };
    this.headTtl.set(episode, Number(head.expires_at));
    this.recent.set(episode, bytesOf(latest?.rids));
    let replay: StepRecord | null = null;
    if (opts.requestId !== undefined && latest) {
      const step = findRecentRequest(bytesOf(latest.rids), opts.requestId);
      const rec = step === null ? null : step === version ? record : await this.getStep(episode, step);
      if (rec && rec.request_id === opts.requestId) replay = rec;
    }
    return { episode, replay };
  }

  async create(
    spec: NewEpisode,
    opts: { readonly replaceExisting: boolean; readonly nowMs: number },
  ): Promise<{ episode: Episode; replaced: string | null }> {
    const pk = episodePk(spec.tenantId, spec.id);
    let replaced: string | null = null;
    if (opts.replaceExisting) {
      // The newest incarnation this id had (live, expired or a leftover): the new one sorts after it.
      const { head, latest } = await this.readHead(pk);
      const latestIncarnation = latest ? incarnationOfSk(String(latest.sk)) : null;
      const headIncarnation = typeof head?.incarnation === "string" ? head.incarnation : null;
      const known = [headIncarnation, latestIncarnation].filter((x): x is string => x !== null).sort();
      replaced = known[known.length - 1] ?? null;
    }
    const episode: Episode = {
      ...spec,
      incarnation: mintIncarnation(opts.nowMs, replaced),
      version: 0,
      lastExitCode: 0,
      updatedAtMs: opts.nowMs,
      expiresAt: Math.floor(opts.nowMs / 1000) + spec.ttlS,
      snapshot: null,
    };
    await this.putHead(episode, 0);
    if (replaced !== null) {
      await deleteEpisodeRemains(this.table, pk, { keepIncarnation: episode.incarnation });
      // The replaced incarnation's state objects (the new one has none yet), but shared ones.
      if (this.stateObjects) {
        const shared = await this.stateObjects.sharedKeys(pk);
        await this.stateObjects.deleteEpisodeObjects(spec.tenantId, spec.id, shared);
      }
    }
    return { episode, replaced };
  }

  private async putHead(ep: Episode, stateBytes: number): Promise<void> {
    const item = {
      pk: episodePk(ep.tenantId, ep.id),
      sk: HEAD_SK,
      tenant_id: ep.tenantId,
      incarnation: ep.incarnation,
      policy: ep.policy,
      additional_imports: [...ep.additionalImports],
      step_timeout_s: ep.stepTimeoutS,
      ttl_s: ep.ttlS,
      ...(ep.seed !== undefined ? { seed: ep.seed } : {}),
      ...(ep.forkedFrom !== undefined ? { forked_from: ep.forkedFrom } : {}),
      created_at_ms: ep.createdAtMs,
      expires_at: ep.expiresAt,
      // Usage: the roll-up counts a new incarnation as an episode created that day.
      day: dayOf(ep.createdAtMs),
      ...(stateBytes > 0 ? { state_bytes: stateBytes } : {}),
    };
    this.table.stats.writes++;
    this.table.stats.writeUnits += writeUnits(itemBytes(item));
    await this.doc.send(new PutCommand({ TableName: this.tableName, Item: item }));
  }

  async commitStep(input: CommitStepInput): Promise<CommitStepResult> {
    const { before, nowMs } = input;
    const pk = episodePk(before.tenantId, before.id);
    const version = before.version + 1;
    const expiresAt = Math.floor(nowMs / 1000) + before.ttlS;
    const stateObject =
      input.stateObject && this.stateObjects
        ? await this.stateObjects.attrs(before, version, input.stateObject, nowMs)
        : null;
    const snapshotAttrs = stateObject
      ? stateObject.attrs
      : await this.snapshots.store(pk, input.snapshot, expiresAt + CHUNK_RETENTION_S);
    const rids = nextRecentRequests(this.recent.get(before), input.requestId, version);
    const item: Record<string, unknown> = {
      pk,
      sk: versionSk(before.incarnation, version),
      [METER.tenant]: before.tenantId,
      [METER.day]: dayOf(nowMs),
      [METER.executorMs]: billedMs(input.usage.executorMs),
      [METER.stateBytes]: Math.max(0, Math.trunc(input.usage.stateBytes)),
      at: nowMs,
      rec: encodeRecord(input.record),
      ...snapshotAttrs,
      ...(rids ? { rids } : {}),
    };
    const size = itemBytes(item);
    if (size > MAX_ITEM_BYTES) throw new Error(`version item of ${size} bytes`); // bounded by the codec
    this.table.stats.writes++;
    this.table.stats.writeUnits += writeUnits(size);
    try {
      await this.table.putItem(item, {
        ConditionExpression: "attribute_not_exists(pk)",
        ReturnValuesOnConditionCheckFailure: "ALL_OLD",
      });
    } catch (err) {
      if ((err as { name?: string }).name !== "ConditionalCheckFailedException") throw err;
      // Another request committed this version first. Its item came back with the refusal.
      const raw = (err as { Item?: Record<string, AttributeValue> }).Item;
      let winner = raw ? unmarshall(raw, { wrapNumbers: false }) : undefined;
      if (!winner && input.requestId !== undefined) {
        // An endpoint without ReturnValuesOnConditionCheckFailure: read the winner (rare path).
        this.table.stats.reads++;
        const out = await this.doc.send(
          new GetCommand({ TableName: this.tableName, Key: { pk, sk: item.sk }, ConsistentRead: true }),
        );
        winner = out.Item;
      }
      if (input.requestId !== undefined && winner?.rec !== undefined) {
        const rec = decodeRecord(version, winner.rec);
        if (rec.request_id === input.requestId) return { kind: "duplicate", record: rec };
      }
      return { kind: "conflict" };
    }
    // The new version names its own state: none of `before`'s object is carried over.
    const { stateObject: _before, ...kept } = before;
    const after: Episode = {
      ...kept,
      version,
      lastExitCode: input.lastExitCode,
      updatedAtMs: nowMs,
      expiresAt,
      snapshot: stateObject ? null : input.snapshot,
      ...(stateObject ? { stateObject: stateObject.ref } : {}),
    };
    if (snapshotAttrs.snap_id !== undefined && input.snapshot !== null)
      this.snapshots.remember(pk, before.incarnation, version, input.snapshot);
    this.recent.set(after, rids);
    await this.refreshHeadTtl(before, after, nowMs);
    return { kind: "committed", episode: after };
  }

  /** Keeps the head's TTL at least `ttl` ahead (see {@link HEAD_TTL_SLACK}); rare, one small update. */
  private async refreshHeadTtl(before: Episode, after: Episode, nowMs: number): Promise<void> {
    const stored = this.headTtl.get(before) ?? 0;
    const needed = Math.floor(nowMs / 1000) + before.ttlS;
    if (stored >= needed) {
      this.headTtl.set(after, stored);
      return;
    }
    const next = Math.floor(nowMs / 1000) + Math.ceil(before.ttlS * HEAD_TTL_SLACK);
    this.table.stats.writes++;
    this.table.stats.writeUnits += 1;
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: episodePk(before.tenantId, before.id), sk: HEAD_SK },
          UpdateExpression: "SET expires_at = :exp",
          ConditionExpression: "incarnation = :inc AND expires_at < :exp",
          ExpressionAttributeValues: { ":exp": next, ":inc": before.incarnation },
        }),
      );
    } catch (err) {
      // Refreshed by a concurrent step, or the episode was reset or deleted: nothing to do.
      if ((err as { name?: string }).name !== "ConditionalCheckFailedException") throw err;
    }
    this.headTtl.set(after, next);
  }

  claimStep(input: ClaimStepInput): Promise<ClaimStepResult> {
    return this.claims.claim(input);
  }

  releaseStep(episode: Episode, claim: StepClaim): Promise<void> {
    return this.claims.release(episode, claim);
  }

  async recordExecution(execution: UncommittedExecution): Promise<void> {
    const item = {
      pk: episodePk(execution.tenantId, execution.episodeId),
      sk: executionSk(execution.nowMs, randomBytes(4).toString("hex")),
      [METER.tenant]: execution.tenantId,
      [METER.day]: dayOf(execution.nowMs),
      [METER.executorMs]: billedMs(execution.executorMs),
      reason: execution.reason,
      expires_at: Math.floor(execution.nowMs / 1000) + EXECUTION_RETENTION_S,
    };
    this.table.stats.writes++;
    this.table.stats.writeUnits += writeUnits(itemBytes(item));
    await this.doc.send(new PutCommand({ TableName: this.tableName, Item: item }));
  }

  async getStep(episode: Episode, step: number): Promise<StepRecord | null> {
    this.table.stats.reads++;
    const out = await this.doc.send(
      new GetCommand({
        TableName: this.tableName,
        Key: { pk: episodePk(episode.tenantId, episode.id), sk: versionSk(episode.incarnation, step) },
        ConsistentRead: true,
      }),
    );
    if (!out.Item) return null;
    this.table.stats.readUnits += Math.max(1, Math.ceil(itemBytes(out.Item) / 4096));
    return decodeRecord(step, out.Item.rec);
  }

  async historyPage(
    episode: Episode,
    opts: { readonly afterStep: number; readonly limit: number; readonly maxBytes: number },
  ): Promise<HistoryPage> {
    const steps: StepRecord[] = [];
    let bytes = 0;
    let startKey: Record<string, unknown> | undefined;
    let last = opts.afterStep;
    while (steps.length < opts.limit && bytes < opts.maxBytes && last < episode.version) {
      const out = await this.table.query({
        KeyConditionExpression: "pk = :pk AND sk BETWEEN :lo AND :hi",
        ExpressionAttributeValues: {
          ":pk": episodePk(episode.tenantId, episode.id),
          ":lo": versionSk(episode.incarnation, opts.afterStep + 1),
          // Versions committed after this read are not part of this view.
          ":hi": versionSk(episode.incarnation, episode.version),
        },
        Limit: opts.limit - steps.length,
        ...(startKey ? { ExclusiveStartKey: startKey } : {}),
      });
      let full = false;
      for (const item of out.items) {
        const rec = decodeRecord(versionOfSk(String(item.sk)), item.rec);
        // Counted as Lambda's response counts it (core/response-size.ts); a page always takes its
        // first record.
        const size = envelopeJsonBytes(rec) + 1;
        if (steps.length > 0 && bytes + size > opts.maxBytes) {
          full = true;
          break;
        }
        steps.push(rec);
        bytes += size;
        last = rec.step;
      }
      startKey = out.lastKey;
      if (full || !startKey) break;
    }
    return { steps, lastStep: last < episode.version && steps.length > 0 ? last : null };
  }

  /**
   * The fork: its history copied page by page (one Query page read, written, dropped: memory stays
   * at a page however long the history), within a time budget inside the request's deadline, then
   * its head. The head goes last, so until the copy is done there is no episode to see; if the copy
   * fails or runs out of time, what was written is deleted and the error is thrown (the caller gives
   * the active-episode slot back).
   */
  async fork(source: Episode, target: NewEpisode, nowMs: number): Promise<Episode> {
    const incarnation = mintIncarnation(nowMs, null);
    const pk = episodePk(target.tenantId, target.id);
    const episode: Episode = {
      ...target,
      incarnation,
      version: source.version,
      lastExitCode: source.lastExitCode,
      updatedAtMs: nowMs,
      expiresAt: Math.floor(nowMs / 1000) + target.ttlS,
      snapshot: source.snapshot,
    };
    const requestDeadline = currentDeadline() ?? Number.POSITIVE_INFINITY;
    const copyUntilMs = Math.min(Date.now() + FORK_COPY_BUDGET_MS, requestDeadline - FORK_CLEANUP_RESERVE_MS);
    try {
      const forkedObject = await this.copyHistory(source, episode, nowMs, copyUntilMs);
      if (forkedObject) Object.assign(episode, { stateObject: forkedObject });
      const stateBytes = forkedObject
        ? forkedObject.bytes
        : source.snapshot
          ? Buffer.byteLength(source.snapshot, "base64")
          : 0;
      await this.putHead(episode, stateBytes);
      return episode;
    } catch (err) {
      // No head was written: remove the copies (and chunks) so nothing is left of the fork.
      await deleteEpisodeRemains(this.table, pk, { keepIncarnation: null }).catch(() => undefined);
      throw err;
    }
  }

  /**
   * Copies the source's version items to the fork, a page at a time, without their usage (the
   * source's steps were metered once) and without old snapshots: the latest version carries the
   * state (its object named, shared; or a copy of its chunks). @returns the shared state object
   */
  private async copyHistory(
    source: Episode,
    fork: Episode,
    nowMs: number,
    copyUntilMs: number,
  ): Promise<Episode["stateObject"]> {
    // A fresh source has no version items (and DynamoDB refuses a BETWEEN whose bounds are reversed).
    if (source.version === 0) return undefined;
    const pk = episodePk(fork.tenantId, fork.id);
    let forkedObject: Episode["stateObject"];
    let copied = 0;
    let startKey: Record<string, unknown> | undefined;
    do {
      if (copied > 0 && Date.now() > copyUntilMs) throw new ForkTooLargeError(copied, source.version);
      const page = await this.table.query({
        KeyConditionExpression: "pk = :pk AND sk BETWEEN :lo AND :hi",
        ExpressionAttributeValues: {
          ":pk": episodePk(source.tenantId, source.id),
          ":lo": versionSk(source.incarnation, 1),
          ":hi": versionSk(source.incarnation, source.version),
        },
        Limit: FORK_PAGE_ITEMS,
        ...(startKey ? { ExclusiveStartKey: startKey } : {}),
      });
      // Not the request ids: a retry sent to the copy is a new request there.
      const copies: Record<string, unknown>[] = page.items.map((item) => ({
        pk,
        sk: versionSk(fork.incarnation, versionOfSk(String(item.sk))),
        at: nowMs,
        rec: item.rec,
      }));
      const last = copies[copies.length - 1];
      if (last && last.sk === versionSk(fork.incarnation, source.version)) {
        if (source.stateObject && this.stateObjects) {
          // The fork names its source's object (immutable: shared, not copied).
          const shared = await this.stateObjects.attrs(fork, source.version, source.stateObject, nowMs);
          Object.assign(last, shared.attrs);
          forkedObject = shared.ref;
        } else {
          Object.assign(
            last,
            await this.snapshots.store(pk, source.snapshot, fork.expiresAt + CHUNK_RETENTION_S),
          );
        }
      }
      await this.table.batchPut(copies);
      copied += copies.length;
      startKey = page.lastKey;
    } while (startKey);
    return forkedObject;
  }

  /** Deletes expired items and expired episodes' remains (local stack; TTL + stream in AWS). */
  sweepExpired(nowMs = Date.now()): Promise<number> {
    return sweepExpired(this.table, nowMs);
  }

  async delete(episode: Episode): Promise<boolean> {
    const pk = episodePk(episode.tenantId, episode.id);
    this.table.stats.writes++;
    this.table.stats.writeUnits += 1;
    try {
      await this.doc.send(
        new DeleteCommand({
          TableName: this.tableName,
          Key: { pk, sk: HEAD_SK },
          ConditionExpression: "incarnation = :inc",
          ExpressionAttributeValues: { ":inc": episode.incarnation },
        }),
      );
    } catch (err) {
      if ((err as { name?: string }).name === "ConditionalCheckFailedException") return false;
      throw err;
    }
    this.snapshots.forget(pk);
    // The head is gone, so the episode is; its other items go best-effort now (else with the
    // stream's clean-up of a later reset). Its state objects too, but those its forks name.
    const shared = this.stateObjects ? await this.stateObjects.sharedKeys(pk) : null;
    await deleteEpisodeRemains(this.table, pk, { keepIncarnation: null });
    if (this.stateObjects && shared)
      await this.stateObjects.deleteEpisodeObjects(episode.tenantId, episode.id, shared);
    return true;
  }

  async stateTransfer(episode: Episode, opts: { readonly maxBytes: number }): Promise<StateTransfer | null> {
    return this.stateObjects ? this.stateObjects.transfer(episode, opts.maxBytes) : null;
  }

  async discardStateObject(key: string): Promise<void> {
    await this.stateObjects?.store.deleteObject(key);
  }
}
