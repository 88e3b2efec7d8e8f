// Paged queries and batch reads/writes on the service table, each retrying what DynamoDB leaves
// unprocessed (UnprocessedKeys / UnprocessedItems) with exponential backoff and jitter.
import {
  type AttributeValue,
  type DynamoDBClient,
  PutItemCommand,
  type PutItemCommandInput,
  QueryCommand,
} from "@aws-sdk/client-dynamodb";
import {
  BatchGetCommand,
  BatchWriteCommand,
  type DynamoDBDocumentClient,
  type QueryCommandInput,
} from "@aws-sdk/lib-dynamodb";
import { marshall, unmarshall } from "@aws-sdk/util-dynamodb";
import { itemBytes, readUnits, writeUnits } from "./item-size.js";

/** DynamoDB requests made and the units DynamoDB would bill for them (item sizes, its rules). */
export interface RequestStats {
  reads: number;
  writes: number;
  readUnits: number;
  writeUnits: number;
}

export const newRequestStats = (): RequestStats => ({ reads: 0, writes: 0, readUnits: 0, writeUnits: 0 });

export type Key = { pk: string; sk: string };

const MAX_ATTEMPTS = 10;

/** Waits before retry `attempt` (1, 2, ...): 20 ms doubling, at most 1 s, with full jitter. */
export function backoff(attempt: number): Promise<void> {
  const ceiling = Math.min(1_000, 20 * 2 ** (attempt - 1));
  return new Promise((r) => setTimeout(r, Math.random() * ceiling));
}

/** As the document client writes items: attributes set to `undefined` are left out. */
const MARSHALL = { removeUndefinedValues: true } as const;

const unmarshallAll = (items: readonly Record<string, AttributeValue>[] | undefined) =>
  (items ?? []).map((i) => unmarshall(i));

export class TableClient {
  /**
   * Query and PutItem (a step's two requests) go out as plain commands, marshalled here. Given a
   * client built with `cacheMiddleware: true` (the document client refuses that option), the SDK
   * resolves each command's middleware stack once instead of on every call. Without one, the
   * document client sends them: lib-dynamodb shares the plain client's config and middleware
   * stack, so a plain command sent through it is a plain client call.
   */
  readonly client: DynamoDBClient;

  constructor(
    readonly doc: DynamoDBDocumentClient,
    readonly tableName: string,
    readonly stats: RequestStats = newRequestStats(),
    client?: DynamoDBClient,
  ) {
    this.client = client ?? (doc as unknown as DynamoDBClient);
  }

  /** Every item of a strongly consistent query, page by page (a request per page). */
  async *queryAll(
    input: Omit<QueryCommandInput, "TableName" | "ConsistentRead" | "ExclusiveStartKey">,
  ): AsyncGenerator<Record<string, unknown>> {
    let startKey: Record<string, unknown> | undefined;
    do {
      const out = await this.query({ ...input, ...(startKey ? { ExclusiveStartKey: startKey } : {}) });
      yield* out.items;
      startKey = out.lastKey;
    } while (startKey);
  }

  /** One strongly consistent Query request. */
  async query(
    input: Omit<QueryCommandInput, "TableName" | "ConsistentRead">,
  ): Promise<{ items: Record<string, unknown>[]; lastKey: Record<string, unknown> | undefined }> {
    const { ExpressionAttributeValues: values, ExclusiveStartKey: startKey, ...rest } = input;
    const out = await this.client.send(
      new QueryCommand({
        ...rest,
        ...(values ? { ExpressionAttributeValues: marshall(values, MARSHALL) } : {}),
        ...(startKey ? { ExclusiveStartKey: marshall(startKey, MARSHALL) } : {}),
        TableName: this.tableName,
        ConsistentRead: true,
      }),
    );
    const items = unmarshallAll(out.Items);
    this.stats.reads++;
    // Billed on the items read (a projection does not lower it).
    if (input.ProjectionExpression === undefined)
      this.stats.readUnits += readUnits(
        items.reduce((n, i) => n + itemBytes(i), 0),
        true,
      );
    return { items, lastKey: out.LastEvaluatedKey ? unmarshall(out.LastEvaluatedKey) : undefined };
  }

  /**
   * One PutItem of `item` (plain values, marshalled as the document client does). A refused
   * condition throws the SDK's ConditionalCheckFailedException, its `Item` (if asked for) unmarshalled
   * by the caller.
   */
  async putItem(
    item: Record<string, unknown>,
    opts: Omit<PutItemCommandInput, "TableName" | "Item"> = {},
  ): Promise<void> {
    await this.client.send(
      new PutItemCommand({ ...opts, TableName: this.tableName, Item: marshall(item, MARSHALL) }),
    );
  }

  /** Strongly consistent BatchGetItem of any number of keys (100 per request), retrying UnprocessedKeys. */
  async batchGet(keys: readonly Key[]): Promise<Record<string, unknown>[]> {
    const found: Record<string, unknown>[] = [];
    for (let i = 0; i < keys.length; i += 100) {
      let pending: Key[] = keys.slice(i, i + 100);
      for (let attempt = 1; pending.length > 0; attempt++) {
        if (attempt > MAX_ATTEMPTS) throw new Error("DynamoDB kept keys unprocessed (BatchGetItem)");
        if (attempt > 1) await backoff(attempt - 1);
        const out = await this.doc.send(
          new BatchGetCommand({
            RequestItems: { [this.tableName]: { Keys: pending, ConsistentRead: true } },
          }),
        );
        const items = (out.Responses?.[this.tableName] ?? []) as Record<string, unknown>[];
        this.stats.reads++;
        // BatchGetItem rounds each item up to 4 KB on its own.
        for (const item of items) this.stats.readUnits += readUnits(itemBytes(item), true);
        found.push(...items);
        pending = (out.UnprocessedKeys?.[this.tableName]?.Keys ?? []) as Key[];
      }
    }
    return found;
  }

  async batchPut(items: readonly Record<string, unknown>[]): Promise<void> {
    await this.batchWrite(items.map((Item) => ({ PutRequest: { Item } })));
  }

  async batchDelete(keys: readonly Key[]): Promise<void> {
    await this.batchWrite(keys.map((Key) => ({ DeleteRequest: { Key } })));
  }

  private async batchWrite(requests: Array<Record<string, unknown>>): Promise<void> {
    // 25 per call, and small enough in bytes (16 MB per call; chunk items are ~350 KB).
    const batches: Array<Array<Record<string, unknown>>> = [];
    let current: Array<Record<string, unknown>> = [];
    let bytes = 0;
    for (const r of requests) {
      const item = (r.PutRequest as { Item?: Record<string, unknown> } | undefined)?.Item;
      const size = item ? itemBytes(item) : 1024;
      if (current.length === 25 || bytes + size > 12 * 1024 * 1024) {
        batches.push(current);
        current = [];
        bytes = 0;
      }
      current.push(r);
      bytes += size;
      this.stats.writeUnits += writeUnits(size);
    }
    if (current.length > 0) batches.push(current);
    for (const batch of batches) {
      let pending = batch;
      for (let attempt = 1; pending.length > 0; attempt++) {
        if (attempt > MAX_ATTEMPTS) throw new Error("DynamoDB kept items unprocessed (BatchWriteItem)");
        if (attempt > 1) await backoff(attempt - 1);
        this.stats.writes++;
        const out = await this.doc.send(
          new BatchWriteCommand({ RequestItems: { [this.tableName]: pending as never } }),
        );
        pending = (out.UnprocessedItems?.[this.tableName] ?? []) as Array<Record<string, unknown>>;
      }
    }
  }
}
