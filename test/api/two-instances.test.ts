// Exactly once on two API instances (issue 11): a local stack with two API processes behind its
// one port, requests alternating between them as between Lambda instances, one table and one
// executor. Every execution is metered (rolled up from the table's change feed), so "each cell
// ran once" is checked from the usage: executions == committed steps.
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient, QueryCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalStack, startLocalStack } from "../../functions/src/local/stack.js";
import { CLAIM_SK, episodePk } from "../../functions/src/store/layout.js";
import { call, Episode, errorCode } from "../helpers/api.js";
import { settledUsage, usageAtLeast } from "../helpers/usage.js";

let stack: LocalStack;
let baseUrl: string;

beforeAll(async () => {
  stack = await startLocalStack({ port: 0, dataDir: null, apiInstances: 2, streamIntervalMs: 100 });
  baseUrl = stack.baseUrl;
});
afterAll(async () => {
  await stack?.stop();
});

describe("two API instances", () => {
  it("steps alternating between instances run each cell once, on the latest state, with or without request_id", async () => {
    // Prepare
    const before = await usageAtLeast(baseUrl, 0);
    const ep = await Episode.reset(baseUrl);
    // Act: 10 steps, every other one on the other instance (the proxy alternates per request)
    for (let i = 0; i < 10; i++)
      await ep.run(i === 0 ? "n = 1" : "n += 1", i % 3 === 0 ? { request_id: `r${i}` } : {});
    const final = await ep.run("n");
    // Assess: the state saw every step once; no execution ran that did not commit
    expect(final.observation.stdout).toBe("10");
    expect(final.step_count).toBe(11);
    // Counted, then settled: an execution metered after the eleventh step would still be seen.
    await usageAtLeast(baseUrl, before.steps + 11);
    const after = await settledUsage(baseUrl);
    expect(after.steps - before.steps).toBe(11);
    expect(after.executions - before.executions).toBe(11);
  });

  it("a retry of a request_id replays on either instance; concurrent duplicates commit once", async () => {
    const ep = await Episode.reset(baseUrl);
    await ep.run("n = 0");
    const first = await ep.step("n += 1\nn", { request_id: "once" });
    const retries = await Promise.all([1, 2, 3].map(() => ep.step("n += 1\nn", { request_id: "once" })));
    for (const r of retries) {
      expect(r.status).toBe(200);
      expect(r.headers.get("idempotent-replayed")).toBe("true");
      expect(r.body).toEqual(first.body);
    }
    const before = await settledUsage(baseUrl);
    // The twin on the other instance is told the first attempt runs and sends it again (as the SDKs do).
    const [a, b] = await Promise.all([
      ep.stepAwaitingFirstAttempt("import time\ntime.sleep(0.3)\nn += 1\nn", { request_id: "dup" }),
      ep.stepAwaitingFirstAttempt("import time\ntime.sleep(0.3)\nn += 1\nn", { request_id: "dup" }),
    ]);
    expect([a?.status, b?.status]).toEqual([200, 200]);
    expect(a?.body).toEqual(b?.body);
    expect((await ep.run("n")).observation.stdout).toBe("2");
    // The cell ran once: every execution (committed or not) is metered, and only two committed.
    await usageAtLeast(baseUrl, before.steps + 2);
    const after = await settledUsage(baseUrl);
    expect(after.steps - before.steps).toBe(2);
    expect(after.executions - before.executions).toBe(2);
  });

  it("parallel steps on one episode: each commits or gets 409 (step_in_progress or conflict); none is lost", async () => {
    const ep = await Episode.reset(baseUrl);
    await ep.run("hits = []");
    const replies = await Promise.all(Array.from({ length: 8 }, (_, i) => ep.step(`hits.append(${i})`)));
    const ok = replies.filter((r) => r.status === 200);
    expect(ok.length).toBeGreaterThanOrEqual(1);
    for (const r of replies.filter((x) => x.status !== 200)) {
      expect(r.status).toBe(409);
      expect(["step_in_progress", "conflict"]).toContain(errorCode(r));
    }
    const hits = await ep.run("sorted(hits)");
    expect(JSON.parse(hits.observation.stdout)).toHaveLength(ok.length);
    expect(hits.step_count).toBe(2 + ok.length);
    const h = await call<{ steps: unknown[] }>(baseUrl, "GET", `/episodes/${ep.id}/history`);
    expect(h.body.steps).toHaveLength(2 + ok.length);
  });
});

describe("history lives as long as its episode", () => {
  it("is kept while the episode lives; when TTL removes its head, the roll-up removes the rest", async () => {
    // Prepare: an episode with a 60 s ttl and three steps
    const ep = await Episode.reset(baseUrl, { ttl_s: 60 });
    for (let i = 0; i < 3; i++) await ep.run(`x = ${i}`);
    const doc = DynamoDBDocumentClient.from(
      new DynamoDBClient({
        endpoint: stack.dynamodbEndpoint,
        region: "us-east-1",
        credentials: stack.credentials,
      }),
    );
    const items = async () =>
      (
        await doc.send(
          new QueryCommand({
            TableName: stack.tableName,
            KeyConditionExpression: "pk = :pk",
            ExpressionAttributeValues: { ":pk": episodePk("local", ep.id) },
            ConsistentRead: true,
          }),
        )
      ).Items ?? [];
    try {
      // A sweep now removes nothing: no step record has a TTL of its own (the last step's claim
      // lives until its deadline).
      await stack.sweepExpired();
      expect((await items()).filter((i) => i.sk !== CLAIM_SK).length).toBe(4);
      expect((await call(baseUrl, "GET", `/episodes/${ep.id}/history`)).status).toBe(200);
      // Act: the TTL sweep as it would run an hour later (DynamoDB's TTL in AWS)
      await stack.sweepExpired(Date.now() + 3_600_000);
      // Assess: the head went at once; the roll-up (every 100 ms here) removes the versions
      let left = await items();
      for (let i = 0; i < 100 && left.length > 0; i++) {
        await new Promise((r) => setTimeout(r, 100));
        left = await items();
      }
      expect(left).toEqual([]);
    } finally {
      doc.destroy();
    }
  });
});
