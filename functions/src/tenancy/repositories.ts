// The storage ports of hosted mode: what tenancy needs of a store, in tenancy's terms. The DynamoDB
// adapters (functions/src/store/dynamodb-api-keys.ts, dynamodb-active-episodes.ts,
// dynamodb-usage.ts) decide every item layout; the unit tests of tenancy's branches use in-memory
// implementations (test/tenancy/in-memory-repositories.ts).
import type { ApiKeyRecord } from "./keys.js";

/** API keys by the SHA-256 of the key (the key itself is never stored). */
export interface ApiKeyRepository {
  /** Stores a new key. Throws when a key with that hash exists (never overwrites). */
  insert(record: ApiKeyRecord): Promise<void>;
  /** The key with this hash, read strongly consistently, or undefined. */
  findByHash(keyHash: string): Promise<ApiKeyRecord | undefined>;
  /** Every key, or a tenant's keys, in no particular order (an admin read: the whole store). */
  list(opts: { readonly tenantId?: string }): Promise<ApiKeyRecord[]>;
  /**
   * Marks the key revoked; a key revoked before keeps its first `revokedAt`.
   * @returns the key as stored now, or undefined when no key has this hash
   */
  markRevoked(keyHash: string, revokedAt: string): Promise<ApiKeyRecord | undefined>;
}

/** What a read of a tenant's active-episode set returns. */
export interface ActiveEpisodeSet {
  /** Ids of the tenant's episodes that may be alive (a superset: dead ones linger until pruned). */
  readonly ids: string[];
  /** Changes with every addition: `removeIfUnchanged` removes only from the set it read. */
  readonly ver: string | undefined;
}

/** A tenant's set of possibly live episode ids (the active-episode quota, `active-episodes.ts`). */
export interface ActiveEpisodeRepository {
  /**
   * Adds `episodeId` to the tenant's set, atomically, if the set holds fewer than `limit` ids or
   * holds `episodeId` already; every addition changes the set's `ver`.
   * @returns false when the set is full (nothing written)
   */
  addIfRoom(tenantId: string, episodeId: string, limit: number): Promise<boolean>;
  /** Takes `episodeId` out of the tenant's set (nothing when it is not there). */
  remove(tenantId: string, episodeId: string): Promise<void>;
  /** The tenant's set, read strongly consistently (empty with `ver` undefined when it has none). */
  read(tenantId: string): Promise<ActiveEpisodeSet>;
  /**
   * Takes `episodeIds` out of the set if its `ver` is still `ver`.
   * @returns false when the set changed since it was read (nothing written)
   */
  removeIfUnchanged(tenantId: string, episodeIds: readonly string[], ver: string): Promise<boolean>;
}

/** Which of `episodeIds` of a tenant are alive, each with its expiry (`null` = none). */
export type LiveEpisodeLookup = (
  tenantId: string,
  episodeIds: readonly string[],
) => Promise<Map<string, Date | null>>;

/** Names of the figures kept per tenant and UTC day. */
export type UsageFigureName =
  | "steps"
  | "executions"
  | "executor_ms"
  | "gb_seconds"
  | "episodes_created"
  | "state_bytes";

/** One stored day of a tenant's usage: each figure as the store keeps it, a decimal string (exact). */
export interface StoredUsageDay {
  /** `YYYY-MM-DD` (UTC). */
  readonly date: string;
  /** Absent figures were never added to on that day. */
  readonly figures: Partial<Record<UsageFigureName, string>>;
}

/** What one roll-up adds to a tenant's day. */
export interface UsageIncrement {
  readonly tenantId: string;
  /** `YYYY-MM-DD` (UTC). */
  readonly day: string;
  readonly steps: number;
  readonly executions: number;
  readonly executorMs: number;
  /** Exact decimal string (13 decimals at most). */
  readonly gbSeconds: string;
  readonly episodesCreated: number;
  readonly stateBytes: number;
}

/** Usage per tenant and UTC day: written only by the roll-up, read by quotas and `GET /usage`. */
export interface UsageRepository {
  /** Steps stored for the tenant on `day` (an eventually consistent read is enough: 0 when none). */
  stepsOn(tenantId: string, day: string): Promise<number>;
  /** The stored days from `from` to `to` (inclusive, `YYYY-MM-DD`), oldest first, read strongly consistently. */
  days(tenantId: string, from: string, to: string): Promise<StoredUsageDay[]>;
  /** Adds each increment to its tenant's day (one write per tenant and day; concurrent adds add up). */
  add(increments: readonly UsageIncrement[]): Promise<void>;
}

/** Everything hosted mode stores: wired in by the composition root (functions/src/deps.ts). */
export interface TenancyRepositories {
  readonly apiKeys: ApiKeyRepository;
  readonly activeEpisodes: ActiveEpisodeRepository;
  readonly liveEpisodes: LiveEpisodeLookup;
  readonly usage: UsageRepository;
}
