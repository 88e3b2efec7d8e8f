import { UnauthorizedError } from "./errors.js";
import { type ApiKeyRecord, type ApiKeyStore, hashApiKey, isWellFormedApiKey } from "./keys.js";
import { applyQuotaOverrides, type QuotaLimits } from "./quotas.js";

/** The tenant every request belongs to while auth is off (the local stack's default). */
export const LOCAL_TENANT_ID = "local";

/** Who is calling, resolved once per request. */
export interface TenantContext {
  readonly tenantId: string;
  /** The key's public id (`key_…`); `null` when auth is off. */
  readonly keyId: string | null;
  /** Deployment defaults with the key's overrides applied. */
  readonly quotas: QuotaLimits;
}

/** Anything we can read request headers from: a Fetch `Headers`, a plain record, or a getter. */
export type HeaderSource =
  | Headers
  | Readonly<Record<string, string | readonly string[] | undefined>>
  | ((name: string) => string | undefined);

export interface AuthenticatorOpts {
  /** Whether requests must carry a valid key. When false every request is the `local` tenant. */
  readonly authRequired: boolean;
  /** Where keys live. Required when `authRequired`. */
  readonly keys?: ApiKeyStore;
  /** Quotas of tenants whose key has no overrides (and of the `local` tenant). */
  readonly defaultQuotas: QuotaLimits;
  /**
   * How long a found key (valid or revoked) is trusted without reading DynamoDB again. This is also
   * the longest time a revocation takes to reach a warm API instance. @default 10_000
   */
  readonly cacheTtlMs?: number;
  /** How long an unknown key is remembered as unknown (guards DynamoDB from key-guessing). @default 2_000 */
  readonly negativeCacheTtlMs?: number;
  /** Bound on cached entries; the oldest are dropped first. @default 10_000 */
  readonly maxCacheEntries?: number;
  /** Clock in ms, for tests. @default Date.now */
  readonly now?: () => number;
}

interface CacheEntry {
  readonly record: ApiKeyRecord | undefined;
  readonly expiresAt: number;
}

function readHeader(source: HeaderSource, name: string): string | undefined {
  if (typeof source === "function") return source(name) ?? undefined;
  if (typeof Headers !== "undefined" && source instanceof Headers) return source.get(name) ?? undefined;
  const record = source as Readonly<Record<string, string | readonly string[] | undefined>>;
  const lower = name.toLowerCase();
  for (const [key, value] of Object.entries(record)) {
    if (key.toLowerCase() !== lower || value === undefined) continue;
    return typeof value === "string" ? value : value[0];
  }
  return undefined;
}

/**
 * The key a request presents: `Authorization: Bearer <key>` first, else `X-API-Key: <key>`.
 * Returns undefined when neither is present.
 */
export function presentedApiKey(headers: HeaderSource): string | undefined {
  const authorization = readHeader(headers, "authorization")?.trim();
  if (authorization) {
    const match = /^bearer\s+(\S+)$/i.exec(authorization);
    if (match?.[1]) return match[1];
  }
  const apiKey = readHeader(headers, "x-api-key")?.trim();
  return apiKey || undefined;
}

/**
 * Resolves request headers to a `TenantContext`, or throws `UnauthorizedError` (401).
 * Found keys are cached for `cacheTtlMs` and unknown ones for `negativeCacheTtlMs`, keyed by the
 * key's SHA-256 (the raw key is never kept), so a warm instance reads DynamoDB about once per key per
 * TTL; concurrent first requests with the same key share one read.
 *
 * @example
 * const auth = new Authenticator({ authRequired: true, keys, defaultQuotas: quotaDefaultsFromEnv() });
 * const tenant = await auth.authenticate((name) => c.req.header(name)); // { tenantId, keyId, quotas }
 */
export class Authenticator {
  readonly authRequired: boolean;
  private readonly keys: ApiKeyStore | undefined;
  private readonly defaultQuotas: QuotaLimits;
  private readonly cacheTtlMs: number;
  private readonly negativeCacheTtlMs: number;
  private readonly maxCacheEntries: number;
  private readonly now: () => number;
  private readonly cache = new Map<string, CacheEntry>();
  private readonly inFlight = new Map<string, Promise<ApiKeyRecord | undefined>>();
  private readonly localTenant: TenantContext;

  constructor(opts: AuthenticatorOpts) {
    if (opts.authRequired && !opts.keys)
      throw new Error("Authenticator: `keys` is required when auth is on.");
    this.authRequired = opts.authRequired;
    this.keys = opts.keys;
    this.defaultQuotas = opts.defaultQuotas;
    this.cacheTtlMs = opts.cacheTtlMs ?? 10_000;
    this.negativeCacheTtlMs = opts.negativeCacheTtlMs ?? 2_000;
    this.maxCacheEntries = opts.maxCacheEntries ?? 10_000;
    this.now = opts.now ?? Date.now;
    this.localTenant = Object.freeze({ tenantId: LOCAL_TENANT_ID, keyId: null, quotas: opts.defaultQuotas });
  }

  /** The caller's tenant. Throws `UnauthorizedError` for a missing, malformed, unknown or revoked key. */
  async authenticate(headers: HeaderSource): Promise<TenantContext> {
    if (!this.authRequired) return this.localTenant;
    const key = presentedApiKey(headers);
    if (!key || !isWellFormedApiKey(key)) throw new UnauthorizedError();
    const record = await this.lookup(hashApiKey(key));
    if (!record || record.revoked) throw new UnauthorizedError();
    return {
      tenantId: record.tenantId,
      keyId: record.keyId,
      quotas: applyQuotaOverrides(this.defaultQuotas, record.quotas),
    };
  }

  /** Forgets cached keys (e.g. right after a revoke in the same process). */
  clearCache(): void {
    this.cache.clear();
  }

  private async lookup(keyHash: string): Promise<ApiKeyRecord | undefined> {
    const now = this.now();
    const cached = this.cache.get(keyHash);
    if (cached && cached.expiresAt > now) return cached.record;
    const pending = this.inFlight.get(keyHash);
    if (pending) return pending;
    const keys = this.keys as ApiKeyStore;
    const read = keys
      .findByHash(keyHash)
      .then((record) => {
        this.remember(keyHash, record);
        return record;
      })
      .finally(() => this.inFlight.delete(keyHash));
    this.inFlight.set(keyHash, read);
    return read;
  }

  private remember(keyHash: string, record: ApiKeyRecord | undefined): void {
    const ttl = record ? this.cacheTtlMs : this.negativeCacheTtlMs;
    if (ttl <= 0) return;
    this.cache.delete(keyHash); // re-insert so Map order stays oldest-first
    while (this.cache.size >= this.maxCacheEntries) {
      const oldest = this.cache.keys().next();
      if (oldest.done) break;
      this.cache.delete(oldest.value);
    }
    this.cache.set(keyHash, { record, expiresAt: this.now() + ttl });
  }
}
