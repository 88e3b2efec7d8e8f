// Admission under a flood (issue 10 point 7), against the real local stack (keys on, dynalite, the
// Python executor): tenant A fills its share of step slots with sleeping cells and its queue with
// more; tenant B's step is admitted ahead of A's queued steps and completes while they still wait;
// A's excess is answered 429 with a Retry-After at once, never run; every step of A ran once or not
// at all. With two API instances the per-tenant cap holds across both (each takes half).
// Order is read from the cells' own clocks and from which answers have arrived, never from how long
// anything took (speed under a flood is bench/api/fairness.ts).
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalStack, startLocalStack } from "../../functions/src/local/stack.js";
import { dynamoDbApiKeyStore } from "../../functions/src/store/dynamodb-api-keys.js";
import { clientFor } from "../tenancy/helpers/dynalite-table.js";

interface Answer {
  status: number;
  code: string | undefined;
  retryAfter: string | null;
  body: Record<string, unknown>;
}

/**
 * The two scenarios' stacks (one API instance, two), started together before the scenarios, which
 * then run at the same time, each on its own stack (its own executor and DynamoDB): the file waits
 * for one start and one flood, not two of each (a failed start fails the scenario that awaits it).
 */
const starting = new Map<number, Promise<LocalStack>>();
const clients: DynamoDBClient[] = [];
beforeAll(async () => {
  for (const n of [1, 2]) starting.set(n, startStack(n));
  // Both up before the scenarios: a start's load must not delay a cell in the other's window.
  await Promise.allSettled(starting.values());
});
afterAll(async () => {
  for (const client of clients) client.destroy();
  for (const started of starting.values()) await (await started.catch(() => undefined))?.stop();
});

function startStack(apiInstances: number): Promise<LocalStack> {
  return startLocalStack({
    port: 0,
    dataDir: null,
    auth: true,
    apiInstances,
    env: {
      // A tenant runs 2 steps at once and queues 3 (in all instances together), whatever the
      // machine's load (the governor would lower the cap on a busy machine: test/core covers it).
      CODING_ENV_TENANT_MAX_RUNNING_STEPS: "2",
      CODING_ENV_TENANT_MAX_WAITING_STEPS: "3",
      CODING_ENV_ADMISSION_GOVERNOR: "off",
      // A slow machine must not turn a queued step into a refusal.
      CODING_ENV_QUOTA_CONCURRENT_STEPS: "100000",
      CODING_ENV_QUOTA_STEPS_PER_DAY: "1000000",
      CODING_ENV_QUOTA_ACTIVE_EPISODES: "1000",
    },
  });
}

interface Scenario {
  stack: LocalStack;
  keyA: string;
  keyB: string;
  baseUrl: string;
}

async function start(apiInstances: number): Promise<Scenario> {
  const stack = await (starting.get(apiInstances) as Promise<LocalStack>);
  // The stack's child processes: the executor, then each API instance when several; all distinct,
  // none of them this one (with one instance the API serves from this process).
  expect(stack.childPids).toHaveLength(apiInstances === 1 ? 1 : 1 + apiInstances);
  expect(new Set(stack.childPids).size).toBe(stack.childPids.length);
  expect(stack.childPids).not.toContain(process.pid);
  const client = clientFor(stack.dynamodbEndpoint, stack.credentials);
  clients.push(client);
  const keys = dynamoDbApiKeyStore({ client, tableName: stack.tableName });
  return {
    stack,
    keyA: (await keys.create({ tenantId: "flooder" })).key,
    keyB: (await keys.create({ tenantId: "bystander" })).key,
    baseUrl: stack.baseUrl,
  };
}

async function call(
  baseUrl: string,
  key: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<Answer> {
  const res = await fetch(`${baseUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const parsed = (await res.json()) as Record<string, unknown>;
  return {
    status: res.status,
    code: (parsed.error as { code?: string } | undefined)?.code,
    retryAfter: res.headers.get("retry-after"),
    body: parsed,
  };
}

async function resets(baseUrl: string, key: string, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = await call(baseUrl, key, "POST", "/reset", {});
    if (r.status !== 200) throw new Error(`reset failed: ${r.status} ${JSON.stringify(r.body)}`);
    ids.push(String(r.body.episode_id));
  }
  return ids;
}

const stdout = (a: Answer) => String((a.body.observation as { stdout?: string } | undefined)?.stdout ?? "");
/** A cell that prints when it started and ended (the executor's clock), holding its slot 6 s. */
const HOLDING_CELL = "import time\nt0 = time.time()\ntime.sleep(6)\nprint(t0, time.time())";
/** The same for half a second: the steps that queue behind the holding ones run long enough that one
 * wrongly admitted beside them still overlaps a running cell on the executor's clock. */
const QUICK_CELL = "import time\nt0 = time.time()\ntime.sleep(0.5)\nprint(t0, time.time())";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Episode reads (Query) the stack's DynamoDB has served: one per step admitted. */
async function queries(stack: LocalStack): Promise<number> {
  return (await stack.dynamodbStats()).counts.Query ?? 0;
}

/**
 * A's flood on its episodes: the first two steps hold A's two slots with a sleeping cell; once both
 * are admitted (each has read its episode), the other eight arrive at once with a quick cell, so
 * the steps that queue behind them start only when a holding one has ended, and the whole takes
 * one holding cell's time (plus the queued quick ones) instead of one per slot-full.
 */
async function flood({ stack, baseUrl, keyA }: Scenario, ids: string[]): Promise<Promise<Answer>[]> {
  const step = (id: string, code: string) =>
    call(baseUrl, keyA, "POST", "/step", { action: { code }, episode_id: id });
  const before = await queries(stack);
  const holding = ids.slice(0, 2).map((id) => step(id, HOLDING_CELL));
  for (const end = Date.now() + 60_000; (await queries(stack)) - before < 2; await sleep(50)) {
    if (Date.now() > end) throw new Error("A's two holding steps were not admitted within 60 s");
  }
  return [...holding, ...ids.slice(2).map((id) => step(id, QUICK_CELL))];
}

/** Resolves once `n` of `answers` have arrived with `status`. */
function whenArrived(answers: Promise<Answer>[], status: number, n: number): Promise<void> {
  let seen = 0;
  return new Promise((resolve) => {
    if (n === 0) resolve();
    for (const a of answers) {
      void a.then((x) => {
        if (x.status === status && ++seen === n) resolve();
      });
    }
  });
}

/** Steps each of A's episodes ran, from their state: 1 or 0, never more. */
async function stepCounts(baseUrl: string, key: string, ids: string[]): Promise<number[]> {
  return Promise.all(
    ids.map(async (id) =>
      Number((await call(baseUrl, key, "GET", `/state?episode_id=${id}`)).body.step_count),
    ),
  );
}

describe.concurrent("admission of steps under a flood", () => {
  it("admits another tenant's step ahead of the flooder's queued steps; the excess is 429 with Retry-After, nothing lost or run twice", async () => {
    // Prepare: A has 10 episodes, B one (warmed)
    const scenario = await start(1);
    const { stack, keyA, keyB, baseUrl } = scenario;
    const flooded = await resets(baseUrl, keyA, 10);
    const [bystander] = await resets(baseUrl, keyB, 1);
    await call(baseUrl, keyB, "POST", "/step", { action: { code: "n = 0" }, episode_id: bystander });
    const queriesBefore = await queries(stack);
    // Act: A steps all 10: 2 run (holding their slots), then 8 at once: 3 wait their turn, 5 are refused
    const floodAnswers = await flood(scenario, flooded);
    const arrived = floodAnswers.map(() => false);
    floodAnswers.forEach((a, i) => {
      void a.then(() => {
        arrived[i] = true;
      });
    });
    await whenArrived(floodAnswers, 429, 5);
    // ...and while A's queue is full, B steps
    const b = await call(baseUrl, keyB, "POST", "/step", {
      action: { code: "import time\nn += 1\nprint(time.time(), n)" },
      episode_id: bystander,
    });
    const arrivedWhenBAnswered = [...arrived];
    const answers = await Promise.all(floodAnswers);

    // Assess: B ran
    expect(b.status).toBe(200);
    expect(stdout(b).trim().split(" ")[1]).toBe("1");
    const ok = answers.filter((a) => a.status === 200);
    const refused = answers.filter((a) => a.status === 429);
    expect(ok).toHaveLength(5);
    expect(refused).toHaveLength(5);
    for (const r of refused) {
      expect(r.code).toBe("too_many_concurrent_steps");
      expect(Number(r.retryAfter)).toBeGreaterThanOrEqual(1);
    }
    // B's cell started before any of A's queued steps: those started only when a running one ended
    const starts = ok.map((a) => Number(stdout(a).split(" ")[0])).sort((x, y) => x - y);
    const ends = ok.map((a) => Number(stdout(a).split(" ")[1])).sort((x, y) => x - y);
    const bStart = Number(stdout(b).split(" ")[0]);
    const queuedStarts = starts.slice(2);
    for (const s of queuedStarts) {
      expect(s).toBeGreaterThanOrEqual(ends[0] as number);
      expect(bStart).toBeLessThan(s);
    }
    // ...and B was answered while A's queued steps had not been
    const queued = answers.flatMap((a, i) =>
      a.status === 200 && Number(stdout(a).split(" ")[0]) >= (ends[0] as number) ? [i] : [],
    );
    expect(queued).toHaveLength(3);
    for (const i of queued) expect(arrivedWhenBAnswered[i]).toBe(false);
    // Refused steps read nothing: one episode read (Query) per step that ran, A's 5 and B's
    expect((await queries(stack)) - queriesBefore).toBeLessThanOrEqual(6);
    // Each of A's steps ran once (its episode at step 1) or never (refused: still at step 0)
    const counts = await stepCounts(baseUrl, keyA, flooded);
    expect(counts.filter((c) => c === 1)).toHaveLength(5);
    expect(counts.filter((c) => c === 0)).toHaveLength(5);
  }, 180_000);

  it("with two API instances the tenant's cap holds in all: never more than 2 of its steps run at once", async () => {
    // Prepare
    const scenario = await start(2);
    const { keyA, baseUrl } = scenario;
    const flooded = await resets(baseUrl, keyA, 10);
    // Act: 10 steps spread over both instances in turn: the 2 holding ones (one on each), then 8 at once
    const answers = await Promise.all(await flood(scenario, flooded));
    // Assess: each instance ran 1 at a time and queued 2 (half of 2 and of 3, rounded up): 6 ran,
    // 4 were refused; the cells' own start and end times never overlap more than 2 deep (with each
    // instance's full cap, a queued step would have run beside its instance's holding one: 3 deep)
    const ok = answers.filter((a) => a.status === 200);
    expect(ok).toHaveLength(6);
    expect(answers.filter((a) => a.status === 429 && a.code === "too_many_concurrent_steps")).toHaveLength(4);
    const events = ok.flatMap((a) => {
      const [s, e] = stdout(a).split(" ").map(Number);
      return [
        { t: s as number, d: 1 },
        { t: e as number, d: -1 },
      ];
    });
    events.sort((x, y) => x.t - y.t || x.d - y.d);
    let depth = 0;
    let deepest = 0;
    for (const e of events) {
      depth += e.d;
      deepest = Math.max(deepest, depth);
    }
    expect(deepest).toBeLessThanOrEqual(2);
    const counts = await stepCounts(baseUrl, keyA, flooded);
    expect(counts.filter((c) => c === 1)).toHaveLength(6);
    expect(counts.filter((c) => c === 0)).toHaveLength(4);
  }, 180_000);
});
