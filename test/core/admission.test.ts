// Admission of steps (functions/src/admission/), fast: the fair queue's order of service, and the
// core's steps going through it before their first store read. No timing: calls end when the test
// says so (held executor calls), so every assertion is about order and counts.
import { describe, expect, it } from "vitest";
import { FairQueue, type ReleaseSlot } from "../../functions/src/admission/fair-queue.js";
import { nextTenantCap } from "../../functions/src/admission/load-governor.js";
import { RefusalPacer } from "../../functions/src/admission/refusal-pacer.js";
import { admissionLimits, admitSteps } from "../../functions/src/admission/step-admission.js";
import { defaultConfig } from "../../functions/src/config.js";
import { EpisodeService } from "../../functions/src/core/episodes.js";
import { TooManyConcurrentStepsError } from "../../functions/src/core/errors.js";
import { noTenancy } from "../../functions/src/core/tenancy-hooks.js";
import { FakeEpisodeRepository } from "./fake-episode-repository.js";
import { gate, ScriptedExecutor } from "./scripted-executor.js";

/** Lets queued promise callbacks run. */
const settle = () => new Promise<void>((r) => setImmediate(r));

/** Acquires for `tenant`, recording the grant order in `granted` and the slot in `held`. */
function ask(
  queue: FairQueue,
  tenant: string,
  label: string,
  granted: string[],
  held: Map<string, ReleaseSlot>,
): Promise<void> {
  return queue.acquire(tenant).then((release) => {
    granted.push(label);
    held.set(label, release);
  });
}

describe("the fair queue", () => {
  it("serves waiting tenants in rotation, fewest holders first, FIFO within a tenant", async () => {
    // Prepare: 3 slots, A holds all 3; then A, B and C queue 3 more each (A first)
    const queue = new FairQueue({ maxRunning: 3, tenantMaxRunning: 3, tenantMaxWaiting: 10 });
    const granted: string[] = [];
    const held = new Map<string, ReleaseSlot>();
    const all: Promise<void>[] = [];
    for (let i = 0; i < 6; i++) all.push(ask(queue, "A", `a${i}`, granted, held));
    for (let i = 0; i < 3; i++) all.push(ask(queue, "B", `b${i}`, granted, held));
    for (let i = 0; i < 3; i++) all.push(ask(queue, "C", `c${i}`, granted, held));
    await settle();
    expect(granted).toEqual(["a0", "a1", "a2"]);
    // Act: A's three holders end one by one
    for (const label of ["a0", "a1", "a2"]) {
      held.get(label)?.();
      await settle();
    }
    // Assess: the freed slots went to B and C (no holders) before A's older waiting calls
    expect(granted).toEqual(["a0", "a1", "a2", "b0", "c0", "a3"]);
    // Act: every holder ends in turn, oldest first, until all have run
    for (let i = 3; i < 12; i++) {
      held.get(granted[i] as string)?.();
      await settle();
    }
    for (const label of granted.slice(12)) held.get(label)?.();
    await Promise.all(all);
    // Assess: the three tenants alternate; each tenant's calls in the order they came
    expect(granted).toEqual(["a0", "a1", "a2", "b0", "c0", "a3", "b1", "c1", "a4", "b2", "c2", "a5"]);
    expect(queue.stats()).toEqual({ running: 0, waiting: 0, tenants: 0, refused: 0 });
  });

  it("a tenant with nothing running is served next, however many calls a flooding tenant has queued", async () => {
    // Prepare: 4 slots; A may hold 2 at once and queue 50
    const queue = new FairQueue({ maxRunning: 4, tenantMaxRunning: 2, tenantMaxWaiting: 50 });
    const granted: string[] = [];
    const held = new Map<string, ReleaseSlot>();
    const flood = Array.from({ length: 300 }, (_, i) => ask(queue, "A", `a${i}`, granted, held));
    const floodOutcomes = Promise.allSettled(flood);
    await settle();
    // Act: B asks while A has 2 running and 50 waiting
    const b = ask(queue, "B", "b", granted, held);
    await settle();
    // Assess: B holds a slot at once; A's excess beyond 2 + 50 was refused 429 at once
    expect(granted).toEqual(["a0", "a1", "b"]);
    expect(queue.tenantStats("A")).toEqual({ running: 2, waiting: 50 });
    expect(queue.stats().refused).toBe(248);
    await b;
    // Act: with the 4 slots full (2 of A, B, and C), the next freed slot of A goes to D, not to A
    await ask(queue, "C", "c", granted, held);
    const d = ask(queue, "D", "d", granted, held);
    await settle();
    expect(granted.at(-1)).toBe("c");
    held.get("a0")?.();
    await settle();
    expect(granted.at(-1)).toBe("d");
    await d;
    // Drain: every call is granted exactly once or refused exactly once, never both, never lost
    for (const label of ["b", "c", "d"]) held.get(label)?.();
    for (let i = 1; i < 52; i++) {
      held.get(`a${i}`)?.();
      await settle();
    }
    const outcomes = await floodOutcomes;
    expect(outcomes.filter((o) => o.status === "fulfilled")).toHaveLength(52);
    const refused = outcomes.filter((o) => o.status === "rejected") as PromiseRejectedResult[];
    expect(refused).toHaveLength(248);
    for (const r of refused) {
      expect(r.reason).toBeInstanceOf(TooManyConcurrentStepsError);
      expect((r.reason as TooManyConcurrentStepsError).headers?.["Retry-After"]).toBe("1");
    }
    expect(new Set(granted).size).toBe(granted.length);
    expect(queue.stats()).toEqual({ running: 0, waiting: 0, tenants: 0, refused: 248 });
  });

  it("a caller past its deadline leaves the queue refused, and its place is not lost to others", async () => {
    const queue = new FairQueue({ maxRunning: 1, tenantMaxRunning: 1, tenantMaxWaiting: 5 });
    const first = await queue.acquire("A");
    const late = queue.acquire("A", Date.now() - 1);
    const next = queue.acquire("A");
    await expect(late).rejects.toBeInstanceOf(TooManyConcurrentStepsError);
    first();
    (await next)();
    expect(queue.stats()).toEqual({ running: 0, waiting: 0, tenants: 0, refused: 1 });
  });
});

describe("the load governor", () => {
  it("halves the per-tenant cap while the event loop is busy, regrows it by one when calm, within 1..max", () => {
    const t = { high: 0.6, low: 0.4 };
    expect(nextTenantCap(8, 0.9, 8, t)).toBe(4);
    expect(nextTenantCap(1, 0.9, 8, t)).toBe(1);
    expect(nextTenantCap(4, 0.5, 8, t)).toBe(4);
    expect(nextTenantCap(4, 0.1, 8, t)).toBe(5);
    expect(nextTenantCap(8, 0.1, 8, t)).toBe(8);
  });

  it("a lowered cap holds a flooding tenant's next callers back; raising it lets them in", async () => {
    const queue = new FairQueue({ maxRunning: 10, tenantMaxRunning: 4, tenantMaxWaiting: 10 });
    const granted: string[] = [];
    const held = new Map<string, ReleaseSlot>();
    queue.setTenantMaxRunning(1);
    const b = ask(queue, "B", "b", granted, held);
    const calls = Array.from({ length: 3 }, (_, i) => ask(queue, "A", `a${i}`, granted, held));
    await settle();
    // B is present, so A runs one at a time; B, with one running, was not held back either
    expect(granted).toEqual(["b", "a0"]);
    // Raised (to at most the configured 4): A's waiting callers go in
    queue.setTenantMaxRunning(99);
    await settle();
    expect(queue.currentTenantMaxRunning()).toBe(4);
    expect(granted).toEqual(["b", "a0", "a1", "a2"]);
    for (const label of ["a0", "b", "a1", "a2"]) held.get(label)?.();
    await Promise.all([...calls, b]);
    expect(queue.stats()).toEqual({ running: 0, waiting: 0, tenants: 0, refused: 0 });
  });
});

describe("the load governor is work-conserving", () => {
  it("a tenant alone keeps its configured cap while the process is busy; a second tenant brings the lowered cap back", async () => {
    const queue = new FairQueue({ maxRunning: 10, tenantMaxRunning: 4, tenantMaxWaiting: 10 });
    const granted: string[] = [];
    const held = new Map<string, ReleaseSlot>();
    queue.setTenantMaxRunning(1);
    const alone = Array.from({ length: 3 }, (_, i) => ask(queue, "A", `a${i}`, granted, held));
    await settle();
    // Nobody else asked: A is not held to the lowered cap (the capacity would sit idle)
    expect(granted).toEqual(["a0", "a1", "a2"]);
    const b = ask(queue, "B", "b", granted, held);
    const more = ask(queue, "A", "a3", granted, held);
    await settle();
    // B asked: A, already over the lowered cap, waits; B goes in
    expect(granted).toEqual(["a0", "a1", "a2", "b"]);
    for (const label of ["a0", "a1", "a2"]) held.get(label)?.();
    await settle();
    expect(granted).toEqual(["a0", "a1", "a2", "b", "a3"]);
    for (const label of ["b", "a3"]) held.get(label)?.();
    await Promise.all([...alone, b, more]);
    expect(queue.stats()).toEqual({ running: 0, waiting: 0, tenants: 0, refused: 0 });
  });
});

describe("the refusal pacer", () => {
  it("spreads a tenant's retries to refusalsPerSecond, other tenants unaffected, back to 1 s once quiet", () => {
    let now = 1_000_000;
    const pacer = new RefusalPacer({ refusalsPerSecond: 20, maxRetryAfterS: 30, now: () => now });
    // Act: 200 refusals of A at one instant, then one of B
    const a = Array.from({ length: 200 }, () => pacer.retryAfterS("A"));
    const b = pacer.retryAfterS("B");
    // Assess: 20 retries a second, for 10 s; B is told 1 s
    for (let s = 1; s <= 10; s++) expect(a.filter((x) => x === s)).toHaveLength(20);
    expect(b).toBe(1);
    // Past the longest Retry-After, no tenant is told more than it
    const many = Array.from({ length: 1000 }, () => pacer.retryAfterS("A"));
    expect(Math.max(...many)).toBe(30);
    // Once its retry times have passed, A is told 1 s again
    now += 31_000;
    expect(pacer.retryAfterS("A")).toBe(1);
  });
});

describe("the admission limits", () => {
  it("split a tenant's caps among the API instances, rounded up", () => {
    const config = { tenantMaxRunningSteps: 8, tenantMaxWaitingSteps: 5, authRequired: true };
    expect(admissionLimits({ ...config, maxStepsInFlight: 32 })).toEqual({
      maxRunning: 32,
      tenantMaxRunning: 8,
      tenantMaxWaiting: 5,
      maxWaitMs: 30_000,
    });
    expect(admissionLimits({ ...config, apiInstances: 2 })).toEqual({
      maxRunning: 64,
      tenantMaxRunning: 4,
      tenantMaxWaiting: 3,
      maxWaitMs: 30_000,
    });
    expect(
      admissionLimits({
        tenantMaxRunningSteps: 1,
        tenantMaxWaitingSteps: 1,
        apiInstances: 3,
        authRequired: true,
      }),
    ).toMatchObject({ tenantMaxRunning: 1, tenantMaxWaiting: 1 });
    // Keys off: the one tenant may use every slot
    expect(admissionLimits({ ...config, authRequired: false })).toMatchObject({ tenantMaxRunning: 64 });
  });
});

describe("steps admitted before the store", () => {
  it("a flooding tenant's queued steps read nothing; another tenant's step runs ahead of them; the excess is 429 unrun", async () => {
    // Prepare: one slot per tenant, 2 may wait; A has 5 episodes, B one
    const repo = new FakeEpisodeRepository();
    const executor = new ScriptedExecutor();
    const queue = new FairQueue({ maxRunning: 8, tenantMaxRunning: 1, tenantMaxWaiting: 2 });
    let ended = 0;
    const service = new EpisodeService({
      repository: repo,
      executor,
      config: defaultConfig,
      tenancy: admitSteps(
        {
          ...noTenancy,
          beginStep: async () => () => {
            ended += 1;
          },
        },
        queue,
      ),
      sleep: () => new Promise((r) => setImmediate(r)),
      logError: () => {},
    });
    const aIds: string[] = [];
    for (let i = 0; i < 5; i++) aIds.push((await service.reset("A", {})).episode_id);
    const bId = (await service.reset("B", {})).episode_id;
    const held = gate();
    executor.answer = async (req) => {
      if (req.tenantId === "A") await held.wait;
      return {};
    };
    const loadsBefore = repo.calls.load ?? 0;
    // Act: A steps its 5 episodes at once; then B steps
    const flood = Promise.allSettled(aIds.map((id, i) => service.step("A", id, { code: `a${i}` })));
    await settle();
    const loadsDuringFlood = (repo.calls.load ?? 0) - loadsBefore;
    const b = await service.step("B", bId, { code: "b" });
    // Assess: one of A's steps ran its load; two wait without any read; two were refused 429
    expect(loadsDuringFlood).toBe(1);
    expect(b.body.observation.stdout).toBe("b\n");
    expect(executor.calls.map((c) => c.code)).toEqual(["a0", "b"]);
    held.open();
    const outcomes = await flood;
    const ok = outcomes.filter((o) => o.status === "fulfilled");
    const refused = outcomes.filter((o) => o.status === "rejected") as PromiseRejectedResult[];
    expect(ok).toHaveLength(3);
    expect(refused.map((r) => (r.reason as TooManyConcurrentStepsError).code)).toEqual([
      "too_many_concurrent_steps",
      "too_many_concurrent_steps",
    ]);
    // Each admitted step ran once; the refused ones never reached the executor; every begun step ended
    expect(executor.calls.map((c) => c.code).sort()).toEqual(["a0", "a1", "a2", "b"]);
    expect(ended).toBe(6);
    expect(queue.stats()).toEqual({ running: 0, waiting: 0, tenants: 0, refused: 2 });
  });
});
