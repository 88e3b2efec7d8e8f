// Usage per tenant and UTC day on DynamoDB (tenancy's `UsageRepository`): item `TENANT#<id>` /
// `USAGE#<YYYY-MM-DD>` (layout.ts) with the figures `steps`, `executions`, `executor_ms`,
// `gb_seconds` (exact decimal), `episodes_created`, `state_bytes`, and `tenant_id`, `usage_date`.
// Written only by the stream roll-up (one `ADD` per tenant and day per batch), never by a step.
import {
  type AttributeValue,
  type DynamoDBClient,
  GetItemCommand,
  QueryCommand,
  UpdateItemCommand,
} from "@aws-sdk/client-dynamodb";
import type { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import type {
  StoredUsageDay,
  UsageFigureName,
  UsageIncrement,
  UsageRepository,
} from "../tenancy/repositories.js";
import { tenantPk, USAGE_PREFIX, usageKey } from "./layout.js";

export interface DynamoDbUsageRepositoryOpts {
  /**
   * The table's client. A document client works too: it passes these low-level commands through
   * unchanged (numbers stay exact decimal strings).
   */
  readonly client: DynamoDBClient | DynamoDBDocumentClient;
  readonly tableName: string;
}

const FIGURES: readonly UsageFigureName[] = [
  "steps",
  "executions",
  "executor_ms",
  "gb_seconds",
  "episodes_created",
  "state_bytes",
];

function attrKey(tenantId: string, day: string): Record<string, AttributeValue> {
  const key = usageKey(tenantId, day);
  return { pk: { S: key.pk }, sk: { S: key.sk } };
}

/** {@link UsageRepository} on the service table (see the top of this file for the item). */
export class DynamoDbUsageRepository implements UsageRepository {
  private readonly client: DynamoDBClient;
  private readonly tableName: string;

  constructor(opts: DynamoDbUsageRepositoryOpts) {
    this.client = opts.client as DynamoDBClient;
    this.tableName = opts.tableName;
  }

  /** One eventually consistent GetItem of `steps`. */
  async stepsOn(tenantId: string, day: string): Promise<number> {
    const out = await this.client.send(
      new GetItemCommand({
        TableName: this.tableName,
        Key: attrKey(tenantId, day),
        ProjectionExpression: "steps",
      }),
    );
    return Number(out.Item?.steps?.N ?? 0);
  }

  /** One strongly consistent Query on `TENANT#<id>` for `USAGE#<from>`..`USAGE#<to>` (all pages). */
  async days(tenantId: string, from: string, to: string): Promise<StoredUsageDay[]> {
    const days: StoredUsageDay[] = [];
    let startKey: Record<string, AttributeValue> | undefined;
    do {
      const page = await this.client.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: "pk = :pk AND sk BETWEEN :from AND :to",
          ExpressionAttributeValues: {
            ":pk": { S: tenantPk(tenantId) },
            ":from": { S: usageKey(tenantId, from).sk },
            ":to": { S: usageKey(tenantId, to).sk },
          },
          ConsistentRead: true,
          ExclusiveStartKey: startKey,
        }),
      );
      for (const item of page.Items ?? []) {
        const figures: Partial<Record<UsageFigureName, string>> = {};
        for (const name of FIGURES) {
          const value = item[name]?.N;
          if (value !== undefined) figures[name] = value;
        }
        days.push({ date: (item.sk?.S ?? "").slice(USAGE_PREFIX.length), figures });
      }
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    return days;
  }

  /** One UpdateItem (`ADD`, so concurrent roll-ups add up) per increment, all at once. */
  async add(increments: readonly UsageIncrement[]): Promise<void> {
    await Promise.all(
      increments.map((u) =>
        this.client.send(
          new UpdateItemCommand({
            TableName: this.tableName,
            Key: attrKey(u.tenantId, u.day),
            UpdateExpression:
              "ADD steps :steps, executions :executions, executor_ms :ms, gb_seconds :gbs, episodes_created :created, state_bytes :bytes SET tenant_id = :tenant, usage_date = :day",
            ExpressionAttributeValues: {
              ":steps": { N: String(u.steps) },
              ":executions": { N: String(u.executions) },
              ":ms": { N: String(u.executorMs) },
              // A decimal string: DynamoDB sums GB-seconds exactly.
              ":gbs": { N: u.gbSeconds },
              ":created": { N: String(u.episodesCreated) },
              ":bytes": { N: String(u.stateBytes) },
              ":tenant": { S: u.tenantId },
              ":day": { S: u.day },
            },
          }),
        ),
      ),
    );
  }
}
