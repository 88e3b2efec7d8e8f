import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import {
  type AttributeValue,
  ConditionalCheckFailedException,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  ScanCommand,
  UpdateItemCommand,
} from "@aws-sdk/client-dynamodb";
import { apiKeyKey } from "../store/layout.js";
import { type QuotaOverrides, quotaOverridesFromWire, quotaOverridesToWire } from "./quotas.js";

/** Every key starts with this; the rest is 32 random bytes in base64url (43 characters). */
export const API_KEY_PREFIX = "ce_live_";
const API_KEY_PATTERN = /^ce_live_[A-Za-z0-9_-]{43}$/;
/** Tenant ids end up in `TENANT#<id>` keys: no `#`, bounded length. */
const TENANT_ID_PATTERN = /^[A-Za-z0-9._:-]{1,64}$/;

/** A stored API key. The key itself is never stored: only its SHA-256. */
export interface ApiKeyRecord {
  /** Short public id: `key_` + the first 12 hex digits of the hash. Safe to log and show. */
  readonly keyId: string;
  /** SHA-256 of the key, lowercase hex. */
  readonly keyHash: string;
  /** The key's first 12 characters (`ce_live_` + 4), to recognise it in a list. */
  readonly keyPrefix: string;
  readonly tenantId: string;
  readonly name: string;
  readonly createdAt: string;
  readonly revoked: boolean;
  readonly revokedAt: string | undefined;
  /** Per-key quota overrides (the deployment defaults apply to the rest). */
  readonly quotas: QuotaOverrides;
}

export interface CreateApiKeyOpts {
  readonly tenantId: string;
  /** Human label. @default "default" */
  readonly name?: string;
  readonly quotas?: QuotaOverrides;
}

export interface ApiKeyStoreOpts {
  readonly client: DynamoDBClient;
  readonly tableName: string;
  /** Clock, for tests. @default () => new Date() */
  readonly now?: () => Date;
}

/** SHA-256 of a key, lowercase hex. */
export function hashApiKey(key: string): string {
  return createHash("sha256").update(key, "utf8").digest("hex");
}

/** A new random key (256 bits of entropy). Show it once; store only `hashApiKey(key)`. */
export function generateApiKey(): string {
  return API_KEY_PREFIX + randomBytes(32).toString("base64url");
}

/** Whether a string has the shape of one of our keys (cheap pre-check before any DynamoDB read). */
export function isWellFormedApiKey(key: string): boolean {
  return API_KEY_PATTERN.test(key);
}

export function assertTenantId(tenantId: string): void {
  if (!TENANT_ID_PATTERN.test(tenantId)) {
    throw new Error(`Invalid tenant id '${tenantId}': use 1-64 characters of [A-Za-z0-9._:-].`);
  }
}

/** Constant-time equality of two hex digests. */
export function hashesEqual(a: string, b: string): boolean {
  const ab = Buffer.from(a, "hex");
  const bb = Buffer.from(b, "hex");
  return ab.length === bb.length && ab.length > 0 && timingSafeEqual(ab, bb);
}

function keyIdOf(hash: string): string {
  return `key_${hash.slice(0, 12)}`;
}

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
    keyId: item.key_id?.S ?? keyIdOf(keyHash),
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

/**
 * API keys in the service table: item `KEY#<sha256 of key>` / `META` with `key_hash`, `key_id`,
 * `key_prefix`, `tenant_id`, `name`, `created_at`, `revoked` (+ `revoked_at`) and optional `quotas`
 * (a map of wire names such as `steps_per_day`). Verification is one GetItem by hash.
 *
 * @example
 * const store = new ApiKeyStore({ client, tableName: "coding-env" });
 * const { key } = await store.create({ tenantId: "acme" }); // show `key` once
 * await store.findByKey(key); // -> ApiKeyRecord
 */
export class ApiKeyStore {
  private readonly client: DynamoDBClient;
  private readonly tableName: string;
  private readonly now: () => Date;

  constructor(opts: ApiKeyStoreOpts) {
    if (!opts.tableName) throw new Error("ApiKeyStore: tableName is required.");
    this.client = opts.client;
    this.tableName = opts.tableName;
    this.now = opts.now ?? (() => new Date());
  }

  /** Creates a key for a tenant. The returned `key` is the only copy of the secret. */
  async create(opts: CreateApiKeyOpts): Promise<{ key: string; record: ApiKeyRecord }> {
    assertTenantId(opts.tenantId);
    const key = generateApiKey();
    const keyHash = hashApiKey(key);
    const record: ApiKeyRecord = {
      keyId: keyIdOf(keyHash),
      keyHash,
      keyPrefix: key.slice(0, API_KEY_PREFIX.length + 4),
      tenantId: opts.tenantId,
      name: opts.name ?? "default",
      createdAt: this.now().toISOString(),
      revoked: false,
      revokedAt: undefined,
      quotas: opts.quotas ?? {},
    };
    const quotaMap: Record<string, AttributeValue> = {};
    for (const [name, value] of Object.entries(quotaOverridesToWire(record.quotas))) {
      quotaMap[name] = { N: String(value) };
    }
    await this.client.send(
      new PutItemCommand({
        TableName: this.tableName,
        Item: {
          ...keyOf(keyHash),
          item_type: { S: "api_key" },
          key_hash: { S: keyHash },
          key_id: { S: record.keyId },
          key_prefix: { S: record.keyPrefix },
          tenant_id: { S: record.tenantId },
          name: { S: record.name },
          created_at: { S: record.createdAt },
          revoked: { BOOL: false },
          ...(Object.keys(quotaMap).length > 0 ? { quotas: { M: quotaMap } } : {}),
        },
        // 256 random bits never collide in practice; the condition makes that a loud error, not an overwrite.
        ConditionExpression: "attribute_not_exists(pk)",
      }),
    );
    return { key, record };
  }

  /** The record for a key hash (strongly consistent), or undefined. */
  async findByHash(keyHash: string): Promise<ApiKeyRecord | undefined> {
    const out = await this.client.send(
      new GetItemCommand({ TableName: this.tableName, Key: keyOf(keyHash), ConsistentRead: true }),
    );
    if (!out.Item) return undefined;
    const record = recordFromItem(out.Item);
    // The lookup was by hash; compare the stored hash in constant time anyway, so no code path
    // compares secret-derived values with an early-exit comparison.
    return record && hashesEqual(record.keyHash, keyHash) ? record : undefined;
  }

  /** The record for a presented key, or undefined (malformed keys are not looked up). */
  async findByKey(key: string): Promise<ApiKeyRecord | undefined> {
    if (!isWellFormedApiKey(key)) return undefined;
    return this.findByHash(hashApiKey(key));
  }

  /**
   * All keys, optionally of one tenant, oldest first. This is a Scan with a filter: fine for an admin
   * CLI over a table whose other items are episodes, not for a request path (it reads the whole table).
   */
  async list(opts: { tenantId?: string } = {}): Promise<ApiKeyRecord[]> {
    const out: ApiKeyRecord[] = [];
    let startKey: Record<string, AttributeValue> | undefined;
    do {
      const page = await this.client.send(
        new ScanCommand({
          TableName: this.tableName,
          FilterExpression:
            opts.tenantId === undefined ? "item_type = :t" : "item_type = :t AND tenant_id = :tenant",
          ExpressionAttributeValues: {
            ":t": { S: "api_key" },
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
    return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.keyId.localeCompare(b.keyId));
  }

  /**
   * Revokes one key, named by the full key, its hash, its key id (`key_…`) or its displayed prefix
   * (`ce_live_abcd`, only if exactly one key has it). Returns the revoked record.
   * Throws when nothing or more than one key matches.
   */
  async revoke(ref: string): Promise<ApiKeyRecord> {
    const target = await this.resolve(ref);
    const revokedAt = this.now().toISOString();
    try {
      const out = await this.client.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: keyOf(target.keyHash),
          UpdateExpression: "SET revoked = :true, revoked_at = if_not_exists(revoked_at, :at)",
          ConditionExpression: "attribute_exists(pk)",
          ExpressionAttributeValues: { ":true": { BOOL: true }, ":at": { S: revokedAt } },
          ReturnValues: "ALL_NEW",
        }),
      );
      const record = out.Attributes ? recordFromItem(out.Attributes) : undefined;
      if (!record) throw new Error(`Key '${ref}' vanished while revoking it.`);
      return record;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) throw new Error(`No API key matches '${ref}'.`);
      throw err;
    }
  }

  private async resolve(ref: string): Promise<ApiKeyRecord> {
    if (isWellFormedApiKey(ref) || /^[0-9a-f]{64}$/.test(ref)) {
      const record = await this.findByHash(isWellFormedApiKey(ref) ? hashApiKey(ref) : ref);
      if (!record) throw new Error(`No API key matches '${ref}'.`);
      return record;
    }
    const matches = (await this.list()).filter((r) => r.keyId === ref || r.keyPrefix === ref);
    const [only, second] = matches;
    if (!only) throw new Error(`No API key matches '${ref}'.`);
    if (second) {
      throw new Error(
        `'${ref}' matches ${matches.length} keys (${matches.map((m) => m.keyId).join(", ")}): use a key id.`,
      );
    }
    return only;
  }
}
