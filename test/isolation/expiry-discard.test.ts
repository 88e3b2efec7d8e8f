// Expiry discards the warm worker (issue 10 point 2): once DynamoDB's TTL removes an idle episode's
// head, the local stack's stream hand-off sends the executor a discard for that episode, so its warm
// worker (the memory it holds, up to 10 minutes otherwise) goes at once, as on DELETE and reset.
// In AWS no discard is sent on expiry (docs/DEPLOY.md): a worker lingers until the executor's
// `warm_ttl_s`, which is memory, not data (a warm worker is keyed by tenant, episode and incarnation).
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type LocalStack, startLocalStack } from "../../functions/src/local/stack.js";
import { Episode } from "../helpers/api.js";

const isRoot = typeof process.getuid === "function" && process.getuid() === 0;

/** The worker's pid and its start time (clock ticks since boot), which a reused pid would not share. */
const WHO_AM_I =
  "import os\nprint(os.getpid(), open('/proc/self/stat').read().rsplit(')', 1)[1].split()[19])";

/** Whether the process `pid` that started at `startTicks` still exists (root reads every /proc entry). */
function alive(pid: number, startTicks: string): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] === startTicks;
  } catch {
    return false;
  }
}

describe.skipIf(!isRoot)("expiry discards the episode's warm worker (local stack, root mode)", () => {
  let stack: LocalStack;

  beforeAll(async () => {
    // The sweep timer is not what this file waits on: it runs the sweep itself with a clock past
    // the episode's expiry, then hands the change records over (what the timers do every interval).
    stack = await startLocalStack({ port: 0, dataDir: null, sweepIntervalMs: 3_600_000 });
  });

  afterAll(async () => {
    await stack?.stop();
  });

  it("the worker that ran the episode's step is gone once the TTL sweep removes the episode", async () => {
    // Prepare: a warm worker holding the episode (it serves the next step warm)
    const ep = await Episode.reset(stack.baseUrl, { ttl_s: 60, policy: "full" });
    const [pid, startTicks] = (await ep.run(WHO_AM_I)).observation.stdout.trim().split(" ");
    const again = await ep.run(WHO_AM_I);
    expect(again.observation.stdout.trim()).toBe(`${pid} ${startTicks}`);
    expect(alive(Number(pid), String(startTicks))).toBe(true);
    // Act: DynamoDB's TTL service, two minutes on, removes the expired episode
    const removed = await stack.sweepExpired(Date.now() + 120_000);
    await stack.flushStream();
    // Assert
    expect(removed).toBeGreaterThan(0);
    expect((await ep.step("1")).status).toBe(404);
    await vi.waitFor(() => expect(alive(Number(pid), String(startTicks))).toBe(false), {
      timeout: 15_000,
      interval: 50,
    });
  });

  it("an episode that has not expired keeps its warm worker through the sweep", async () => {
    // Prepare
    const ep = await Episode.reset(stack.baseUrl, { ttl_s: 3600, policy: "full" });
    const [pid, startTicks] = (await ep.run(WHO_AM_I)).observation.stdout.trim().split(" ");
    // Act
    await stack.sweepExpired(Date.now() + 120_000);
    await stack.flushStream();
    // Assert: the next step is served by the same (warm) worker
    const next = await ep.step(WHO_AM_I);
    expect(next.status).toBe(200);
    expect(next.body.observation.stdout.trim()).toBe(`${pid} ${startTicks}`);
  });
});
