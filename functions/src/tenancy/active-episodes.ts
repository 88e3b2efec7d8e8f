import { QuotaExceededError } from "./errors.js";
import type { ActiveEpisodeRepository, LiveEpisodeLookup } from "./repositories.js";

/*
 * Concurrent active episodes, without a counter that can drift.
 *
 * A plain counter (+1 on reset, -1 on delete) drifts: the store's TTL deletes expired episodes on
 * its own schedule (DynamoDB: up to days later) and never tells the counter. Instead each tenant has
 * one set of the ids of its episodes that may be alive, with a version `ver`
 * (`ActiveEpisodeRepository`; on DynamoDB one item, `store/dynamodb-active-episodes.ts`):
 * - reset/fork adds the new id before it writes the episode (`reserve`: `addIfRoom`, one atomic
 *   conditional write "fewer than `limit` ids, or the id is there already"), so concurrent resets
 *   can never get past the limit; it also bumps `ver`. A reset that then fails leaves its id
 *   listed: the set only over-counts until the next prune;
 * - delete removes the id after the episode is gone (`release`);
 * - expiry removes nothing. So the set is always a superset of the live episodes, and the count is
 *   never too low. It can be too high (expired ids linger): only then, when the condition fails,
 *   `prune` asks which listed episodes are alive (`LiveEpisodeLookup`: one consistent batch read of
 *   their heads), and removes the others only if the set's `ver` is still the one it read
 *   (`removeIfUnchanged`), so it cannot remove an id that a concurrent reset re-created meanwhile.
 *   Then the reset is tried again, or, when nothing was dead, answered with 429 and the earliest
 *   time one of the live episodes expires.
 * Steps never touch the set (they only extend an episode's expiry), so it is not a hot spot, and it
 * holds at most `limit` ids (plus dead ones until the next prune), so it stays small.
 */

export type { LiveEpisodeLookup } from "./repositories.js";

export interface ActiveEpisodesOpts {
  /** The tenants' sets (DynamoDB: one item per tenant). */
  readonly repository: ActiveEpisodeRepository;
  readonly lookupLive: LiveEpisodeLookup;
  /** Prune attempts when concurrent resets keep changing the set. @default 5 */
  readonly maxAttempts?: number;
}

/** What `prune` found. */
export interface PruneResult {
  /** Ids it removed (gone or expired episodes). */
  readonly pruned: readonly string[];
  /** Live episodes left in the set. */
  readonly live: number;
  /** The earliest expiry among the live ones: when a slot frees up by itself (`null` if unknown). */
  readonly earliestExpiry: Date | null;
}

/** The tenant's active-episode set: reserve, release, pruning, and the 429. See the comment above. */
export class ActiveEpisodes {
  private readonly repository: ActiveEpisodeRepository;
  private readonly lookupLive: LiveEpisodeLookup;
  private readonly maxAttempts: number;

  constructor(opts: ActiveEpisodesOpts) {
    this.repository = opts.repository;
    this.lookupLive = opts.lookupLive;
    this.maxAttempts = opts.maxAttempts ?? 5;
  }

  /**
   * Puts `episodeId` in the tenant's set if it is below `limit` or the id is there already (a reset
   * that replaces an episode); at the limit, prunes dead ids and tries again, else the 429.
   */
  async reserve(tenantId: string, episodeId: string, limit: number, now: Date = new Date()): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      if (await this.repository.addIfRoom(tenantId, episodeId, limit)) return;
      // The set says the tenant is at its limit; it may list episodes that expired meanwhile.
      const pruned = await this.prune(tenantId);
      if (pruned.pruned.length === 0 || attempt >= 2)
        throw this.quotaError(limit, pruned.earliestExpiry, now);
    }
  }

  /**
   * Lists `episodeId` for a tenant without a quota (so `GET /episodes` shows it) while the set holds
   * fewer than `cap` live ids; past that the episode simply goes unlisted, never refused.
   */
  async track(tenantId: string, episodeId: string, cap: number, now: Date = new Date()): Promise<void> {
    try {
      await this.reserve(tenantId, episodeId, cap, now);
    } catch (err) {
      if (!(err instanceof QuotaExceededError)) throw err;
    }
  }

  /** Takes `episodeId` out of the tenant's set (after its episode is gone). */
  async release(tenantId: string, episodeId: string): Promise<void> {
    await this.repository.remove(tenantId, episodeId);
  }

  /** The ids in the tenant's set now (live ones and, until pruned, dead ones). */
  async listed(tenantId: string): Promise<{ ids: string[]; ver: string | undefined }> {
    return this.repository.read(tenantId);
  }

  /** Removes the ids of episodes that are gone or expired. Safe against concurrent resets and deletes. */
  async prune(tenantId: string): Promise<PruneResult> {
    let last: PruneResult = { pruned: [], live: 0, earliestExpiry: null };
    for (let attempt = 0; attempt < this.maxAttempts; attempt++) {
      const { ids, ver } = await this.listed(tenantId);
      const live = await this.lookupLive(tenantId, ids);
      let earliestExpiry: Date | null = null;
      for (const expiry of live.values()) {
        if (expiry && (!earliestExpiry || expiry < earliestExpiry)) earliestExpiry = expiry;
      }
      const dead = ids.filter((id) => !live.has(id));
      last = { pruned: [], live: live.size, earliestExpiry };
      if (dead.length === 0 || ver === undefined) return last;
      if (await this.repository.removeIfUnchanged(tenantId, dead, ver)) {
        return { pruned: dead, live: live.size, earliestExpiry };
      }
      // A reset changed the set after we read it: read again.
    }
    return last;
  }

  /** The 429 for a tenant at its limit, with the time the first live episode expires if known. */
  quotaError(limit: number, earliestExpiry: Date | null, now: Date = new Date()): QuotaExceededError {
    return new QuotaExceededError({
      quota: "active_episodes",
      limit,
      resetsAt: earliestExpiry,
      now: now.getTime(),
      message:
        `Quota 'active_episodes' exceeded: at most ${limit} episodes may be alive at once. ` +
        (earliestExpiry
          ? `One expires at ${earliestExpiry.toISOString()}; or delete one (DELETE /episodes/{id}).`
          : "Delete one (DELETE /episodes/{id}) or wait for one to expire."),
    });
  }
}
