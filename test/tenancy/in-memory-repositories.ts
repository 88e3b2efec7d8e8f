// In-memory implementations of tenancy's storage ports (functions/src/tenancy/repositories.ts), for
// the fast unit tier of tenancy's branch logic. They keep the ports' contracts as the DynamoDB
// adapters do (conditions evaluated atomically, `ver` bumped by additions only, exact decimal sums)
// and count their reads and writes so tests can assert what was (not) asked of the store.
import type {
  ActiveEpisodeRepository,
  ActiveEpisodeSet,
  ApiKeyRecord,
  ApiKeyRepository,
  LiveEpisodeLookup,
  StoredUsageDay,
  TenancyRepositories,
  UsageFigureName,
  UsageIncrement,
  UsageRepository,
} from "../../functions/src/tenancy/index.js";
import { formatScaled, GB_SECONDS_SCALE, parseScaled } from "../../functions/src/tenancy/index.js";

/** Counts of a fake's calls, by method name. */
export class CallCounts {
  private readonly counts = new Map<string, number>();
  count(name: string): void {
    this.counts.set(name, (this.counts.get(name) ?? 0) + 1);
  }
  of(name: string): number {
    return this.counts.get(name) ?? 0;
  }
  total(): number {
    return [...this.counts.values()].reduce((a, b) => a + b, 0);
  }
}

export class InMemoryApiKeyRepository implements ApiKeyRepository {
  readonly calls = new CallCounts();
  readonly records = new Map<string, ApiKeyRecord>();

  async insert(record: ApiKeyRecord): Promise<void> {
    this.calls.count("insert");
    if (this.records.has(record.keyHash)) throw new Error("The conditional request failed");
    this.records.set(record.keyHash, { ...record });
  }

  async findByHash(keyHash: string): Promise<ApiKeyRecord | undefined> {
    this.calls.count("findByHash");
    const record = this.records.get(keyHash);
    return record ? { ...record } : undefined;
  }

  async list(opts: { readonly tenantId?: string }): Promise<ApiKeyRecord[]> {
    this.calls.count("list");
    return [...this.records.values()]
      .filter((r) => opts.tenantId === undefined || r.tenantId === opts.tenantId)
      .map((r) => ({ ...r }));
  }

  async markRevoked(keyHash: string, revokedAt: string): Promise<ApiKeyRecord | undefined> {
    this.calls.count("markRevoked");
    const record = this.records.get(keyHash);
    if (!record) return undefined;
    const revoked = { ...record, revoked: true, revokedAt: record.revokedAt ?? revokedAt };
    this.records.set(keyHash, revoked);
    return { ...revoked };
  }
}

export class InMemoryActiveEpisodeRepository implements ActiveEpisodeRepository {
  readonly calls = new CallCounts();
  private readonly sets = new Map<string, { ids: Set<string>; ver: number }>();
  /** Runs once before the next `removeIfUnchanged`, as a concurrent writer would (tests of races). */
  beforeNextRemoveIfUnchanged: (() => void) | undefined;

  async addIfRoom(tenantId: string, episodeId: string, limit: number): Promise<boolean> {
    this.calls.count("addIfRoom");
    const set = this.sets.get(tenantId) ?? { ids: new Set<string>(), ver: 0 };
    // As DynamoDB's condition: no set yet, room left, or the id is there already.
    if (set.ids.size > 0 && set.ids.size >= limit && !set.ids.has(episodeId)) return false;
    set.ids.add(episodeId);
    set.ver += 1;
    this.sets.set(tenantId, set);
    return true;
  }

  /** A set as another instance's reset would leave it (bumps `ver`), bypassing the limit. */
  add(tenantId: string, episodeId: string): void {
    const set = this.sets.get(tenantId) ?? { ids: new Set<string>(), ver: 0 };
    set.ids.add(episodeId);
    set.ver += 1;
    this.sets.set(tenantId, set);
  }

  async remove(tenantId: string, episodeId: string): Promise<void> {
    this.calls.count("remove");
    this.sets.get(tenantId)?.ids.delete(episodeId);
  }

  async read(tenantId: string): Promise<ActiveEpisodeSet> {
    this.calls.count("read");
    const set = this.sets.get(tenantId);
    return { ids: set ? [...set.ids] : [], ver: set ? String(set.ver) : undefined };
  }

  async removeIfUnchanged(tenantId: string, episodeIds: readonly string[], ver: string): Promise<boolean> {
    this.calls.count("removeIfUnchanged");
    const race = this.beforeNextRemoveIfUnchanged;
    this.beforeNextRemoveIfUnchanged = undefined;
    race?.();
    const set = this.sets.get(tenantId);
    if (!set || String(set.ver) !== ver) return false;
    for (const id of episodeIds) set.ids.delete(id);
    return true;
  }
}

/** Episodes that exist, with their expiry; `lookup` answers which are alive at the clock's time. */
export class InMemoryEpisodes {
  readonly calls = new CallCounts();
  private readonly episodes = new Map<string, { tenantId: string; expiresAtMs: number | null }>();

  constructor(private readonly nowMs: () => number) {}

  put(tenantId: string, id: string, expiresAtMs: number | null): void {
    this.episodes.set(id, { tenantId, expiresAtMs });
  }

  delete(id: string): void {
    this.episodes.delete(id);
  }

  readonly lookup: LiveEpisodeLookup = async (tenantId, ids) => {
    this.calls.count("lookup");
    const live = new Map<string, Date | null>();
    for (const id of ids) {
      const episode = this.episodes.get(id);
      if (!episode || episode.tenantId !== tenantId) continue;
      if (episode.expiresAtMs !== null && episode.expiresAtMs <= this.nowMs()) continue;
      live.set(id, episode.expiresAtMs === null ? null : new Date(episode.expiresAtMs));
    }
    return live;
  };
}

const SCALES: Record<UsageFigureName, number> = {
  steps: 0,
  executions: 0,
  executor_ms: 0,
  gb_seconds: GB_SECONDS_SCALE,
  episodes_created: 0,
  state_bytes: 0,
};

export class InMemoryUsageRepository implements UsageRepository {
  readonly calls = new CallCounts();
  /** `tenant\0day` -> figures as exact decimal strings. */
  private readonly days_ = new Map<string, Partial<Record<UsageFigureName, string>>>();

  /** Sets a day's figures as the roll-up would have left them. */
  set(tenantId: string, day: string, figures: Partial<Record<UsageFigureName, string>>): void {
    this.days_.set(`${tenantId}\u0000${day}`, { ...figures });
  }

  async stepsOn(tenantId: string, day: string): Promise<number> {
    this.calls.count("stepsOn");
    return Number(this.days_.get(`${tenantId}\u0000${day}`)?.steps ?? 0);
  }

  async days(tenantId: string, from: string, to: string): Promise<StoredUsageDay[]> {
    this.calls.count("days");
    const out: StoredUsageDay[] = [];
    for (const [key, figures] of this.days_) {
      const [tenant, date] = key.split("\u0000") as [string, string];
      if (tenant === tenantId && date >= from && date <= to) out.push({ date, figures: { ...figures } });
    }
    return out.sort((a, b) => a.date.localeCompare(b.date));
  }

  async add(increments: readonly UsageIncrement[]): Promise<void> {
    this.calls.count("add");
    for (const u of increments) {
      const key = `${u.tenantId}\u0000${u.day}`;
      const figures = this.days_.get(key) ?? {};
      const adds: Record<UsageFigureName, string> = {
        steps: String(u.steps),
        executions: String(u.executions),
        executor_ms: String(u.executorMs),
        gb_seconds: u.gbSeconds,
        episodes_created: String(u.episodesCreated),
        state_bytes: String(u.stateBytes),
      };
      for (const [name, value] of Object.entries(adds) as [UsageFigureName, string][]) {
        const scale = SCALES[name];
        const sum = parseScaled(figures[name] ?? "0", scale) + parseScaled(value, scale);
        figures[name] = formatScaled(sum, scale);
      }
      this.days_.set(key, figures);
    }
  }
}

/** All of hosted mode's repositories in memory, with the parts exposed for set-up and assertions. */
export function inMemoryTenancyRepositories(nowMs: () => number = Date.now): TenancyRepositories & {
  readonly apiKeys: InMemoryApiKeyRepository;
  readonly activeEpisodes: InMemoryActiveEpisodeRepository;
  readonly episodes: InMemoryEpisodes;
  readonly usage: InMemoryUsageRepository;
} {
  const episodes = new InMemoryEpisodes(nowMs);
  return {
    apiKeys: new InMemoryApiKeyRepository(),
    activeEpisodes: new InMemoryActiveEpisodeRepository(),
    episodes,
    liveEpisodes: episodes.lookup,
    usage: new InMemoryUsageRepository(),
  };
}
