// Fast unit tier: the active-episode quota, the daily step quota, usage reports, the usage roll-up
// and HostedTenancy's hooks, with every store in memory (test/tenancy/in-memory-repositories.ts).
// The same behaviour against dynalite: test/tenancy/active-episodes.test.ts, hosted.test.ts,
// usage.test.ts and metering.test.ts.
import { describe, expect, it } from "vitest";
import { rollUpUsage, type UsageEvent } from "../../../functions/src/metering/usage-rollup.js";
import {
  ActiveEpisodes,
  BUILT_IN_QUOTAS,
  DailyStepQuota,
  HostedTenancy,
  QuotaExceededError,
  queryUsage,
} from "../../../functions/src/tenancy/index.js";
import {
  InMemoryActiveEpisodeRepository,
  InMemoryEpisodes,
  InMemoryUsageRepository,
  inMemoryTenancyRepositories,
} from "../in-memory-repositories.js";

const nowMs = Date.parse("2026-11-27T12:00:00Z");
const HOUR = 3_600_000;

async function quotaErrorOf(p: Promise<unknown>): Promise<QuotaExceededError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(QuotaExceededError);
  return err as QuotaExceededError;
}

function activeInMemory() {
  const repository = new InMemoryActiveEpisodeRepository();
  const episodes = new InMemoryEpisodes(() => nowMs);
  const active = new ActiveEpisodes({ repository, lookupLive: episodes.lookup });
  /** A reset: reserve the slot, then the episode exists. */
  const reset = async (tenantId: string, id: string, limit: number, expiresAtMs = nowMs + HOUR) => {
    await active.reserve(tenantId, id, limit, new Date(nowMs));
    episodes.put(tenantId, id, expiresAtMs);
  };
  return { repository, episodes, active, reset };
}

describe("ActiveEpisodes (active-episode set in memory)", () => {
  it("admits up to the limit; a reset of a listed id needs no slot; the 429 says when one frees up", async () => {
    const { active, reset, episodes } = activeInMemory();
    await reset("t", "a", 2, nowMs + 2 * HOUR);
    await reset("t", "b", 2, nowMs + HOUR);
    await reset("t", "a", 2);
    const err = await quotaErrorOf(reset("t", "c", 2));
    expect(err.details).toEqual({
      quota: "active_episodes",
      limit: 2,
      resets_at: new Date(nowMs + HOUR).toISOString(),
    });
    expect(err.headers?.["Retry-After"]).toBe("3600");
    expect(episodes.calls.of("lookup")).toBe(1);
    expect((await active.listed("t")).ids.sort()).toEqual(["a", "b"]);
  });

  it("prunes deleted, expired and foreign episodes when at the limit, then admits", async () => {
    const { active, reset, episodes } = activeInMemory();
    for (const id of ["a", "b", "c", "d"]) await reset("t", id, 4);
    episodes.delete("a"); // deleted by TTL: no hook ran
    episodes.put("t", "b", nowMs - 1); // expired, not deleted yet
    episodes.put("other-tenant", "c", nowMs + HOUR); // the id now names another tenant's episode
    await reset("t", "e", 4);
    expect((await active.listed("t")).ids.sort()).toEqual(["d", "e"]);
  });

  it("never removes an id that a concurrent reset re-added after prune read the set", async () => {
    const { active, reset, repository, episodes } = activeInMemory();
    await reset("t", "a", 1);
    episodes.delete("a");
    // Between prune's read and its write another instance re-creates `a` (bumping the set's ver).
    repository.beforeNextRemoveIfUnchanged = () => {
      repository.add("t", "a");
      episodes.put("t", "a", nowMs + HOUR);
    };
    const pruned = await active.prune("t");
    expect(pruned.pruned).toEqual([]);
    expect(pruned.live).toBe(1);
    expect(repository.calls.of("removeIfUnchanged")).toBe(1);
    expect(repository.calls.of("read")).toBe(2);
    expect((await active.listed("t")).ids).toEqual(["a"]);
  });

  it("gives up pruning after maxAttempts when the set keeps changing", async () => {
    const repository = new InMemoryActiveEpisodeRepository();
    const episodes = new InMemoryEpisodes(() => nowMs);
    const active = new ActiveEpisodes({ repository, lookupLive: episodes.lookup, maxAttempts: 3 });
    repository.add("t", "dead");
    repository.removeIfUnchanged = async () => false; // another writer every time
    const pruned = await active.prune("t");
    expect(pruned.pruned).toEqual([]);
    expect(episodes.calls.of("lookup")).toBe(3);
  });

  it("tries a reservation at most three times while pruning keeps freeing slots others take", async () => {
    const { active, repository, episodes } = activeInMemory();
    repository.add("t", "x0");
    let n = 0;
    // Each prune frees a dead id, and a concurrent reset takes the slot before the retry.
    const realAdd = repository.addIfRoom.bind(repository);
    repository.addIfRoom = async (tenantId, id, limit) => {
      if (id === "new") {
        n += 1;
        repository.add(tenantId, `x${n}`);
      }
      return id === "new" ? false : realAdd(tenantId, id, limit);
    };
    const err = await quotaErrorOf(active.reserve("t", "new", 1, new Date(nowMs)));
    expect(err.details).toMatchObject({ quota: "active_episodes", limit: 1, resets_at: null });
    expect(n).toBe(3);
    expect(episodes.calls.of("lookup")).toBe(3);
  });

  it("release frees a slot; track lists past no limit and never refuses", async () => {
    const { active, reset, episodes } = activeInMemory();
    await reset("t", "a", 1);
    await active.release("t", "a");
    await reset("t", "b", 1);
    for (const id of ["c", "d", "e"]) {
      await active.track("u", id, 2, new Date(nowMs));
      episodes.put("u", id, nowMs + HOUR);
    }
    expect((await active.listed("u")).ids.sort()).toEqual(["c", "d"]);
  });
});

describe("DailyStepQuota (usage in memory)", () => {
  it("refuses once stored plus begun steps reach the limit, until the next UTC midnight", async () => {
    const usage = new InMemoryUsageRepository();
    usage.set("t", "2026-11-27", { steps: "2" });
    const quota = new DailyStepQuota({ usage });
    await quota.begin("t", 3, nowMs);
    const err = await quotaErrorOf(quota.begin("t", 3, nowMs));
    expect(err.details).toEqual({ quota: "steps_per_day", limit: 3, resets_at: "2026-11-28T00:00:00.000Z" });
    expect(err.headers?.["Retry-After"]).toBe(String(12 * 3600));
    // The next day starts from that day's usage.
    await quota.begin("t", 3, Date.parse("2026-11-28T00:00:00Z"));
  });

  it("reads a tenant's usage once per cacheMs (concurrent steps share the read), never when unlimited", async () => {
    const usage = new InMemoryUsageRepository();
    const quota = new DailyStepQuota({ usage, cacheMs: 5_000 });
    await Promise.all(Array.from({ length: 4 }, () => quota.begin("t", 100, nowMs)));
    await quota.begin("t", 100, nowMs + 4_999);
    expect(usage.calls.of("stepsOn")).toBe(1);
    await quota.begin("t", 100, nowMs + 5_000);
    expect(usage.calls.of("stepsOn")).toBe(2);
    await quota.begin("u", Number.POSITIVE_INFINITY, nowMs);
    expect(usage.calls.of("stepsOn")).toBe(2);
  });

  it("a fresh read replaces what this instance counted: other instances' steps arrive through it", async () => {
    const usage = new InMemoryUsageRepository();
    const quota = new DailyStepQuota({ usage, cacheMs: 1_000 });
    for (let i = 0; i < 3; i++) await quota.begin("t", 4, nowMs);
    usage.set("t", "2026-11-27", { steps: "4" }); // rolled up, with another instance's step
    await quotaErrorOf(quota.begin("t", 4, nowMs + 1_000));
  });
});

describe("queryUsage and rollUpUsage (usage in memory)", () => {
  it("rolls events up per tenant and day, exact GB-seconds, copies and creations counted apart", () => {
    const events: UsageEvent[] = [
      {
        kind: "execution",
        tenantId: "a",
        day: "2026-11-01",
        executorMs: 1,
        committed: true,
        stateBytes: 100,
      },
      { kind: "execution", tenantId: "a", day: "2026-11-01", executorMs: 2, committed: false, stateBytes: 0 },
      { kind: "episode_created", tenantId: "a", day: "2026-11-01", stateBytes: 7 },
      { kind: "execution", tenantId: "b", day: "2026-11-01", executorMs: 3, committed: true, stateBytes: 0 },
      { kind: "execution", tenantId: "a", day: "2026-11-02", executorMs: 1, committed: true, stateBytes: 0 },
    ];
    expect(rollUpUsage(events, 1024)).toEqual([
      {
        tenantId: "a",
        day: "2026-11-01",
        steps: 1,
        executions: 2,
        executorMs: 3,
        gbSeconds: "0.003",
        episodesCreated: 1,
        stateBytes: 107,
      },
      {
        tenantId: "b",
        day: "2026-11-01",
        steps: 1,
        executions: 1,
        executorMs: 3,
        gbSeconds: "0.003",
        episodesCreated: 0,
        stateBytes: 0,
      },
      {
        tenantId: "a",
        day: "2026-11-02",
        steps: 1,
        executions: 1,
        executorMs: 1,
        gbSeconds: "0.001",
        episodesCreated: 0,
        stateBytes: 0,
      },
    ]);
    expect(rollUpUsage([], 1024)).toEqual([]);
  });

  it("reports the stored days of the range and exact totals", async () => {
    const usage = new InMemoryUsageRepository();
    const day = (d: string, ms: number) =>
      rollUpUsage(
        Array.from({ length: 100 }, () => ({
          kind: "execution" as const,
          tenantId: "t",
          day: d,
          executorMs: ms,
          committed: true,
          stateBytes: 1,
        })),
        1024,
      );
    await usage.add(day("2026-10-31", 1));
    await usage.add(day("2026-11-01", 1));
    await usage.add(day("2026-11-02", 2));
    await usage.add(day("2026-11-02", 1));
    const report = await queryUsage({
      repository: usage,
      tenantId: "t",
      from: "2026-11-01",
      to: "2026-11-02",
    });
    expect(report.days.map((d) => [d.date, d.steps, d.gb_seconds])).toEqual([
      ["2026-11-01", 100, 0.1],
      ["2026-11-02", 200, 0.3],
    ]);
    expect(report.totals).toEqual({
      steps: 300,
      executions: 300,
      executor_ms: 400,
      gb_seconds: 0.4,
      episodes_created: 0,
      state_bytes: 300,
    });
    await expect(
      queryUsage({ repository: usage, tenantId: "t", from: "2026-11-03", to: "2026-11-02" }),
    ).rejects.toThrow(/'from' must not be after 'to'/);
    expect(usage.calls.of("days")).toBe(1); // a bad range is refused before any read
  });
});

describe("HostedTenancy (every store in memory)", () => {
  const quotas = { ...BUILT_IN_QUOTAS, stepsPerDay: 2, activeEpisodes: 1, concurrentSteps: 1 };

  it("reserves and releases slots, lists the tenant's ids, and meters steps against the usage", async () => {
    const repositories = inMemoryTenancyRepositories(() => nowMs);
    const tenancy = new HostedTenancy({
      repositories,
      authRequired: true,
      executorMemoryMb: 1024,
      defaultQuotas: quotas,
      env: {},
      now: () => nowMs,
    });
    await tenancy.reserveEpisodeSlot({ tenantId: "t", episodeId: "a", nowMs });
    repositories.episodes.put("t", "a", nowMs + HOUR);
    await quotaErrorOf(tenancy.reserveEpisodeSlot({ tenantId: "t", episodeId: "b", nowMs }));
    expect(await tenancy.listEpisodeIds("t")).toEqual(["a"]);
    await tenancy.releaseEpisodeSlot({ tenantId: "t", episodeId: "a", nowMs });
    await tenancy.reserveEpisodeSlot({ tenantId: "t", episodeId: "b", nowMs });

    const end = await tenancy.beginStep({ tenantId: "t", nowMs });
    const concurrent = await quotaErrorOf(tenancy.beginStep({ tenantId: "t", nowMs }));
    expect(concurrent.details).toMatchObject({ quota: "concurrent_steps" });
    end();
    (await tenancy.beginStep({ tenantId: "t", nowMs }))();
    const daily = await quotaErrorOf(tenancy.beginStep({ tenantId: "t", nowMs }));
    expect(daily.details).toMatchObject({ quota: "steps_per_day", limit: 2 });
    expect(repositories.usage.calls.of("stepsOn")).toBe(1);
    // A refused step gives its concurrent slot back.
    await quotaErrorOf(tenancy.beginStep({ tenantId: "t", nowMs }));
    expect((await quotaErrorOf(tenancy.beginStep({ tenantId: "t", nowMs }))).details).toMatchObject({
      quota: "steps_per_day",
    });
  });

  it("lists an unlimited (local) tenant's episodes without ever refusing, and skips usage reads when metering is off", async () => {
    const repositories = inMemoryTenancyRepositories(() => nowMs);
    const local = new HostedTenancy({
      repositories,
      authRequired: false,
      executorMemoryMb: 1024,
      env: { CODING_ENV_METERING: "off", CODING_ENV_QUOTA_STEPS_PER_DAY: "1" },
    });
    for (const id of ["a", "b", "c"])
      await local.reserveEpisodeSlot({ tenantId: "local", episodeId: id, nowMs });
    expect((await local.listEpisodeIds("local")).sort()).toEqual(["a", "b", "c"]);
    for (let i = 0; i < 3; i++) (await local.beginStep({ tenantId: "local", nowMs }))();
    expect(repositories.usage.calls.total()).toBe(0);
  });

  it("GET /usage reads the tenant's days through the usage repository", async () => {
    const repositories = inMemoryTenancyRepositories(() => nowMs);
    repositories.usage.set("t", "2026-11-27", { steps: "3", gb_seconds: "0.0000000000001" });
    const tenancy = new HostedTenancy({
      repositories,
      authRequired: true,
      executorMemoryMb: 1024,
      env: {},
      now: () => nowMs,
    });
    const report = await tenancy.usage("t", undefined, undefined);
    expect(report.from).toBe("2026-10-29");
    expect(report.days).toEqual([
      {
        date: "2026-11-27",
        steps: 3,
        executions: 0,
        executor_ms: 0,
        gb_seconds: 1e-13,
        episodes_created: 0,
        state_bytes: 0,
      },
    ]);
  });
});
