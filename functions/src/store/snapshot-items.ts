// Where a version's Python state is kept: inline in its version item up to 32 KB (it stays as long
// as the history), else in chunk items of 350 KB written before the version item, under a fresh id
// (two racing steps never overwrite each other's chunks; the loser's are left to their TTL), read
// back with one BatchGetItem, and skipped when this process holds that very version.
import { randomBytes } from "node:crypto";
import { ConflictError, StateTooLargeError } from "../core/errors.js";
import type { TableClient } from "./dynamodb-batch.js";
import { chunkSk } from "./layout.js";
import { SnapshotCache } from "./snapshot-cache.js";

/** Largest snapshot kept inside its version item (it stays there as long as the history). */
export const INLINE_SNAPSHOT_BYTES = 32 * 1024;
/** Payload of one snapshot chunk item. */
export const SNAPSHOT_CHUNK_BYTES = 350 * 1024;

function bytesOf(value: unknown): Uint8Array | undefined {
  return value instanceof Uint8Array ? value : undefined;
}

export class SnapshotItems {
  private readonly cache: SnapshotCache;

  constructor(
    private readonly table: TableClient,
    private readonly maxStateBytes: number,
    cacheBytes: number,
  ) {
    this.cache = new SnapshotCache(cacheBytes);
  }

  /** Remembers the snapshot this process just committed as `version`. */
  remember(pk: string, incarnation: string, version: number, snapshot: string): void {
    this.cache.set(`${pk}|${incarnation}|${version}`, snapshot);
  }

  forget(pk: string): void {
    this.cache.deletePrefix(`${pk}|`);
  }

  /** A version's snapshot: inline, or its chunks (skipped when this process holds that version). */
  async read(
    pk: string,
    incarnation: string,
    version: number,
    item: Record<string, unknown>,
  ): Promise<string | null> {
    const inline = bytesOf(item.snap);
    if (inline) return Buffer.from(inline).toString("base64");
    const count = Number(item.snap_n ?? 0);
    if (count === 0) return null;
    const cacheKey = `${pk}|${incarnation}|${version}`;
    const cached = this.cache.get(cacheKey);
    if (cached !== undefined) return cached;
    const snapshotId = String(item.snap_id);
    const keys = Array.from({ length: count }, (_, i) => ({ pk, sk: chunkSk(snapshotId, i) }));
    const found = await this.table.batchGet(keys);
    const bySk = new Map(found.map((c) => [String(c.sk), bytesOf(c.data)]));
    const parts: Uint8Array[] = [];
    for (const key of keys) {
      const part = bySk.get(key.sk);
      // Chunks outlive the episode; missing ones mean the episode expired meanwhile.
      if (!part) throw new ConflictError(pk.slice(pk.lastIndexOf("#") + 1));
      parts.push(part);
    }
    const snapshot = Buffer.concat(parts).toString("base64");
    this.cache.set(cacheKey, snapshot);
    return snapshot;
  }

  /** The snapshot's attributes for its version item, writing chunk items first when it is large. */
  async store(pk: string, snapshot: string | null, chunkExpiresAt: number): Promise<Record<string, unknown>> {
    if (snapshot === null) return {};
    const bytes = Buffer.from(snapshot, "base64");
    if (bytes.length > this.maxStateBytes) throw new StateTooLargeError(bytes.length, this.maxStateBytes);
    if (bytes.length <= INLINE_SNAPSHOT_BYTES) return { snap: bytes };
    // A fresh id per write: two racing steps never overwrite each other's chunks; the loser's are
    // left to their TTL.
    const snapshotId = randomBytes(8).toString("hex");
    const chunks: Record<string, unknown>[] = [];
    for (let off = 0, i = 0; off < bytes.length; off += SNAPSHOT_CHUNK_BYTES, i++) {
      chunks.push({
        pk,
        sk: chunkSk(snapshotId, i),
        expires_at: chunkExpiresAt,
        data: bytes.subarray(off, off + SNAPSHOT_CHUNK_BYTES),
      });
    }
    await this.table.batchPut(chunks);
    return { snap_id: snapshotId, snap_n: chunks.length };
  }
}
