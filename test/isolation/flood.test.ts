// Fair sharing under a flood (issue 10 point 7), end to end: a local stack with keys on, tenant A
// sends 180 concurrent steps (to one episode and to many) while tenant B steps; every one
// of B's steps succeeds, A's excess is refused with 409/429 (never a 5xx), and the API process's
// per-tenant cap is what refused it. Speed under the flood is measured by bench/api/fairness.ts.
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalStack, startLocalStack } from "../../functions/src/local/stack.js";
import { dynamoDbApiKeyStore } from "../../functions/src/store/dynamodb-api-keys.js";
import { clientFor } from "../tenancy/helpers/dynalite-table.js";

let stack: LocalStack;
let client: DynamoDBClient;
let keyA: string;
let keyB: string;

beforeAll(async () => {
  stack = await startLocalStack({
    port: 0,
    dataDir: null,
    auth: true,
    env: {
      CODING_ENV_TENANT_MAX_RUNNING_STEPS: "2",
      CODING_ENV_TENANT_MAX_WAITING_STEPS: "4",
      // The tenancy quota on concurrent steps would refuse the flood first: lift it, so that the
      // API's own fair-share cap is what is tested.
      CODING_ENV_QUOTA_CONCURRENT_STEPS: "100000",
      CODING_ENV_QUOTA_STEPS_PER_DAY: "1000000",
      CODING_ENV_QUOTA_ACTIVE_EPISODES: "1000",
    },
  });
  client = clientFor(stack.dynamodbEndpoint, stack.credentials);
  const keys = dynamoDbApiKeyStore({ client, tableName: stack.tableName });
  keyA = (await keys.create({ tenantId: "flooder" })).key;
  keyB = (await keys.create({ tenantId: "bystander" })).key;
});
afterAll(async () => {
  client?.destroy();
  await stack?.stop();
});

interface Answer {
  status: number;
  code: string | undefined;
  retryAfter: string | null;
  body: Record<string, unknown>;
}

async function post(key: string, path: string, body: unknown): Promise<Answer> {
  const res = await fetch(`${stack.baseUrl}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const parsed = (await res.json()) as Record<string, unknown>;
  return {
    status: res.status,
    code: (parsed.error as { code?: string } | undefined)?.code,
    retryAfter: res.headers.get("retry-after"),
    body: parsed,
  };
}

async function reset(key: string): Promise<string> {
  const r = await post(key, "/reset", {});
  if (r.status !== 200) throw new Error(`reset failed: ${r.status} ${JSON.stringify(r.body)}`);
  return String(r.body.episode_id);
}

describe("a flood from one tenant", () => {
  it("leaves another tenant's steps all succeeding; the flood's excess is refused 409/429, never 5xx", async () => {
    // Prepare: A's episodes (one hammered, 20 spread: three times what A may run or queue at once), B's
    const hammered = await reset(keyA);
    const spread: string[] = [];
    for (let i = 0; i < 20; i++) spread.push(await reset(keyA));
    const bystander = await reset(keyB);
    await post(keyB, "/step", { action: { code: "n = 0" }, episode_id: bystander });
    // Each of A's steps holds its slot long enough that the first steps of the 20 episodes overlap.
    const code = "import time\ntime.sleep(0.5)\nprint(1)";

    // Act: 100 concurrent steps to one episode and 80 over 20 episodes, while B steps 10 times
    const flood = Promise.all([
      ...Array.from({ length: 100 }, () => post(keyA, "/step", { action: { code }, episode_id: hammered })),
      ...Array.from({ length: 80 }, (_, i) =>
        post(keyA, "/step", { action: { code }, episode_id: spread[i % spread.length] }),
      ),
    ]);
    const bystanderSteps: Answer[] = [];
    for (let i = 0; i < 10; i++) {
      bystanderSteps.push(
        await post(keyB, "/step", { action: { code: "n += 1\nn" }, episode_id: bystander }),
      );
    }
    const flooded = await flood;

    // Assess
    expect(bystanderSteps.map((s) => s.status)).toEqual(Array(10).fill(200));
    expect((bystanderSteps[9]?.body.observation as { stdout?: string } | undefined)?.stdout).toBe("10");
    const statuses = new Set(flooded.map((a) => a.status));
    for (const s of statuses) expect([200, 409, 429]).toContain(s);
    expect(flooded.filter((a) => a.status === 200).length).toBeGreaterThan(0);
    // One step at a time per episode (409 step_in_progress), and beyond 2 admitted + 4 waiting
    // steps of the tenant in this process, 429 too_many_concurrent_steps.
    const capped = flooded.filter((a) => a.status === 429);
    expect(capped.length).toBeGreaterThan(0);
    for (const a of capped) {
      expect(a.code).toBe("too_many_concurrent_steps");
      expect(Number(a.retryAfter)).toBeGreaterThanOrEqual(1);
    }
    // Retry-After is whole seconds, spread per tenant when it is refused often (refusal-pacer.ts)
    for (const a of flooded.filter((x) => x.status === 409))
      expect(Number(a.retryAfter)).toBeGreaterThanOrEqual(1);
  }, 120_000);
});
