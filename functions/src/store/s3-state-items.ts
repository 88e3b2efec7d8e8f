// The DynamoDB side of states kept in S3: which attributes of a version item name its state object,
// the `S#<key>` items recording which objects forks share, and what to delete with an episode.
//
//   version item   snap_key, snap_size, snap_sha (SHA-256 hex), snap_at (ms the object was written)
//   S#<key>        in the partition of the episode that owns the key (its prefix): a fork names it
//
// Deleting an episode (or resetting its id) deletes the objects under its prefix except shared
// ones, which the bucket's lifecycle rule removes (s3-lifecycle.ts).
import type { Episode, StateObjectRef, StateTransfer } from "../core/episode-repository.js";
import type { TableClient } from "./dynamodb-batch.js";
import { episodePk } from "./layout.js";
import { REUSE_MAX_AGE_MS } from "./s3-lifecycle.js";
import type { S3StateStore } from "./s3-state.js";

/** Sort-key prefix of the items naming an episode's objects that forks share. */
export const SHARED_PREFIX = "S#";

/**
 * A snapshot up to this size (the executor's raw bytes) stays inline in its version item; larger
 * ones go to S3. Why 16 KiB (docs/DATA-MODEL.md): the version item must fit DynamoDB's 400 KB with a
 * record of up to 300 KB; every inline KB is a write unit ($0.625 per million) on each step and stays
 * for the episode's life, while an S3 PUT + GET costs $5.4 per million whatever the size, the
 * same as about 8.6 write units; and inline state rides both ways in the Lambda payload (6 MB).
 */
export const S3_INLINE_MAX_BYTES = 16 * 1024;

/** The state object a version item names, if any. */
export function stateObjectOf(item: Record<string, unknown>): StateObjectRef | undefined {
  if (typeof item.snap_key !== "string") return undefined;
  return {
    key: item.snap_key,
    bytes: Number(item.snap_size ?? 0),
    sha256: String(item.snap_sha ?? ""),
    createdAtMs: Number(item.snap_at ?? 0),
  };
}

function attrsOf(ref: StateObjectRef): Record<string, unknown> {
  return { snap_key: ref.key, snap_size: ref.bytes, snap_sha: ref.sha256, snap_at: ref.createdAtMs };
}

export class StateObjectItems {
  constructor(
    private readonly table: TableClient,
    readonly store: S3StateStore,
  ) {}

  /** The executor's pre-signed URLs for the next step of `episode`. */
  transfer(episode: Episode, maxBytes: number): Promise<StateTransfer> {
    return this.store.stateUrls({
      tenantId: episode.tenantId,
      episodeId: episode.id,
      incarnation: episode.incarnation,
      version: episode.version + 1,
      input: episode.stateObject ?? null,
      inlineMaxBytes: S3_INLINE_MAX_BYTES,
      maxBytes,
    });
  }

  /**
   * The attributes naming `ref` in the version item of `version` of `episode` (the episode a
   * step commits, or a fork). An object older than REUSE_MAX_AGE_MS is copied to a fresh key first;
   * one under another episode's prefix (a fork's) is recorded as shared in its owner's partition.
   */
  async attrs(
    episode: { tenantId: string; id: string; incarnation: string },
    version: number,
    ref: StateObjectRef,
    nowMs: number,
  ): Promise<{ attrs: Record<string, unknown>; ref: StateObjectRef }> {
    let current = ref;
    if (nowMs - ref.createdAtMs > REUSE_MAX_AGE_MS) {
      const key = await this.store.adopt(ref.key, episode.tenantId, episode.id, episode.incarnation, version);
      current = { ...ref, key, createdAtMs: nowMs };
    }
    if (!this.store.owns(episode.tenantId, episode.id, current.key)) {
      const ownerId = this.store.ownerOf(episode.tenantId, current.key);
      const owner = ownerId === null ? null : episodePk(episode.tenantId, ownerId);
      if (owner !== null) {
        this.table.stats.writes++;
        this.table.stats.writeUnits += 1;
        await this.table.batchPut([
          { pk: owner, sk: `${SHARED_PREFIX}${current.key}`, shared_by: episode.id },
        ]);
      }
    }
    return { attrs: attrsOf(current), ref: current };
  }

  /** Keys of the episode's objects that forks name (kept when the episode goes). */
  async sharedKeys(pk: string): Promise<Set<string>> {
    const keys = new Set<string>();
    for await (const item of this.table.queryAll({
      KeyConditionExpression: "pk = :pk AND begins_with(sk, :prefix)",
      ExpressionAttributeValues: { ":pk": pk, ":prefix": SHARED_PREFIX },
      ProjectionExpression: "sk",
    })) {
      keys.add(String(item.sk).slice(SHARED_PREFIX.length));
    }
    return keys;
  }

  /** Deletes the objects of an episode (every incarnation) that no fork shares. */
  async deleteEpisodeObjects(
    tenantId: string,
    episodeId: string,
    shared: ReadonlySet<string>,
  ): Promise<number> {
    return this.store.deleteEpisode(tenantId, episodeId, shared);
  }
}
