// API keys on DynamoDB (tenancy's `ApiKeyRepository`): item `KEY#<sha256 of key>` / `META`
// (layout.ts) with `item_type="api_key"`, `key_hash`, `key_id`, `key_prefix`, `tenant_id`, `name`,
// `created_at`, `revoked` (+ `revoked_at`) and an optional `quotas` map of wire names
// (`steps_per_day`, ...). Verification is one strongly consistent GetItem by hash.
import {
  type AttributeValue,
  ConditionalCheckFailedException,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  ScanCommand,
  UpdateItemCommand,
} from "@aws-sdk/client-dynamodb";
import { type ApiKeyRecord, ApiKeyStore, keyIdOfHash } from "../tenancy/keys.js";
import { type QuotaOverrides, quotaOverridesFromWire, quotaOverridesToWire } from "../tenancy/quotas.js";
import type { ApiKeyRepository } from "../tenancy/repositories.js";
import { apiKeyKey } from "./layout.js";

export interface DynamoDbApiKeyRepositoryOpts {
  readonly client: DynamoDBClient;
  readonly tableName: string;
}

const ITEM_TYPE = "api_key";

function keyOf(hash: string): Record<string, AttributeValue> {
  const key = apiKeyKey(hash);
  return { pk: { S: key.pk }, sk: { S: key.sk } };
}

function recordFromItem(item: Record<string, AttributeValue>): ApiKeyRecord | undefined {
  const keyHash = item.key_hash?.S;
  const tenantId = item.tenant_id?.S;
  if (!keyHash || !tenantId) return undefined;
  const wireQuotas: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(item.quotas?.M ?? {})) {
    if (value.N !== undefined) wireQuotas[name] = Number(value.N);
  }
  let quotas: QuotaOverrides = {};
  try {
    quotas = quotaOverridesFromWire(wireQuotas);
  } catch {
    quotas = {}; // a hand-edited bad override falls back to the defaults rather than locking the key out
  }
  return {
    keyId: item.key_id?.S ?? keyIdOfHash(keyHash),
    keyHash,
    keyPrefix: item.key_prefix?.S ?? "",
    tenantId,
    name: item.name?.S ?? "",
    createdAt: item.created_at?.S ?? "",
    revoked: item.revoked?.BOOL === true,
    revokedAt: item.revoked_at?.S,
    quotas,
  };
}

/** {@link ApiKeyRepository} on the service table (see the top of this file for the item). */
export class DynamoDbApiKeyRepository implements ApiKeyRepository {
  private readonly client: DynamoDBClient;
  private readonly tableName: string;

  constructor(opts: DynamoDbApiKeyRepositoryOpts) {
    if (!opts.tableName) throw new Error("ApiKeyStore: tableName is required.");
    this.client = opts.client;
    this.tableName = opts.tableName;
  }

  async insert(record: ApiKeyRecord): Promise<void> {
    const quotaMap: Record<string, AttributeValue> = {};
    for (const [name, value] of Object.entries(quotaOverridesToWire(record.quotas))) {
      quotaMap[name] = { N: String(value) };
    }
    await this.client.send(
      new PutItemCommand({
        TableName: this.tableName,
        Item: {
          ...keyOf(record.keyHash),
          item_type: { S: ITEM_TYPE },
          key_hash: { S: record.keyHash },
          key_id: { S: record.keyId },
          key_prefix: { S: record.keyPrefix },
          tenant_id: { S: record.tenantId },
          name: { S: record.name },
          created_at: { S: record.createdAt },
          revoked: { BOOL: record.revoked },
          ...(record.revokedAt !== undefined ? { revoked_at: { S: record.revokedAt } } : {}),
          ...(Object.keys(quotaMap).length > 0 ? { quotas: { M: quotaMap } } : {}),
        },
        ConditionExpression: "attribute_not_exists(pk)",
      }),
    );
  }

  async findByHash(keyHash: string): Promise<ApiKeyRecord | undefined> {
    const out = await this.client.send(
      new GetItemCommand({ TableName: this.tableName, Key: keyOf(keyHash), ConsistentRead: true }),
    );
    return out.Item ? recordFromItem(out.Item) : undefined;
  }

  /** A Scan with a filter: it reads the whole table (an admin command's read, never a request's). */
  async list(opts: { readonly tenantId?: string }): Promise<ApiKeyRecord[]> {
    const out: ApiKeyRecord[] = [];
    let startKey: Record<string, AttributeValue> | undefined;
    do {
      const page = await this.client.send(
        new ScanCommand({
          TableName: this.tableName,
          FilterExpression:
            opts.tenantId === undefined ? "item_type = :t" : "item_type = :t AND tenant_id = :tenant",
          ExpressionAttributeValues: {
            ":t": { S: ITEM_TYPE },
            ...(opts.tenantId === undefined ? {} : { ":tenant": { S: opts.tenantId } }),
          },
          ExclusiveStartKey: startKey,
        }),
      );
      for (const item of page.Items ?? []) {
        const record = recordFromItem(item);
        if (record) out.push(record);
      }
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    return out;
  }

  async markRevoked(keyHash: string, revokedAt: string): Promise<ApiKeyRecord | undefined> {
    try {
      const out = await this.client.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: keyOf(keyHash),
          UpdateExpression: "SET revoked = :true, revoked_at = if_not_exists(revoked_at, :at)",
          ConditionExpression: "attribute_exists(pk)",
          ExpressionAttributeValues: { ":true": { BOOL: true }, ":at": { S: revokedAt } },
          ReturnValues: "ALL_NEW",
        }),
      );
      const record = out.Attributes ? recordFromItem(out.Attributes) : undefined;
      if (!record) throw new Error(`Key '${keyIdOfHash(keyHash)}' vanished while revoking it.`);
      return record;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return undefined;
      throw err;
    }
  }
}

/** An {@link ApiKeyStore} on the service table (the keys CLI, tests, benchmarks). */
export function dynamoDbApiKeyStore(opts: DynamoDbApiKeyRepositoryOpts & { now?: () => Date }): ApiKeyStore {
  return new ApiKeyStore({
    repository: new DynamoDbApiKeyRepository(opts),
    ...(opts.now ? { now: opts.now } : {}),
  });
}
