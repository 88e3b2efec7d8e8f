// The usage roll-up Lambda exactly as deployed (the esbuild bundle staged by `cdk synth`), invoked
// with DynamoDB stream events whose records the local DynamoDB emitted for real writes (the same
// shape Lambda delivers), against that DynamoDB: steps of one tenant become one usage item per
// day, and a TTL removal of an episode head deletes the episode's history.
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import {
  DeleteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
} from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type ChangeRecord,
  type DynaliteHandle,
  startDynalite,
} from "../../functions/src/local/dynalite-server.js";
import { ensureTable } from "../../functions/src/local/stack.js";
import { episodePk, usageKey, versionSk } from "../../functions/src/store/layout.js";
import { type BundleProcess, stagedBundle, startBundle } from "./bundle.js";
import { bundledApp, removeSynthOutputs } from "./synth.js";

afterAll(removeSynthOutputs);

const ACCESS_KEY_ID = "0123456789abcdef0123456789abcdef";
const TABLE = "coding-env-aggregator-test";

describe("usage roll-up Lambda bundle (esbuild, as deployed) on DynamoDB stream events", () => {
  // One container for both tests' invocations (the bundle loads once).
  let lambda: BundleProcess;
  let ddb: DynaliteHandle;
  let doc: DynamoDBDocumentClient;
  let records: ChangeRecord[] = [];

  beforeAll(async () => {
    const bundle = stagedBundle(await bundledApp(), "coding-env-usage");
    ddb = await startDynalite({ path: null, accessKeyId: ACCESS_KEY_ID });
    lambda = startBundle(bundle, {
      CODING_ENV_TABLE: TABLE,
      CODING_ENV_DYNAMODB_ENDPOINT: ddb.endpoint,
      AWS_ACCESS_KEY_ID: ACCESS_KEY_ID,
    });
    const client = new DynamoDBClient({
      endpoint: ddb.endpoint,
      region: "us-east-1",
      credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: "local" },
    });
    await ensureTable(client, TABLE);
    doc = DynamoDBDocumentClient.from(client);
    ddb.onChange((batch) => records.push(...batch));
  }, 180_000);

  afterAll(async () => {
    lambda?.stop();
    doc?.destroy();
    await ddb?.stop();
  });

  /** The stream records of what `write` did, as the event Lambda would receive. */
  async function streamEventOf(write: () => Promise<void>): Promise<{ Records: ChangeRecord[] }> {
    records = [];
    await write();
    return { Records: records.splice(0) };
  }

  const invoke = (events: object[]) => lambda.invoke(events);

  it("rolls a batch of step records of one tenant up into that tenant's usage item for the day, with GB-seconds at the template's executor memory", async () => {
    const pk = episodePk("acme", "ep-1");
    const event = await streamEventOf(async () => {
      for (const [version, ms] of [
        [1, 120],
        [2, 30],
        [3, 850],
      ] as const) {
        await doc.send(
          new PutCommand({
            TableName: TABLE,
            Item: {
              pk,
              sk: versionSk("0190abc", version),
              tenant: "acme",
              day: "2026-12-01",
              executor_ms: ms,
            },
          }),
        );
      }
    });
    expect(event.Records.map((r) => r.eventName)).toEqual(["INSERT", "INSERT", "INSERT"]);

    const { results } = await invoke([event]);
    expect(results).toEqual([null]);

    const usage = await doc.send(new GetCommand({ TableName: TABLE, Key: usageKey("acme", "2026-12-01") }));
    expect(usage.Item).toMatchObject({ steps: 3, executions: 3, executor_ms: 1000, tenant_id: "acme" });
    // 1 s at 1024 MB (the template's CODING_ENV_EXECUTOR_MEMORY_MB) is 1 GB-second.
    expect(Number(usage.Item?.gb_seconds)).toBeCloseTo(1, 6);
  }, 120_000);

  it("deletes an episode's history when DynamoDB's TTL removes its head (a removal by the service)", async () => {
    const pk = episodePk("acme", "ep-expired");
    await doc.send(new PutCommand({ TableName: TABLE, Item: { pk, sk: "META", incarnation: "0190abc" } }));
    for (const version of [1, 2]) {
      await doc.send(new PutCommand({ TableName: TABLE, Item: { pk, sk: versionSk("0190abc", version) } }));
    }
    const removal = await streamEventOf(async () => {
      await doc.send(new DeleteCommand({ TableName: TABLE, Key: { pk, sk: "META" } }));
    });
    // What DynamoDB's TTL deletion carries, unlike a client's delete.
    const ttlRemoval = {
      Records: removal.Records.map((r) => ({
        ...r,
        userIdentity: { type: "Service", principalId: "dynamodb.amazonaws.com" },
      })),
    };

    await invoke([ttlRemoval]);

    const left = await doc.send(
      new QueryCommand({
        TableName: TABLE,
        KeyConditionExpression: "pk = :pk",
        ExpressionAttributeValues: { ":pk": pk },
      }),
    );
    expect(left.Items).toEqual([]);
  }, 120_000);
});
