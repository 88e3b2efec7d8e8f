// FakeEpisodeRepository: an in-memory fake of the core's repository port, for the fast unit tier
// of the core's branches (stale copies, conflicts, duplicates). It keeps the port's contract: one
// immutable record per version, a commit only if nobody committed that version, the recent request
// ids, incarnations. The DynamoDB adapter is tested against real dynalite elsewhere.
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
  StepClaim,
  StepRecord,
  UncommittedExecution,
} from "../../functions/src/core/episode-repository.js";

interface StoredVersion {
  readonly record: StepRecord;
  readonly snapshot: string | null;
  readonly atMs: number;
  readonly requestId?: string;
}

interface StoredEpisode {
  readonly head: Omit<Episode, "version" | "lastExitCode" | "updatedAtMs" | "expiresAt" | "snapshot">;
  readonly versions: Map<number, StoredVersion>;
}

const RECENT = 16;

/** A step's claim as the DynamoDB adapter keeps it (store/dynamodb-step-claims.ts). */
export interface StoredClaim {
  readonly incarnation: string;
  readonly base: number;
  untilMs: number;
  readonly attemptId: string;
  readonly requestId?: string;
}

export class FakeEpisodeRepository implements EpisodeRepository {
  readonly episodes = new Map<string, StoredEpisode>();
  readonly executions: UncommittedExecution[] = [];
  /** The step claim of each episode (`tenant/id`), as the store's one claim item. */
  readonly claims = new Map<string, StoredClaim>();
  private attempts = 0;
  /** Calls by method, to assert how many reads and writes a path made. */
  readonly calls: Record<string, number> = {};
  /** Runs before each commit is applied (e.g. to let another instance commit first). */
  beforeCommit: ((input: CommitStepInput) => Promise<void>) | undefined;
  private incarnations = 0;

  private count(name: string): void {
    this.calls[name] = (this.calls[name] ?? 0) + 1;
  }

  private view(stored: StoredEpisode): Episode {
    const latest = Math.max(0, ...stored.versions.keys());
    const v = stored.versions.get(latest);
    const updatedAtMs = v ? v.atMs : stored.head.createdAtMs;
    return {
      ...stored.head,
      version: latest,
      lastExitCode: v ? v.record.observation.exit_code : 0,
      updatedAtMs,
      expiresAt: Math.floor(updatedAtMs / 1000) + stored.head.ttlS,
      snapshot: v ? v.snapshot : null,
    };
  }

  async load(
    tenantId: string,
    id: string,
    opts: { readonly nowMs: number; readonly requestId?: string },
  ): Promise<LoadedEpisode | null> {
    this.count("load");
    const stored = this.episodes.get(`${tenantId}/${id}`);
    if (!stored) return null;
    const episode = this.view(stored);
    if (episode.expiresAt * 1000 <= opts.nowMs) return null;
    let replay: StepRecord | null = null;
    if (opts.requestId !== undefined) {
      const recent = [...stored.versions.entries()]
        .filter(([, v]) => v.requestId !== undefined)
        .sort(([a], [b]) => b - a)
        .slice(0, RECENT);
      replay = recent.find(([, v]) => v.requestId === opts.requestId)?.[1].record ?? null;
    }
    return { episode, replay };
  }

  async create(
    spec: NewEpisode,
    opts: { readonly replaceExisting: boolean; readonly nowMs: number },
  ): Promise<{ episode: Episode; replaced: string | null }> {
    this.count("create");
    const key = `${spec.tenantId}/${spec.id}`;
    const replaced = opts.replaceExisting ? (this.episodes.get(key)?.head.incarnation ?? null) : null;
    const { snapshot: _snapshot, ...settings } = spec;
    const stored: StoredEpisode = {
      // Zero-padded: later incarnations sort after earlier ones, as the store's do.
      head: { ...settings, incarnation: `inc${String(++this.incarnations).padStart(6, "0")}` },
      versions: new Map(),
    };
    this.episodes.set(key, stored);
    return { episode: this.view(stored), replaced };
  }

  async commitStep(input: CommitStepInput): Promise<CommitStepResult> {
    this.count("commitStep");
    await this.beforeCommit?.(input);
    const stored = this.episodes.get(`${input.before.tenantId}/${input.before.id}`);
    if (!stored || stored.head.incarnation !== input.before.incarnation) return { kind: "conflict" };
    const version = input.before.version + 1;
    const winner = stored.versions.get(version);
    if (winner) {
      if (input.requestId !== undefined && winner.requestId === input.requestId) {
        return { kind: "duplicate", record: winner.record };
      }
      return { kind: "conflict" };
    }
    stored.versions.set(version, {
      record: input.record,
      snapshot: input.snapshot,
      atMs: input.nowMs,
      ...(input.requestId !== undefined ? { requestId: input.requestId } : {}),
    });
    return { kind: "committed", episode: this.view(stored) };
  }

  async claimStep(input: ClaimStepInput): Promise<ClaimStepResult> {
    this.count("claimStep");
    const { episode } = input;
    const key = `${episode.tenantId}/${episode.id}`;
    const held = this.claims.get(key);
    // The adapter's condition: free, lapsed, or of an older incarnation or version.
    const free =
      !held ||
      held.untilMs < input.nowMs ||
      held.incarnation < episode.incarnation ||
      (held.incarnation === episode.incarnation && held.base < episode.version);
    if (!free) {
      const sameRequest = input.requestId !== undefined && held.requestId === input.requestId;
      return { kind: "held", sameRequest, untilMs: held.untilMs };
    }
    const attemptId = `attempt${++this.attempts}`;
    this.claims.set(key, {
      incarnation: episode.incarnation,
      base: episode.version,
      untilMs: input.untilMs,
      attemptId,
      ...(input.requestId !== undefined ? { requestId: input.requestId } : {}),
    });
    return { kind: "claimed", claim: { attemptId } };
  }

  async releaseStep(episode: Episode, claim: StepClaim): Promise<void> {
    this.count("releaseStep");
    const key = `${episode.tenantId}/${episode.id}`;
    if (this.claims.get(key)?.attemptId === claim.attemptId) this.claims.delete(key);
  }

  /** Lets every claim lapse (as if its attempt's deadline had passed). */
  expireClaims(): void {
    for (const claim of this.claims.values()) claim.untilMs = 0;
  }

  async recordExecution(execution: UncommittedExecution): Promise<void> {
    this.count("recordExecution");
    this.executions.push(execution);
  }

  async getStep(episode: Episode, step: number): Promise<StepRecord | null> {
    this.count("getStep");
    const stored = this.episodes.get(`${episode.tenantId}/${episode.id}`);
    if (!stored || stored.head.incarnation !== episode.incarnation) return null;
    return stored.versions.get(step)?.record ?? null;
  }

  async historyPage(
    episode: Episode,
    opts: { readonly afterStep: number; readonly limit: number; readonly maxBytes: number },
  ): Promise<HistoryPage> {
    this.count("historyPage");
    const stored = this.episodes.get(`${episode.tenantId}/${episode.id}`);
    const steps: StepRecord[] = [];
    for (let v = opts.afterStep + 1; v <= episode.version && steps.length < opts.limit; v++) {
      const rec = stored?.versions.get(v)?.record;
      if (rec) steps.push(rec);
    }
    const last = steps[steps.length - 1]?.step ?? null;
    return { steps, lastStep: last !== null && last < episode.version ? last : null };
  }

  async fork(source: Episode, target: NewEpisode, nowMs: number): Promise<Episode> {
    this.count("fork");
    const from = this.episodes.get(`${source.tenantId}/${source.id}`);
    const { episode } = await this.create(target, { replaceExisting: false, nowMs });
    const copy = this.episodes.get(`${target.tenantId}/${target.id}`);
    for (const [v, stored] of from?.versions ?? []) {
      if (v <= source.version) copy?.versions.set(v, { ...stored, atMs: nowMs });
    }
    return copy ? this.view(copy) : episode;
  }

  async delete(episode: Episode): Promise<boolean> {
    this.count("delete");
    const key = `${episode.tenantId}/${episode.id}`;
    if (this.episodes.get(key)?.head.incarnation !== episode.incarnation) return false;
    this.episodes.delete(key);
    this.claims.delete(key);
    return true;
  }
}
