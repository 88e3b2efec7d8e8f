// One step at a time per episode and exactly once, as in AWS: two API instances behind the stack's
// one port (requests alternate between them, as between API Lambda instances, each serving one
// request at a time) and the executor in Lambda mode (a concurrent invocation goes to another
// execution environment, so the executor's own `busy` never sees the overlap). Only the step claim
// in DynamoDB stands between two steps of one episode here. Every execution is metered (rolled up
// from the table's change feed), so "nothing else ran" is checked from the usage: executions ==
// committed steps.
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient, GetCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalStack, startLocalStack } from "../../functions/src/local/stack.js";
import { DynamoDbEpisodeRepository } from "../../functions/src/store/dynamodb-episode-repository.js";
import { CLAIM_SK, episodePk } from "../../functions/src/store/layout.js";
import { CodingEnv } from "../../sdk/src/index.js";
import { Episode, errorCode } from "../helpers/api.js";
import { settledUsage, usageAtLeast } from "../helpers/usage.js";

/** The local stack's tenant with auth off. */
const TENANT = "local";
const isRoot = typeof process.getuid === "function" && process.getuid() === 0;

describe.skipIf(!isRoot)("one step at a time per episode, two API instances, executor in Lambda mode", () => {
  let stack: LocalStack;
  let base: string;
  let doc: DynamoDBDocumentClient;

  beforeAll(async () => {
    stack = await startLocalStack({
      port: 0,
      dataDir: null,
      executorMode: "lambda",
      apiInstances: 2,
      streamIntervalMs: 100,
    });
    base = stack.baseUrl;
    doc = DynamoDBDocumentClient.from(
      new DynamoDBClient({
        endpoint: stack.dynamodbEndpoint,
        region: "us-east-1",
        credentials: stack.credentials,
      }),
    );
  });

  afterAll(async () => {
    doc?.destroy();
    await stack?.stop();
  });

  /** Waits until a step that read `version` holds the episode's claim (it is about to run or running). */
  async function claimTaken(episodeId: string, version: number): Promise<void> {
    for (let i = 0; i < 300; i++) {
      const out = await doc.send(
        new GetCommand({
          TableName: stack.tableName,
          Key: { pk: episodePk(TENANT, episodeId), sk: CLAIM_SK },
          ConsistentRead: true,
        }),
      );
      if (out.Item?.base_version === version) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`no claim on version ${version} of ${episodeId}`);
  }

  it("two different concurrent steps: one runs, the other is 409 before the executor and leaves no trace", async () => {
    // Prepare
    const ep = await Episode.reset(base, { policy: "full" });
    await ep.run("marks = []");
    const before = await settledUsage(base);
    // Act: A holds the episode in the executor; B goes to the other API instance meanwhile
    const slow = ep.step("import time\ntime.sleep(3)\nmarks.append('A')\nprint('A ran')");
    await claimTaken(ep.id, 1);
    const second = await ep.step("marks.append('B')\nprint('B ran')");
    const first = await slow;
    const final = await ep.run("print(marks)");
    // Assert: B never ran anywhere: not in the state, and no execution of it was metered
    expect(second.status).toBe(409);
    expect(errorCode(second)).toBe("step_in_progress");
    expect(second.headers.get("retry-after")).not.toBeNull();
    expect(first.status).toBe(200);
    expect(first.body.observation.stdout).toBe("A ran\n");
    expect(final.observation.stdout).toBe("['A']\n");
    await usageAtLeast(base, before.steps + 2);
    const after = await settledUsage(base);
    expect(after.steps - before.steps).toBe(2);
    expect(after.executions - before.executions).toBe(2);
  });

  it("two concurrent attempts of one request_id: the cell runs once and both callers get its result (SDK retry)", async () => {
    // Prepare: the twin goes through the TypeScript SDK, whose answers are recorded
    const ep = await Episode.reset(base, { policy: "full" });
    await ep.run("n = 0");
    const statuses: number[] = [];
    const sdk = new CodingEnv({
      baseUrl: base,
      episodeId: ep.id,
      fetch: async (url, init) => {
        const res = await fetch(url, init);
        statuses.push(res.status);
        return res;
      },
    });
    const code = "import time\ntime.sleep(3)\nn += 1\nprint(n)";
    const before = await settledUsage(base);
    try {
      // Act: the first attempt runs on one instance; its retry reaches the other one meanwhile
      const firstAttempt = ep.step(code, { request_id: "twin-1" });
      await claimTaken(ep.id, 1);
      const retried = await sdk.step(code, { requestId: "twin-1" });
      const first = await firstAttempt;
      // Assert: the retry was told the first attempt runs (409), waited, and got its result
      expect(first.status).toBe(200);
      expect(statuses[0]).toBe(409);
      expect(statuses.at(-1)).toBe(200);
      expect(retried.observation).toEqual(first.body.observation);
      expect(retried.step_count).toBe(first.body.step_count);
      expect((await ep.run("print(n)")).observation.stdout).toBe("1\n");
      await usageAtLeast(base, before.steps + 2);
      const after = await settledUsage(base);
      expect(after.steps - before.steps).toBe(2);
      expect(after.executions - before.executions).toBe(2);
    } finally {
      await sdk.close();
    }
  });

  it("a live claim refuses the next step; a claim left by a crashed attempt does not block it", async () => {
    // Prepare: claims written straight through the repository, as an API instance that died mid-step left them
    const ep = await Episode.reset(base, { policy: "full" });
    await ep.run("x = 1");
    const repo = new DynamoDbEpisodeRepository({ doc, tableName: stack.tableName, maxStateBytes: 1 << 20 });
    const loaded = await repo.load(TENANT, ep.id, { nowMs: Date.now() });
    if (!loaded) throw new Error("no episode");
    const now = Date.now();
    const live = await repo.claimStep({ episode: loaded.episode, nowMs: now, untilMs: now + 120_000 });
    if (live.kind !== "claimed") throw new Error("not claimed");
    // Act and assert: refused while the claim is live
    const refused = await ep.step("x += 1");
    expect(refused.status).toBe(409);
    expect(errorCode(refused)).toBe("step_in_progress");
    // A crashed attempt's claim: its deadline has passed
    await repo.releaseStep(loaded.episode, live.claim);
    const crashed = await repo.claimStep({ episode: loaded.episode, nowMs: now, untilMs: Date.now() - 1 });
    expect(crashed.kind).toBe("claimed");
    const next = await ep.run("x += 1\nprint(x)");
    expect(next.observation.stdout).toBe("2\n");
    expect(next.step_count).toBe(2);
  });
});
