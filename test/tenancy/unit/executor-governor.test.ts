// Unit tier of the cross-instance executor governor (functions/src/admission/executor-governor.ts
// and governed-executor.ts), with its store in memory (test/tenancy/in-memory-executor-governor.ts)
// and a clock of the test's own: normal mode (a cached flag, nothing else), contended (a throttle
// marks the flag, once), governed (a slot per step, refused at the cap, given back however the
// invoke ends, reusable once its holder's time ended). The same against a real store and real
// throttling: test/isolation/executor-governor.test.ts.
import { describe, expect, it } from "vitest";
import { ExecutorGovernor } from "../../../functions/src/admission/executor-governor.js";
import { GovernedExecutor, governedTenantCap } from "../../../functions/src/admission/governed-executor.js";
import {
  ExecutorError,
  ExecutorThrottledError,
  TooManyConcurrentStepsError,
} from "../../../functions/src/core/errors.js";
import type { ExecuteRequest, ExecuteResult, Executor } from "../../../functions/src/executor/executor.js";
import { InMemoryExecutorGovernorStore } from "../in-memory-executor-governor.js";

const T0 = Date.parse("2026-12-02T06:00:00Z");

function setup(opts: { checkIntervalMs?: number; contentionTtlMs?: number } = {}) {
  const clock = { now: T0 };
  const store = new InMemoryExecutorGovernorStore();
  const logged: string[] = [];
  const governor = new ExecutorGovernor({
    store,
    checkIntervalMs: opts.checkIntervalMs ?? 2_000,
    contentionTtlMs: opts.contentionTtlMs ?? 30_000,
    now: () => clock.now,
    logError: (message) => logged.push(message),
  });
  return { clock, store, governor, logged };
}

async function refusalOf(p: Promise<unknown>): Promise<TooManyConcurrentStepsError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TooManyConcurrentStepsError);
  return err as TooManyConcurrentStepsError;
}

describe("ExecutorGovernor", () => {
  it("in normal mode reads the flag at most once per interval and takes no slot", async () => {
    const { clock, store, governor } = setup();
    for (let i = 0; i < 50; i++) await (await governor.admit("a", 2, clock.now + 5_000))();
    expect(store.calls.of("readContendedUntil")).toBe(1);
    clock.now += 1_999;
    await governor.admit("a", 2, clock.now + 5_000);
    expect(store.calls.of("readContendedUntil")).toBe(1);
    clock.now += 1;
    await governor.admit("a", 2, clock.now + 5_000);
    expect(store.calls.of("readContendedUntil")).toBe(2);
    expect(store.calls.of("takeStepSlot") + store.calls.of("markContended")).toBe(0);
  });

  it("concurrent first steps of an instance share one flag read", async () => {
    const { store, governor, clock } = setup();
    await Promise.all(Array.from({ length: 20 }, () => governor.admit("a", 2, clock.now + 5_000)));
    expect(store.calls.of("readContendedUntil")).toBe(1);
  });

  it("normal -> contended -> a slot per step -> refused at the cap -> released -> free again", async () => {
    const { clock, store, governor } = setup();
    await governor.admit("a", 2, clock.now + 5_000); // normal: reads the flag (off)
    await governor.throttled();
    expect(store.contendedUntil).toBe(T0 + 30_000);
    expect(governor.governing()).toBe(true);
    // Governed at once in this instance (its own mark), without another read.
    const first = await governor.admit("a", 2, clock.now + 5_000);
    const second = await governor.admit("a", 2, clock.now + 5_000);
    expect(store.heldBy("a", clock.now)).toBe(2);
    const refused = await refusalOf(governor.admit("a", 2, clock.now + 5_000));
    expect(refused.status).toBe(429);
    expect(refused.code).toBe("too_many_concurrent_steps");
    expect(refused.headers?.["Retry-After"]).toBe("1");
    // Another tenant has slots of its own.
    const other = await governor.admit("b", 2, clock.now + 5_000);
    expect(store.heldBy("b", clock.now)).toBe(1);
    await first();
    expect(store.heldBy("a", clock.now)).toBe(1);
    await governor.admit("a", 2, clock.now + 5_000);
    expect(store.heldBy("a", clock.now)).toBe(2);
    await second();
    await other();
    expect(store.calls.of("readContendedUntil")).toBe(1);
  });

  it("a slot whose holder's time ended is taken again (a lost release does not shrink the cap)", async () => {
    const { clock, store, governor } = setup();
    await governor.throttled();
    await governor.admit("a", 1, clock.now + 1_000); // never released
    await refusalOf(governor.admit("a", 1, clock.now + 1_000));
    clock.now += 1_001;
    const again = await governor.admit("a", 1, clock.now + 1_000);
    expect(store.heldBy("a", clock.now)).toBe(1);
    await again();
    expect(store.heldBy("a", clock.now)).toBe(0);
  });

  it("the flag ends after its lifetime; refusals at the cap keep it on, throttles write it once", async () => {
    const { clock, store, governor } = setup({ contentionTtlMs: 30_000 });
    await governor.throttled();
    await governor.throttled();
    await governor.throttled();
    expect(store.calls.of("markContended")).toBe(1);
    const held = await governor.admit("a", 1, clock.now + 60_000);
    // 20 s later (under half the lifetime left) a refusal at the cap extends it.
    clock.now += 20_000;
    await refusalOf(governor.admit("a", 1, clock.now + 1_000));
    expect(store.calls.of("markContended")).toBe(2);
    expect(store.contendedUntil).toBe(T0 + 20_000 + 30_000);
    await held();
    // Nobody presses a cap or is throttled: normal mode once the flag has ended.
    clock.now = store.contendedUntil + 1;
    const before = store.calls.of("takeStepSlot");
    await governor.admit("a", 1, clock.now + 1_000);
    expect(store.calls.of("takeStepSlot")).toBe(before);
  });

  it("another instance's mark is seen at its next read; a mark already in force is not rewritten", async () => {
    const store = new InMemoryExecutorGovernorStore();
    const clock = { now: T0 };
    const make = () => new ExecutorGovernor({ store, checkIntervalMs: 2_000, now: () => clock.now });
    const [one, two] = [make(), make()];
    await one.admit("a", 1, clock.now + 1_000);
    await two.admit("a", 1, clock.now + 1_000); // both cached "off"
    await one.throttled();
    await two.admit("a", 1, clock.now + 1_000); // still its cached "off": not governed yet
    expect(store.heldBy("a", clock.now)).toBe(0);
    clock.now += 2_000;
    await two.admit("a", 1, clock.now + 5_000); // re-read: governed
    expect(store.heldBy("a", clock.now)).toBe(1);
    await two.throttled(); // knows it is marked for long enough: no write
    expect(store.calls.of("markContended")).toBe(1);
  });

  it("always: every step takes a slot without reading the flag, so the cap holds uncontended too", async () => {
    const clock = { now: T0 };
    const store = new InMemoryExecutorGovernorStore();
    const governor = new ExecutorGovernor({ store, always: true, now: () => clock.now });
    const first = await governor.admit("a", 2, clock.now + 5_000);
    const second = await governor.admit("a", 2, clock.now + 5_000);
    await refusalOf(governor.admit("a", 2, clock.now + 5_000));
    expect(store.calls.of("readContendedUntil")).toBe(0);
    expect(store.calls.of("takeStepSlot")).toBe(3);
    expect(governor.governing()).toBe(true);
    await first();
    await (await governor.admit("a", 2, clock.now + 5_000))();
    await second();
  });

  it("a tenant without a cap (Infinity) never touches the store", async () => {
    const { store, governor, clock } = setup();
    await governor.throttled();
    const before = store.calls.total();
    await (await governor.admit("local", Number.POSITIVE_INFINITY, clock.now + 1_000))();
    expect(store.calls.total()).toBe(before);
  });

  it("an unreachable store leaves steps in normal mode (logged), never refused", async () => {
    const { store, governor, clock, logged } = setup();
    store.failWith = new Error("connection refused");
    await (await governor.admit("a", 1, clock.now + 1_000))();
    await (await governor.admit("a", 1, clock.now + 1_000))();
    expect(store.calls.of("readContendedUntil")).toBe(1); // tried again after the interval only
    await governor.throttled();
    expect(logged).toEqual([
      "could not read the executor contention flag",
      "could not mark the executor contended",
    ]);
  });
});

/** An executor whose answer the test decides per call. */
class ScriptedExecutor implements Executor {
  next: () => Promise<ExecuteResult> = async () => ({
    stdout: "",
    stderr: "",
    exit_code: 0,
    snapshot: "",
    state_version: 1,
  });
  execute(_req: ExecuteRequest): Promise<ExecuteResult> {
    return this.next();
  }
  async discard(): Promise<void> {}
}

const request = (tenantId: string): ExecuteRequest => ({
  tenantId,
  episodeId: "ep_1",
  stateVersion: 0,
  snapshot: null,
  code: "print(1)",
  policy: { mode: "openenv", additionalImports: [] },
  timeoutMs: 1_000,
});

describe("GovernedExecutor", () => {
  function governed(cap = 1) {
    const parts = setup();
    const inner = new ScriptedExecutor();
    const executor = new GovernedExecutor(inner, {
      governor: parts.governor,
      capFor: () => cap,
      graceMs: 500,
    });
    return { ...parts, inner, executor };
  }

  it("a throttled invoke engages governed mode and is answered 429 executor_throttled (nothing ran)", async () => {
    const { inner, executor, store } = governed();
    inner.next = async () => {
      throw new ExecutorThrottledError(1);
    };
    await expect(executor.execute(request("a"))).rejects.toBeInstanceOf(ExecutorThrottledError);
    expect(store.contendedUntil).toBeGreaterThan(T0);
  });

  it("gives the slot back when the invoke fails, and holds it until the step's deadline", async () => {
    const { inner, executor, store, governor, clock } = governed(1);
    await governor.throttled();
    let heldDuringInvoke: { heldUntil: number } | undefined;
    inner.next = async () => {
      heldDuringInvoke = store.slots.get("a#0");
      throw new ExecutorError();
    };
    await expect(executor.execute(request("a"))).rejects.toBeInstanceOf(ExecutorError);
    expect(heldDuringInvoke?.heldUntil).toBeGreaterThanOrEqual(clock.now + 1_000 + 500);
    expect(store.heldBy("a", clock.now)).toBe(0);
    // And after a throttle while governed: released too, still one slot for the next step.
    inner.next = async () => {
      throw new ExecutorThrottledError(1);
    };
    await expect(executor.execute(request("a"))).rejects.toBeInstanceOf(ExecutorThrottledError);
    expect(store.heldBy("a", clock.now)).toBe(0);
    inner.next = new ScriptedExecutor().next;
    await expect(executor.execute(request("a"))).resolves.toMatchObject({ exit_code: 0 });
    expect(store.heldBy("a", clock.now)).toBe(0);
  });

  it("at the cap the step is refused before the invoke", async () => {
    const { inner, executor, governor } = governed(1);
    await governor.throttled();
    let invokes = 0;
    let finish: () => void = () => {};
    inner.next = () => {
      invokes++;
      return new Promise((resolve) => {
        finish = () => resolve({ stdout: "", stderr: "", exit_code: 0, snapshot: "", state_version: 1 });
      });
    };
    const running = executor.execute(request("a"));
    await new Promise((r) => setTimeout(r, 0));
    await refusalOf(executor.execute(request("a")));
    expect(invokes).toBe(1);
    finish();
    await running;
  });
});

describe("governedTenantCap", () => {
  it("is the tenant's concurrent_steps quota, at most half the reserved concurrency", () => {
    expect(governedTenantCap(32, undefined)).toBe(32);
    expect(governedTenantCap(32, 40)).toBe(20);
    expect(governedTenantCap(2, 40)).toBe(2);
    expect(governedTenantCap(32, 1)).toBe(1);
    expect(governedTenantCap(Number.POSITIVE_INFINITY, undefined)).toBe(Number.POSITIVE_INFINITY);
  });
});
