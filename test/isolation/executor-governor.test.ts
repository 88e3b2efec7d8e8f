// One tenant cannot take the executor's whole concurrency across API instances (issue 10 point 7,
// the AWS gap): a local stack with keys on, two API instances and the executor emulating Lambda's
// reserved concurrency (R = 4: a 5th invocation at once is throttled with Lambda's 429
// TooManyRequestsException and never runs). The per-process limits are set so they cannot help,
// as in AWS where each API Lambda instance serves one request at a time: a tenant may run 64
// steps per instance and the load governor is off, so the flooder alone can fill the executor.
//
// Tenant A floods with twice as many concurrent sleeping steps as R; once the executor throttles,
// the governor engages (admission/executor-governor.ts) and each of A's invokes holds one of A's
// slots (cap: half of R = 2). Then tenant B steps with the SDK (which retries 429). Asserted by
// outcome: with the governor on, B's steps all succeed and are never throttled, and A's
// invocations in flight at the executor never exceed its cap from then on; with the governor off,
// the same scenario leaves B throttled and A over its cap.
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXECUTOR_GOVERNOR_ENV } from "../../functions/src/config.js";
import { type LocalStack, startLocalStack } from "../../functions/src/local/stack.js";
import { dynamoDbApiKeyStore } from "../../functions/src/store/dynamodb-api-keys.js";
import { CodingEnv } from "../../sdk/src/index.js";
import { clientFor } from "../tenancy/helpers/dynalite-table.js";

const RESERVED = 4;
const CAP = RESERVED / 2;
const FLOOD_LOOPS = 8;
const FLOOD_CODE = "import time\ntime.sleep(1.5)";
/** How long an instance trusts its read of the flag here (2 s by default). */
const CHECK_MS = 200;

interface Executor {
  reserved_concurrency: number;
  running: number;
  in_flight: Record<string, number>;
  peak: Record<string, number>;
  throttled: Record<string, number>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type ScenarioStack = Awaited<ReturnType<typeof startScenarioStack>>;

/**
 * Both scenarios' stacks, started together when the first suite needs them (each start is an
 * executor, a DynamoDB and two API processes: at once, the file waits for one start instead of two).
 * Each suite stops its own.
 */
let starting: Record<"on" | "off", Promise<ScenarioStack>> | undefined;
function scenarioStack(governor: "on" | "off"): Promise<ScenarioStack> {
  if (!starting) {
    starting = { on: startScenarioStack("on"), off: startScenarioStack("off") };
    // A start that fails is reported by the suite that awaits it, not as an unhandled rejection.
    for (const p of Object.values(starting)) p.catch(() => undefined);
  }
  return starting[governor];
}

// Each suite stops its stack when done; this stops one whose suite did not run (a filtered run).
afterAll(async () => {
  for (const started of Object.values(starting ?? {})) {
    const ctx = await started.catch(() => undefined);
    ctx?.client.destroy();
    await ctx?.stack.stop();
  }
});

async function startScenarioStack(governor: "on" | "off") {
  const stack = await startLocalStack({
    port: 0,
    dataDir: null,
    auth: true,
    apiInstances: 2,
    executorReservedConcurrency: RESERVED,
    env: {
      [EXECUTOR_GOVERNOR_ENV.governor]: governor,
      [EXECUTOR_GOVERNOR_ENV.checkMs]: String(CHECK_MS),
      [EXECUTOR_GOVERNOR_ENV.ttlS]: "120",
      // Per-process limits that do not bind (each Lambda instance serves one request at a time).
      CODING_ENV_TENANT_MAX_RUNNING_STEPS: "128",
      CODING_ENV_TENANT_MAX_WAITING_STEPS: "128",
      CODING_ENV_ADMISSION_GOVERNOR: "off",
      CODING_ENV_QUOTA_STEPS_PER_DAY: "1000000",
      CODING_ENV_QUOTA_ACTIVE_EPISODES: "1000",
    },
  });
  const client: DynamoDBClient = clientFor(stack.dynamodbEndpoint, stack.credentials);
  const keys = dynamoDbApiKeyStore({ client, tableName: stack.tableName });
  const keyA = (await keys.create({ tenantId: "flooder" })).key;
  const keyB = (await keys.create({ tenantId: "bystander" })).key;
  return { stack, client, keyA, keyB };
}

/** The executor's own counts (the local Invoke server's report; signed with the stack's key id). */
async function executorReport(stack: LocalStack, resetPeaks = false): Promise<Executor> {
  const authorization = `AWS4-HMAC-SHA256 Credential=${stack.credentials.accessKeyId}/19700101/local/lambda/aws4_request`;
  if (resetPeaks) {
    const res = await fetch(`${stack.executorEndpoint}/local/invocations/reset-peaks`, {
      method: "POST",
      headers: { authorization },
    });
    expect(res.status).toBe(204);
  }
  const res = await fetch(`${stack.executorEndpoint}/local/invocations`, { headers: { authorization } });
  expect(res.status).toBe(200);
  return (await res.json()) as Executor;
}

/** A's flood: loops that each step their own episode again and again, retrying refusals at once. */
function flood(stack: LocalStack, key: string, episodes: readonly string[]) {
  const seen = { ok: 0, codes: new Map<string, number>() };
  /** When each request still unanswered was sent. */
  const unanswered = new Set<{ sentAt: number }>();
  let stopping = false;
  const loop = async (episodeId: string) => {
    while (!stopping) {
      const request = { sentAt: Date.now() };
      unanswered.add(request);
      const res = await fetch(`${stack.baseUrl}/step`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: JSON.stringify({ action: { code: FLOOD_CODE }, episode_id: episodeId }),
      });
      const body = (await res.json()) as { error?: { code?: string } };
      unanswered.delete(request);
      if (res.status === 200) seen.ok += 1;
      else {
        const code = `${res.status} ${body.error?.code}`;
        seen.codes.set(code, (seen.codes.get(code) ?? 0) + 1);
        await sleep(20);
      }
    }
  };
  const loops = Promise.all(episodes.map(loop));
  return {
    seen,
    count: (code: string) => seen.codes.get(code) ?? 0,
    /** Requests sent before `ms` (epoch) not answered yet. */
    unansweredSentBefore: (ms: number) => [...unanswered].filter((r) => r.sentAt < ms).length,
    stop: async () => {
      stopping = true;
      await loops;
    },
  };
}

async function until(what: string, test: () => boolean | Promise<boolean>, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await test())) {
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`);
    await sleep(50);
  }
}

/** Runs the scenario; returns what B and the executor saw once the flood had been throttled. */
async function scenario(ctx: ScenarioStack) {
  const { stack, keyA, keyB } = ctx;
  // B's SDK client counts the answers its retries see.
  const bAnswers: string[] = [];
  const counting = async (input: string, init: RequestInit) => {
    const res = await fetch(input, init);
    if (input.endsWith("/step")) {
      const body = (await res.clone().json()) as { error?: { code?: string } };
      bAnswers.push(res.status === 200 ? "200" : `${res.status} ${body.error?.code}`);
    }
    return res;
  };
  const b = new CodingEnv({ baseUrl: stack.baseUrl, apiKey: keyB, fetch: counting });
  await b.reset();
  const a = new CodingEnv({ baseUrl: stack.baseUrl, apiKey: keyA });
  const episodes: string[] = [];
  for (let i = 0; i < FLOOD_LOOPS; i++) episodes.push((await a.reset()).episode_id as string);

  // Engage: A floods until the executor has throttled it.
  const aFlood = flood(stack, keyA, episodes);
  try {
    await until("the executor to throttle A's flood", () => aFlood.count("429 executor_throttled") > 0);
    // The flag was marked before that answer; every instance's next read (CHECK_MS) sees it, so an
    // invoke of a request sent after `governedFrom` is governed. The requests sent before may have
    // ungoverned invocations: wait until each is answered (its invocation has ended).
    const governedFrom = Date.now() + CHECK_MS + 1_000;
    await sleep(governedFrom - Date.now());
    await until(
      "A's requests sent before governedFrom to be answered",
      () => aFlood.unansweredSentBefore(governedFrom) === 0,
    );
    const refusedBefore = aFlood.count("429 too_many_concurrent_steps");
    await executorReport(stack, true);
    bAnswers.length = 0;

    // B steps while A keeps flooding, until a step of B fails (its SDK gave up retrying): the
    // governed case must get all four through, the ungoverned one has shown the harm by then.
    const bResults: Array<{ ok: boolean; stdout?: string; error?: string }> = [];
    for (let i = 0; i <= 3; i++) {
      try {
        const r = await b.step(i === 0 ? "n = 0\nprint(n)" : "n += 1\nprint(n)");
        bResults.push({ ok: true, stdout: r.observation.stdout.trim() });
      } catch (err) {
        bResults.push({ ok: false, error: String((err as { code?: string }).code ?? err) });
        break;
      }
    }
    const report = await executorReport(stack);
    return {
      bResults,
      bAnswers: [...bAnswers],
      report,
      aRefusedAtCap: aFlood.count("429 too_many_concurrent_steps") - refusedBefore,
      aOk: aFlood.seen.ok,
    };
  } finally {
    await aFlood.stop();
  }
}

describe("a flood across two API instances, executor reserved concurrency 4, governor on", () => {
  let ctx: ScenarioStack;
  beforeAll(async () => {
    ctx = await scenarioStack("on");
  });
  afterAll(async () => {
    ctx?.client.destroy();
    await ctx?.stack.stop();
  });

  it("B's SDK steps all succeed, never throttled; A never holds more than its cap of the executor", async () => {
    const out = await scenario(ctx);
    expect(out.bResults).toEqual([
      { ok: true, stdout: "0" },
      { ok: true, stdout: "1" },
      { ok: true, stdout: "2" },
      { ok: true, stdout: "3" },
    ]);
    expect(out.bAnswers.filter((a) => a === "429 executor_throttled")).toEqual([]);
    // At the executor, once governed: A at most its cap, and it kept running (not starved).
    expect(out.report.peak.flooder ?? 0).toBeLessThanOrEqual(CAP);
    expect(out.report.peak.flooder ?? 0).toBeGreaterThan(0);
    expect(out.report.peak.bystander).toBe(1);
    expect(out.report.throttled.bystander ?? 0).toBe(0);
    // A's excess was refused by the governor, as the per-process cap refuses (429, Retry-After).
    expect(out.aRefusedAtCap).toBeGreaterThan(0);
    expect(out.aOk).toBeGreaterThan(0);
  }, 180_000);
});

describe("the same flood with the governor off (what it protects against)", () => {
  let ctx: ScenarioStack;
  beforeAll(async () => {
    ctx = await scenarioStack("off");
  });
  afterAll(async () => {
    ctx?.client.destroy();
    await ctx?.stack.stop();
  });

  it("leaves B throttled and A holding more than its cap", async () => {
    const out = await scenario(ctx);
    expect(out.bAnswers.filter((a) => a === "429 executor_throttled").length).toBeGreaterThan(0);
    expect(out.bResults.some((r) => !r.ok)).toBe(true);
    expect(out.report.peak.flooder ?? 0).toBeGreaterThan(CAP);
    expect(out.aRefusedAtCap).toBe(0);
  }, 180_000);
});
