// The local DynamoDB (dynalite behind our front) behaves like DynamoDB wherever our code depends on
// it. Each test names the DynamoDB behaviour it checks (Developer Guide: "Transactions: how it
// works", "Constraints", BatchGetItem / Query / DeleteItem API references, "Time to Live"), and goes
// through the real AWS SDK client, signed with the front's start-up access key id.
import {
  BatchGetItemCommand,
  BatchWriteItemCommand,
  ConditionalCheckFailedException,
  CreateTableCommand,
  DescribeTimeToLiveCommand,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  TransactGetItemsCommand,
  TransactionCanceledException,
  TransactWriteItemsCommand,
  type TransactWriteItemsCommandInput,
  UpdateItemCommand,
  UpdateTimeToLiveCommand,
} from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type ChangeRecord,
  type DynaliteHandle,
  startDynalite,
} from "../../functions/src/local/dynalite-server.js";

const KEY_ID = "0123456789abcdef0123456789abcdef";
const TABLE = "parity";

let ddb: DynaliteHandle;
let client: DynamoDBClient;
let records: ChangeRecord[] = [];
/** Set by a test to hold transactions once they hold their items. */
let pause: Promise<void> | null = null;
let paused: () => void = () => {};

const s = (v: string) => ({ S: v });
const n = (v: number) => ({ N: String(v) });
const key = (pk: string, sk = "A") => ({ pk: s(pk), sk: s(sk) });

function clientWith(accessKeyId: string): DynamoDBClient {
  return new DynamoDBClient({
    endpoint: ddb.endpoint,
    region: "local",
    credentials: { accessKeyId, secretAccessKey: "secret" },
    maxAttempts: 1,
  });
}

async function caught<T>(p: Promise<T>): Promise<Error & Record<string, unknown>> {
  try {
    await p;
  } catch (err) {
    return err as Error & Record<string, unknown>;
  }
  throw new Error("expected a failure");
}

beforeAll(async () => {
  ddb = await startDynalite({
    path: null,
    accessKeyId: KEY_ID,
    batchGetMaxBytes: 10 * 1024,
    onTransactionPending: async () => {
      if (pause) {
        paused();
        await pause;
      }
    },
  });
  ddb.onChange((batch) => records.push(...batch));
  client = clientWith(KEY_ID);
  await client.send(
    new CreateTableCommand({
      TableName: TABLE,
      AttributeDefinitions: [
        { AttributeName: "pk", AttributeType: "S" },
        { AttributeName: "sk", AttributeType: "S" },
      ],
      KeySchema: [
        { AttributeName: "pk", KeyType: "HASH" },
        { AttributeName: "sk", KeyType: "RANGE" },
      ],
      BillingMode: "PAY_PER_REQUEST",
    }),
  );
});

afterAll(async () => {
  client.destroy();
  await ddb.stop();
});

describe("start-up secret", () => {
  it("refuses a request signed with another access key id (403 UnrecognizedClientException)", async () => {
    const stranger = clientWith("local");
    const err = await caught(stranger.send(new GetItemCommand({ TableName: TABLE, Key: key("x") })));
    expect(err.name).toBe("UnrecognizedClientException");
    expect((err.$metadata as { httpStatusCode: number }).httpStatusCode).toBe(403);
    stranger.destroy();
    const unsigned = await fetch(ddb.endpoint, {
      method: "POST",
      headers: {
        "x-amz-target": "DynamoDB_20120810.ListTables",
        "content-type": "application/x-amz-json-1.0",
      },
      body: "{}",
    });
    expect(unsigned.status).toBe(403);
  });
});

describe("conditions", () => {
  it("a failed condition is ConditionalCheckFailedException, with the item only when ReturnValuesOnConditionCheckFailure is ALL_OLD", async () => {
    await client.send(new PutItemCommand({ TableName: TABLE, Item: { ...key("cond"), v: n(1) } }));
    const put = (extra: Record<string, unknown>) =>
      client.send(
        new PutItemCommand({
          TableName: TABLE,
          Item: { ...key("cond"), v: n(2) },
          ConditionExpression: "attribute_not_exists(pk)",
          ...extra,
        }),
      );
    const plain = await caught(put({}));
    expect(plain).toBeInstanceOf(ConditionalCheckFailedException);
    expect(plain.Item).toBeUndefined();
    const withItem = await caught(put({ ReturnValuesOnConditionCheckFailure: "ALL_OLD" }));
    expect(withItem).toBeInstanceOf(ConditionalCheckFailedException);
    expect(withItem.Item).toEqual({ ...key("cond"), v: n(1) });
    const update = await caught(
      client.send(
        new UpdateItemCommand({
          TableName: TABLE,
          Key: key("cond"),
          UpdateExpression: "SET v = :v",
          ConditionExpression: "v = :expected",
          ExpressionAttributeValues: { ":v": n(3), ":expected": n(7) },
          ReturnValuesOnConditionCheckFailure: "ALL_OLD",
        }),
      ),
    );
    expect(update.Item).toEqual({ ...key("cond"), v: n(1) });
  });
});

describe("item size (400 KB, names and values in UTF-8 bytes)", () => {
  it("accepts an item of exactly 400 KB and refuses one byte more with ValidationException", async () => {
    // Item = "pk"+"sz" + "sk"+"A" + "big" + value: 2+2 + 2+1 + 3 = 10 bytes besides the value.
    const exact = { ...key("sz"), big: s("x".repeat(400 * 1024 - 10)) };
    await client.send(new PutItemCommand({ TableName: TABLE, Item: exact }));
    const over = { ...key("sz"), big: s("x".repeat(400 * 1024 - 9)) };
    const err = await caught(client.send(new PutItemCommand({ TableName: TABLE, Item: over })));
    expect(err.name).toBe("ValidationException");
    expect(err.message).toMatch(/Item size has exceeded the maximum allowed size/);
  });

  it("counts non-ASCII text in UTF-8 bytes: 210,000 'é' are 420,000 bytes and refused", async () => {
    const err = await caught(
      client.send(
        new PutItemCommand({ TableName: TABLE, Item: { ...key("utf8"), t: s("é".repeat(210_000)) } }),
      ),
    );
    expect(err.name).toBe("ValidationException");
    const got = await client.send(new GetItemCommand({ TableName: TABLE, Key: key("utf8") }));
    expect(got.Item).toBeUndefined();
  });

  it("refuses an update that would make the item larger than 400 KB, and keeps the item", async () => {
    await client.send(
      new PutItemCommand({ TableName: TABLE, Item: { ...key("grow"), a: s("x".repeat(300_000)) } }),
    );
    const err = await caught(
      client.send(
        new UpdateItemCommand({
          TableName: TABLE,
          Key: key("grow"),
          UpdateExpression: "SET b = :b",
          ExpressionAttributeValues: { ":b": s("y".repeat(200_000)) },
        }),
      ),
    );
    expect(err.name).toBe("ValidationException");
    expect(err.message).toMatch(/Item size to update has exceeded the maximum allowed size/);
    const got = await client.send(
      new GetItemCommand({ TableName: TABLE, Key: key("grow"), ConsistentRead: true }),
    );
    expect(got.Item?.b).toBeUndefined();
  });
});

describe("TransactWriteItems limits", () => {
  it("refuses more than 100 actions with ValidationException", async () => {
    const items = Array.from({ length: 101 }, (_, i) => ({
      Put: { TableName: TABLE, Item: key("many", String(i)) },
    }));
    const err = await caught(client.send(new TransactWriteItemsCommand({ TransactItems: items })));
    expect(err.name).toBe("ValidationException");
    const ok = items.slice(0, 100);
    await client.send(new TransactWriteItemsCommand({ TransactItems: ok }));
  });

  it("refuses two actions on one item with ValidationException", async () => {
    const err = await caught(
      client.send(
        new TransactWriteItemsCommand({
          TransactItems: [
            { Put: { TableName: TABLE, Item: key("twice") } },
            {
              ConditionCheck: {
                TableName: TABLE,
                Key: key("twice"),
                ConditionExpression: "attribute_not_exists(pk)",
              },
            },
          ],
        }),
      ),
    );
    expect(err.name).toBe("ValidationException");
    expect(err.message).toMatch(/multiple operations on one item/);
  });

  it("refuses a transaction larger than 4 MB with ValidationException", async () => {
    const items = Array.from({ length: 11 }, (_, i) => ({
      Put: { TableName: TABLE, Item: { ...key("huge", String(i)), v: s("z".repeat(390_000)) } },
    }));
    const err = await caught(client.send(new TransactWriteItemsCommand({ TransactItems: items })));
    expect(err.name).toBe("ValidationException");
  });

  it("cancels the whole transaction when one condition fails, with one reason per action (and the item with ALL_OLD)", async () => {
    await client.send(new PutItemCommand({ TableName: TABLE, Item: { ...key("tx"), v: n(1) } }));
    const err = await caught(
      client.send(
        new TransactWriteItemsCommand({
          TransactItems: [
            { Put: { TableName: TABLE, Item: { ...key("tx-other"), v: n(1) } } },
            {
              Update: {
                TableName: TABLE,
                Key: key("tx"),
                UpdateExpression: "SET v = :two",
                ConditionExpression: "v = :zero",
                ExpressionAttributeValues: { ":two": n(2), ":zero": n(0) },
                ReturnValuesOnConditionCheckFailure: "ALL_OLD",
              },
            },
          ],
        }),
      ),
    );
    expect(err).toBeInstanceOf(TransactionCanceledException);
    const reasons = (err as unknown as TransactionCanceledException).CancellationReasons ?? [];
    expect(reasons.map((r) => r.Code)).toEqual(["None", "ConditionalCheckFailed"]);
    expect(reasons[1]?.Item).toEqual({ ...key("tx"), v: n(1) });
    const other = await client.send(
      new GetItemCommand({ TableName: TABLE, Key: key("tx-other"), ConsistentRead: true }),
    );
    expect(other.Item).toBeUndefined();
  });
});

describe("transaction conflicts (DynamoDB's 'Transaction conflict handling')", () => {
  async function holdTransaction(items: TransactWriteItemsCommandInput["TransactItems"]) {
    let resume: () => void = () => {};
    pause = new Promise<void>((r) => {
      resume = r;
    });
    const holding = new Promise<void>((r) => {
      paused = r;
    });
    const first = client.send(new TransactWriteItemsCommand({ TransactItems: items }));
    await holding;
    pause = null;
    return { first, resume };
  }

  it("cancels a transaction on an item another ongoing transaction holds, with reason TransactionConflict", async () => {
    await client.send(new PutItemCommand({ TableName: TABLE, Item: { ...key("hot"), v: n(0) } }));
    const set = (v: number) => ({
      Update: {
        TableName: TABLE,
        Key: key("hot"),
        UpdateExpression: "SET v = :v",
        ExpressionAttributeValues: { ":v": n(v) },
      },
    });
    const { first, resume } = await holdTransaction([set(1)]);
    // Act: a second transaction on the held item, and one on another item
    const err = await caught(
      client.send(
        new TransactWriteItemsCommand({
          TransactItems: [{ Put: { TableName: TABLE, Item: key("cold") } }, set(2)],
        }),
      ),
    );
    await client.send(
      new TransactWriteItemsCommand({
        TransactItems: [{ Put: { TableName: TABLE, Item: key("elsewhere") } }],
      }),
    );
    // Assess: cancelled (not queued), its other action not applied; the first one commits
    expect(err).toBeInstanceOf(TransactionCanceledException);
    const reasons = (err as unknown as TransactionCanceledException).CancellationReasons ?? [];
    expect(reasons.map((r) => r.Code)).toEqual(["None", "TransactionConflict"]);
    resume();
    await first;
    const got = await client.send(
      new GetItemCommand({ TableName: TABLE, Key: key("hot"), ConsistentRead: true }),
    );
    expect(got.Item?.v).toEqual(n(1));
    const cold = await client.send(
      new GetItemCommand({ TableName: TABLE, Key: key("cold"), ConsistentRead: true }),
    );
    expect(cold.Item).toBeUndefined();
  });

  it("fails a PutItem/UpdateItem/DeleteItem on a held item with TransactionConflictException; reads see the committed state", async () => {
    await client.send(new PutItemCommand({ TableName: TABLE, Item: { ...key("held"), v: n(0) } }));
    const { first, resume } = await holdTransaction([
      { Put: { TableName: TABLE, Item: { ...key("held"), v: n(1) } } },
    ]);
    const put = await caught(
      client.send(new PutItemCommand({ TableName: TABLE, Item: { ...key("held"), v: n(9) } })),
    );
    expect(put.name).toBe("TransactionConflictException");
    const update = await caught(
      client.send(
        new UpdateItemCommand({
          TableName: TABLE,
          Key: key("held"),
          UpdateExpression: "SET w = :w",
          ExpressionAttributeValues: { ":w": n(1) },
        }),
      ),
    );
    expect(update.name).toBe("TransactionConflictException");
    const read = await client.send(
      new GetItemCommand({ TableName: TABLE, Key: key("held"), ConsistentRead: true }),
    );
    expect(read.Item?.v).toEqual(n(0));
    // TransactGetItems on a held item is cancelled too; BatchWriteItem leaves it unprocessed.
    const tget = await caught(
      client.send(
        new TransactGetItemsCommand({ TransactItems: [{ Get: { TableName: TABLE, Key: key("held") } }] }),
      ),
    );
    expect(
      ((tget as unknown as TransactionCanceledException).CancellationReasons ?? []).map((r) => r.Code),
    ).toEqual(["TransactionConflict"]);
    const batch = await client.send(
      new BatchWriteItemCommand({
        RequestItems: {
          [TABLE]: [
            { PutRequest: { Item: { ...key("held"), v: n(5) } } },
            { PutRequest: { Item: key("free") } },
          ],
        },
      }),
    );
    expect(batch.UnprocessedItems?.[TABLE]).toEqual([{ PutRequest: { Item: { ...key("held"), v: n(5) } } }]);
    resume();
    await first;
    const after = await client.send(
      new GetItemCommand({ TableName: TABLE, Key: key("held"), ConsistentRead: true }),
    );
    expect(after.Item?.v).toEqual(n(1));
  });

  it("concurrent transactions on one counter: each commits or is cancelled with TransactionConflict, none is lost", async () => {
    await client.send(new PutItemCommand({ TableName: TABLE, Item: { ...key("counter"), v: n(0) } }));
    const outcomes = await Promise.allSettled(
      Array.from({ length: 24 }, (_, i) =>
        client.send(
          new TransactWriteItemsCommand({
            TransactItems: [
              { Put: { TableName: TABLE, Item: key("counter-log", String(i)) } },
              {
                Update: {
                  TableName: TABLE,
                  Key: key("counter"),
                  UpdateExpression: "ADD v :one",
                  ExpressionAttributeValues: { ":one": n(1) },
                },
              },
            ],
          }),
        ),
      ),
    );
    const committed = outcomes.filter((o) => o.status === "fulfilled").length;
    for (const o of outcomes) {
      if (o.status === "rejected") {
        const reasons = (o.reason as TransactionCanceledException).CancellationReasons ?? [];
        expect(reasons.map((r) => r.Code)).toEqual(["None", "TransactionConflict"]);
      }
    }
    const got = await client.send(
      new GetItemCommand({ TableName: TABLE, Key: key("counter"), ConsistentRead: true }),
    );
    expect(got.Item?.v).toEqual(n(committed));
    const logged = await client.send(
      new QueryCommand({
        TableName: TABLE,
        KeyConditionExpression: "pk = :pk",
        ExpressionAttributeValues: { ":pk": s("counter-log") },
        Select: "COUNT",
      }),
    );
    expect(logged.Count).toBe(committed);
  });
});

describe("BatchGetItem", () => {
  it("returns part of the items when the answer would exceed its size limit, the rest in UnprocessedKeys with the same projection", async () => {
    // This front is started with a 10 KB limit (DynamoDB's is 16 MB); 5 items of 4 KB exceed it.
    for (let i = 0; i < 5; i++) {
      await client.send(
        new PutItemCommand({
          TableName: TABLE,
          Item: { ...key("bg", String(i)), d: s("d".repeat(4096)), x: n(i) },
        }),
      );
    }
    let request: Record<
      string,
      { Keys: Record<string, unknown>[]; ProjectionExpression?: string; ConsistentRead?: boolean }
    > = {
      [TABLE]: {
        Keys: Array.from({ length: 5 }, (_, i) => key("bg", String(i))),
        ProjectionExpression: "sk, d",
        ConsistentRead: true,
      },
    };
    const first = await client.send(new BatchGetItemCommand({ RequestItems: request as never }));
    expect(first.Responses?.[TABLE]?.length).toBeGreaterThan(0);
    expect(first.Responses?.[TABLE]?.length).toBeLessThan(5);
    const rest = first.UnprocessedKeys?.[TABLE];
    expect(rest?.ProjectionExpression).toBe("sk, d");
    expect(rest?.ConsistentRead).toBe(true);
    const seen = [...(first.Responses?.[TABLE] ?? [])];
    for (let round = 0; round < 10 && request[TABLE]; round++) {
      const out =
        round === 0 ? first : await client.send(new BatchGetItemCommand({ RequestItems: request as never }));
      if (round > 0) seen.push(...(out.Responses?.[TABLE] ?? []));
      request = (out.UnprocessedKeys ?? {}) as typeof request;
    }
    expect(seen.map((it) => it.sk?.S).sort()).toEqual(["0", "1", "2", "3", "4"]);
    expect(seen.every((it) => it.x === undefined && it.d !== undefined)).toBe(true);
  });

  it("refuses more than 100 keys with ValidationException", async () => {
    const keys = Array.from({ length: 101 }, (_, i) => key("bg-many", String(i)));
    const err = await caught(
      client.send(new BatchGetItemCommand({ RequestItems: { [TABLE]: { Keys: keys } } })),
    );
    expect(err.name).toBe("ValidationException");
  });
});

describe("Query pagination", () => {
  it("stops at Limit with a LastEvaluatedKey; ExclusiveStartKey continues in sort-key order, forward and backward", async () => {
    for (let i = 0; i < 5; i++)
      await client.send(new PutItemCommand({ TableName: TABLE, Item: key("q", `s${i}`) }));
    for (const forward of [true, false]) {
      const seen: string[] = [];
      let start: Record<string, unknown> | undefined;
      let pages = 0;
      do {
        const page = await client.send(
          new QueryCommand({
            TableName: TABLE,
            KeyConditionExpression: "pk = :pk",
            ExpressionAttributeValues: { ":pk": s("q") },
            Limit: 2,
            ScanIndexForward: forward,
            ConsistentRead: true,
            ...(start ? { ExclusiveStartKey: start as never } : {}),
          }),
        );
        expect(page.Items?.length).toBeLessThanOrEqual(2);
        seen.push(...(page.Items ?? []).map((it) => String(it.sk?.S)));
        start = page.LastEvaluatedKey;
        pages++;
      } while (start);
      const expected = ["s0", "s1", "s2", "s3", "s4"];
      expect(seen).toEqual(forward ? expected : expected.reverse());
      expect(pages).toBe(3);
    }
  });
});

describe("consumed capacity (ReturnConsumedCapacity)", () => {
  it("bills a write per started KB of the larger of old and new item, and a transactional write twice", async () => {
    const item = { ...key("cap"), d: s("c".repeat(1500)) };
    const put = await client.send(
      new PutItemCommand({ TableName: TABLE, Item: item, ReturnConsumedCapacity: "TOTAL" }),
    );
    expect(put.ConsumedCapacity?.CapacityUnits).toBe(2);
    const small = await client.send(
      new UpdateItemCommand({
        TableName: TABLE,
        Key: key("cap"),
        UpdateExpression: "REMOVE d",
        ReturnConsumedCapacity: "TOTAL",
      }),
    );
    expect(small.ConsumedCapacity?.CapacityUnits).toBe(2);
    const tx = await client.send(
      new TransactWriteItemsCommand({
        TransactItems: [
          { Put: { TableName: TABLE, Item: key("cap-a") } },
          { Put: { TableName: TABLE, Item: key("cap-b") } },
        ],
        ReturnConsumedCapacity: "TOTAL",
      }),
    );
    expect(tx.ConsumedCapacity?.[0]?.CapacityUnits).toBe(4);
  });
});

describe("consumed capacity of reads", () => {
  it("bills a strongly consistent read per started 4 KB (a Query by the total size of the items it read), half when eventually consistent", async () => {
    for (const sk of ["a", "b"]) {
      await client.send(
        new PutItemCommand({ TableName: TABLE, Item: { ...key("rcu", sk), d: s("r".repeat(3000)) } }),
      );
    }
    const get = await client.send(
      new GetItemCommand({
        TableName: TABLE,
        Key: key("rcu", "a"),
        ConsistentRead: true,
        ReturnConsumedCapacity: "TOTAL",
      }),
    );
    expect(get.ConsumedCapacity?.CapacityUnits).toBe(1);
    const query = (consistent: boolean) =>
      client.send(
        new QueryCommand({
          TableName: TABLE,
          KeyConditionExpression: "pk = :pk",
          ExpressionAttributeValues: { ":pk": s("rcu") },
          ConsistentRead: consistent,
          ReturnConsumedCapacity: "TOTAL",
        }),
      );
    expect((await query(true)).ConsumedCapacity?.CapacityUnits).toBe(2);
    expect((await query(false)).ConsumedCapacity?.CapacityUnits).toBe(1);
  });
});

describe("change feed (DynamoDB Streams, NEW_AND_OLD_IMAGES) and Time to Live", () => {
  it("emits INSERT, MODIFY and REMOVE with their images, and nothing for a write that changes nothing", async () => {
    records = [];
    await client.send(new PutItemCommand({ TableName: TABLE, Item: { ...key("feed"), v: n(1) } }));
    await client.send(new PutItemCommand({ TableName: TABLE, Item: { ...key("feed"), v: n(1) } }));
    await client.send(
      new UpdateItemCommand({
        TableName: TABLE,
        Key: key("feed"),
        UpdateExpression: "SET v = :v",
        ExpressionAttributeValues: { ":v": n(2) },
      }),
    );
    await client.send(
      new TransactWriteItemsCommand({ TransactItems: [{ Delete: { TableName: TABLE, Key: key("feed") } }] }),
    );
    await client.send(
      new TransactWriteItemsCommand({ TransactItems: [{ Delete: { TableName: TABLE, Key: key("feed") } }] }),
    );
    expect(records.map((r) => r.eventName)).toEqual(["INSERT", "MODIFY", "REMOVE"]);
    expect(records[0]?.dynamodb).toMatchObject({ Keys: key("feed"), NewImage: { ...key("feed"), v: n(1) } });
    expect(records[0]?.dynamodb.OldImage).toBeUndefined();
    expect(records[1]?.dynamodb).toMatchObject({ OldImage: { v: n(1) }, NewImage: { v: n(2) } });
    expect(records[2]?.dynamodb).toMatchObject({ OldImage: { v: n(2) } });
    expect(records[2]?.dynamodb.NewImage).toBeUndefined();
    expect(records.every((r) => r.userIdentity === undefined)).toBe(true);
    // BatchWriteItem's puts and deletes are records too
    records = [];
    await client.send(
      new BatchWriteItemCommand({
        RequestItems: {
          [TABLE]: [
            { PutRequest: { Item: key("feed-batch", "1") } },
            { DeleteRequest: { Key: key("cond") } },
          ],
        },
      }),
    );
    expect(records.map((r) => [r.eventName, r.dynamodb.Keys.pk?.S])).toEqual([
      ["INSERT", "feed-batch"],
      ["REMOVE", "cond"],
    ]);
  });

  it("TTL deletes items whose Number attribute is in the past (not over five years), as the TTL service identity", async () => {
    await client.send(
      new UpdateTimeToLiveCommand({
        TableName: TABLE,
        TimeToLiveSpecification: { AttributeName: "expires_at", Enabled: true },
      }),
    );
    const described = await client.send(new DescribeTimeToLiveCommand({ TableName: TABLE }));
    expect(described.TimeToLiveDescription).toEqual({
      TimeToLiveStatus: "ENABLED",
      AttributeName: "expires_at",
    });
    const now = Math.floor(Date.now() / 1000);
    await client.send(
      new PutItemCommand({ TableName: TABLE, Item: { ...key("ttl", "past"), expires_at: n(now - 10) } }),
    );
    await client.send(
      new PutItemCommand({ TableName: TABLE, Item: { ...key("ttl", "future"), expires_at: n(now + 3600) } }),
    );
    await client.send(
      new PutItemCommand({
        TableName: TABLE,
        Item: { ...key("ttl", "ancient"), expires_at: n(now - 6 * 365 * 86400) },
      }),
    );
    await client.send(
      new PutItemCommand({
        TableName: TABLE,
        Item: { ...key("ttl", "text"), expires_at: s(String(now - 10)) },
      }),
    );
    records = [];
    expect(await ddb.sweepExpired()).toBe(1);
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({
      eventName: "REMOVE",
      userIdentity: { type: "Service", principalId: "dynamodb.amazonaws.com" },
      dynamodb: { Keys: key("ttl", "past"), OldImage: { expires_at: n(now - 10) } },
    });
    const left = await client.send(
      new QueryCommand({
        TableName: TABLE,
        KeyConditionExpression: "pk = :pk",
        ExpressionAttributeValues: { ":pk": s("ttl") },
        ConsistentRead: true,
      }),
    );
    expect(left.Items?.map((it) => it.sk?.S).sort()).toEqual(["ancient", "future", "text"]);
  });
});
