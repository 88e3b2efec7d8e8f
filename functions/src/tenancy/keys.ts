import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { QuotaOverrides } from "./quotas.js";
import type { ApiKeyRepository } from "./repositories.js";

/** Every key starts with this; the rest is 32 random bytes in base64url (43 characters). */
export const API_KEY_PREFIX = "ce_live_";
const API_KEY_PATTERN = /^ce_live_[A-Za-z0-9_-]{43}$/;
/** Tenant ids end up in store keys (DynamoDB: `TENANT#<id>`): no `#`, bounded length. */
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
  /** Where keys are kept (the DynamoDB adapter: `store/dynamodb-api-keys.ts`). */
  readonly repository: ApiKeyRepository;
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

/** Whether a string has the shape of one of our keys (cheap pre-check before any store read). */
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

/** A key's public id: `key_` + the first 12 hex digits of its hash. */
export function keyIdOfHash(hash: string): string {
  return `key_${hash.slice(0, 12)}`;
}

/**
 * API keys: create (random key, only its SHA-256 kept), verify by hash, list, revoke. Where they are
 * kept is the repository's business (`ApiKeyRepository`; on DynamoDB one item per key, verified by
 * one GetItem by hash).
 *
 * @example
 * const store = new ApiKeyStore({ repository: new DynamoDbApiKeyRepository({ client, tableName }) });
 * const { key } = await store.create({ tenantId: "acme" }); // show `key` once
 * await store.findByKey(key); // -> ApiKeyRecord
 */
export class ApiKeyStore {
  private readonly repository: ApiKeyRepository;
  private readonly now: () => Date;

  constructor(opts: ApiKeyStoreOpts) {
    this.repository = opts.repository;
    this.now = opts.now ?? (() => new Date());
  }

  /** Creates a key for a tenant. The returned `key` is the only copy of the secret. */
  async create(opts: CreateApiKeyOpts): Promise<{ key: string; record: ApiKeyRecord }> {
    assertTenantId(opts.tenantId);
    const key = generateApiKey();
    const keyHash = hashApiKey(key);
    const record: ApiKeyRecord = {
      keyId: keyIdOfHash(keyHash),
      keyHash,
      keyPrefix: key.slice(0, API_KEY_PREFIX.length + 4),
      tenantId: opts.tenantId,
      name: opts.name ?? "default",
      createdAt: this.now().toISOString(),
      revoked: false,
      revokedAt: undefined,
      quotas: opts.quotas ?? {},
    };
    // 256 random bits never collide in practice; the repository makes that a loud error, not an overwrite.
    await this.repository.insert(record);
    return { key, record };
  }

  /** The record for a key hash (strongly consistent), or undefined. */
  async findByHash(keyHash: string): Promise<ApiKeyRecord | undefined> {
    const record = await this.repository.findByHash(keyHash);
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
   * All keys, optionally of one tenant, oldest first. On DynamoDB this is a Scan with a filter: fine
   * for an admin CLI over a table whose other items are episodes, not for a request path.
   */
  async list(opts: { tenantId?: string } = {}): Promise<ApiKeyRecord[]> {
    const out = await this.repository.list(opts.tenantId === undefined ? {} : { tenantId: opts.tenantId });
    return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.keyId.localeCompare(b.keyId));
  }

  /**
   * Revokes one key, named by the full key, its hash, its key id (`key_…`) or its displayed prefix
   * (`ce_live_abcd`, only if exactly one key has it). Returns the revoked record.
   * Throws when nothing or more than one key matches.
   */
  async revoke(ref: string): Promise<ApiKeyRecord> {
    const target = await this.resolve(ref);
    const record = await this.repository.markRevoked(target.keyHash, this.now().toISOString());
    if (!record) throw new Error(`No API key matches '${ref}'.`);
    return record;
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
