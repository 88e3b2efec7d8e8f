// The fair-share scheduler in front of the executor (functions/src/executor/fair-share.ts): a flood
// from one tenant never takes another tenant's turn. The executor behind it is a stand-in whose
// calls end only when the test says so, so every assertion is about order, never about time.
import { describe, expect, it } from "vitest";
import { TooManyConcurrentStepsError } from "../../functions/src/core/errors.js";
import type { ExecuteRequest, ExecuteResult, Executor } from "../../functions/src/executor/executor.js";
import { executorShareLimits, FairShareExecutor } from "../../functions/src/executor/fair-share.js";

/** An executor whose calls stay running until `finish` is called for them. */
class HeldExecutor implements Executor {
  readonly started: ExecuteRequest[] = [];
  private readonly finishers = new Map<ExecuteRequest, () => void>();

  execute(req: ExecuteRequest): Promise<ExecuteResult> {
    this.started.push(req);
    return new Promise((resolve) => {
      this.finishers.set(req, () =>
        resolve({ stdout: req.code, stderr: "", exit_code: 0, snapshot: "", state_version: 1 }),
      );
    });
  }

  async discard(): Promise<void> {}

  /** Ends the oldest running call of `tenantId`. */
  finishOne(tenantId: string): void {
    const req = this.started.find((r) => r.tenantId === tenantId && this.finishers.has(r));
    if (!req) throw new Error(`no running call of ${tenantId}`);
    this.finishers.get(req)?.();
    this.finishers.delete(req);
  }

  running(tenantId: string): number {
    return this.started.filter((r) => r.tenantId === tenantId && this.finishers.has(r)).length;
  }
}

function request(tenantId: string, code: string): ExecuteRequest {
  return {
    tenantId,
    episodeId: `ep_${code}`,
    stateVersion: 0,
    snapshot: null,
    code,
    policy: { mode: "openenv", additionalImports: [] },
    timeoutMs: 1000,
  };
}

/** Lets queued promise callbacks run. */
const settle = () => new Promise<void>((r) => setImmediate(r));

describe("fair sharing of the executor", () => {
  it("a flood from tenant A leaves tenant B's step to start at once; A's excess is refused 429", async () => {
    // Prepare
    const inner = new HeldExecutor();
    const fair = new FairShareExecutor(inner, { maxRunning: 16, tenantMaxRunning: 4, tenantMaxWaiting: 8 });
    // Act: 300 concurrent calls from A, then one from B
    const flood = Array.from({ length: 300 }, (_, i) => fair.execute(request("A", `a${i}`)));
    const floodOutcomes = Promise.allSettled(flood);
    const b = fair.execute(request("B", "b"));
    await settle();
    // Assess: B runs beside A's four; A's calls beyond 4 running + 8 waiting were refused, never run
    expect(inner.running("B")).toBe(1);
    expect(inner.running("A")).toBe(4);
    inner.finishOne("B");
    expect((await b).stdout).toBe("b");
    for (let i = 0; i < 12; i++) {
      inner.finishOne("A");
      await settle();
    }
    const outcomes = await floodOutcomes;
    const refused = outcomes.filter((o) => o.status === "rejected");
    expect(outcomes.filter((o) => o.status === "fulfilled")).toHaveLength(12);
    expect(refused).toHaveLength(288);
    for (const r of refused) {
      const err = (r as PromiseRejectedResult).reason as TooManyConcurrentStepsError;
      expect(err).toBeInstanceOf(TooManyConcurrentStepsError);
      expect(err.status).toBe(429);
      expect(err.headers?.["Retry-After"]).toBe("1");
    }
    expect(inner.started.filter((r) => r.tenantId === "A")).toHaveLength(12);
    expect(fair.stats()).toEqual({ running: 0, waiting: 0, tenants: 0 });
  });

  it("when every slot is taken, a freed slot goes to the waiting tenant with the fewest running", async () => {
    // Prepare: 2 slots in all, both held by A, which has more waiting than B
    const inner = new HeldExecutor();
    const fair = new FairShareExecutor(inner, { maxRunning: 2, tenantMaxRunning: 2, tenantMaxWaiting: 10 });
    const calls = [
      ...Array.from({ length: 6 }, (_, i) => fair.execute(request("A", `a${i}`))),
      fair.execute(request("B", "b0")),
      fair.execute(request("B", "b1")),
    ];
    await settle();
    expect(inner.started.map((r) => r.code)).toEqual(["a0", "a1"]);
    // Act: A's calls end one at a time, then B's first
    for (let i = 0; i < 3; i++) {
      inner.finishOne("A");
      await settle();
    }
    const afterA = inner.started.map((r) => r.code);
    inner.finishOne("B");
    await settle();
    // Assess: B got the first freed slot (ahead of A's older waiting calls) and kept one of the
    // two slots; when it freed it, its next call took it
    expect(afterA).toEqual(["a0", "a1", "b0", "a2", "a3"]);
    expect(inner.started.map((r) => r.code)).toEqual(["a0", "a1", "b0", "a2", "a3", "b1"]);
    inner.finishOne("B");
    for (let i = 0; i < 3; i++) {
      await settle();
      inner.finishOne("A");
    }
    await Promise.all(calls);
    expect(fair.stats()).toEqual({ running: 0, waiting: 0, tenants: 0 });
  });

  it("a call that waits longer than maxWaitMs is refused 429 and never runs", async () => {
    const inner = new HeldExecutor();
    const fair = new FairShareExecutor(inner, {
      maxRunning: 1,
      tenantMaxRunning: 1,
      tenantMaxWaiting: 5,
      maxWaitMs: 1,
    });
    const first = fair.execute(request("A", "first"));
    const second = fair.execute(request("A", "second"));
    await expect(second).rejects.toBeInstanceOf(TooManyConcurrentStepsError);
    inner.finishOne("A");
    await first;
    expect(inner.started.map((r) => r.code)).toEqual(["first"]);
    expect(fair.stats()).toEqual({ running: 0, waiting: 0, tenants: 0 });
  });

  it("keys off, the one tenant may run a call in every slot; keys on, each tenant is capped", async () => {
    // Prepare: the limits as deps.ts builds them, 64 calls at once, 8 per tenant with keys
    const settings = { executorMaxConcurrency: 64, tenantMaxRunningSteps: 8, tenantMaxWaitingSteps: 64 };
    const local = new HeldExecutor();
    const hosted = new HeldExecutor();
    const localFair = new FairShareExecutor(local, executorShareLimits({ ...settings, authRequired: false }));
    const hostedFair = new FairShareExecutor(
      hosted,
      executorShareLimits({ ...settings, authRequired: true }),
    );
    // Act: 64 concurrent calls of one tenant to each
    const localCalls = Array.from({ length: 64 }, (_, i) => localFair.execute(request("local", `l${i}`)));
    const hostedCalls = Array.from({ length: 64 }, (_, i) => hostedFair.execute(request("A", `a${i}`)));
    await settle();
    // Assess: keys off, all 64 run at once (none waits behind an executor slot); keys on, 8 do
    expect(local.running("local")).toBe(64);
    expect(hosted.running("A")).toBe(8);
    expect(hostedFair.stats()).toEqual({ running: 8, waiting: 56, tenants: 1 });
    for (let i = 0; i < 64; i++) local.finishOne("local");
    for (let i = 0; i < 64; i++) {
      hosted.finishOne("A");
      await settle();
    }
    await Promise.all([...localCalls, ...hostedCalls]);
    expect(localFair.stats()).toEqual({ running: 0, waiting: 0, tenants: 0 });
    expect(hostedFair.stats()).toEqual({ running: 0, waiting: 0, tenants: 0 });
  });
});
