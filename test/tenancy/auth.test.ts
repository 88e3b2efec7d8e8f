import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiError } from "../../functions/src/core/errors.js";
import { dynamoDbApiKeyStore } from "../../functions/src/store/dynamodb-api-keys.js";
import {
  type ApiKeyStore,
  Authenticator,
  BUILT_IN_QUOTAS,
  generateApiKey,
  LOCAL_TENANT_ID,
  presentedApiKey,
  type QuotaLimits,
  UnauthorizedError,
} from "../../functions/src/tenancy/index.js";
import { startTestTable, type TestTable } from "./helpers/dynalite-table.js";

let table: TestTable;
let keys: ApiKeyStore;
const defaults: QuotaLimits = { ...BUILT_IN_QUOTAS, stepsPerDay: 100 };

beforeAll(async () => {
  table = await startTestTable();
  keys = dynamoDbApiKeyStore({ client: table.client, tableName: table.tableName });
});
afterAll(async () => {
  await table.stop();
});

async function rejection(p: Promise<unknown>): Promise<ApiError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UnauthorizedError);
  return err as ApiError;
}

describe("presentedApiKey", () => {
  it("reads Bearer first, then X-API-Key, from any header source", () => {
    expect(presentedApiKey({ Authorization: "Bearer abc" })).toBe("abc");
    expect(presentedApiKey({ authorization: "bearer   abc  " })).toBe("abc");
    expect(presentedApiKey({ "X-API-Key": "k1" })).toBe("k1");
    expect(presentedApiKey(new Headers({ "x-api-key": "k2" }))).toBe("k2");
    expect(presentedApiKey((n) => (n === "authorization" ? "Bearer k3" : undefined))).toBe("k3");
    expect(presentedApiKey({ Authorization: "Bearer a", "X-API-Key": "b" })).toBe("a");
    expect(presentedApiKey({ Authorization: "Basic dXNlcjpwYXNz", "X-API-Key": "b" })).toBe("b");
    expect(presentedApiKey({ Authorization: "Basic dXNlcjpwYXNz" })).toBeUndefined();
    expect(presentedApiKey({})).toBeUndefined();
  });
});

describe("Authenticator", () => {
  it("with auth off, every request is the local tenant with the default quotas", async () => {
    const auth = new Authenticator({ authRequired: false, defaultQuotas: defaults });
    expect(await auth.authenticate({})).toEqual({ tenantId: LOCAL_TENANT_ID, keyId: null, quotas: defaults });
    expect((await auth.authenticate({ "X-API-Key": "anything" })).tenantId).toBe("local");
  });

  it("refuses to start with auth on and no key store", () => {
    expect(() => new Authenticator({ authRequired: true, defaultQuotas: defaults })).toThrow(/keys/);
  });

  it("resolves a valid key (either header) to its tenant, applying the key's quota overrides", async () => {
    const { key, record } = await keys.create({ tenantId: "acme", quotas: { activeEpisodes: 3 } });
    const auth = new Authenticator({ authRequired: true, keys, defaultQuotas: defaults });
    const viaBearer = await auth.authenticate({ authorization: `Bearer ${key}` });
    expect(viaBearer).toEqual({
      tenantId: "acme",
      keyId: record.keyId,
      quotas: { ...defaults, activeEpisodes: 3 },
    });
    expect(await auth.authenticate({ "x-api-key": key })).toEqual(viaBearer);
  });

  it("answers 401 unauthorized for no key, a malformed key, an unknown key and a revoked key", async () => {
    const auth = new Authenticator({ authRequired: true, keys, defaultQuotas: defaults, cacheTtlMs: 0 });
    const { key } = await keys.create({ tenantId: "t-401" });
    await keys.revoke(key);
    for (const headers of [
      {},
      { authorization: "Bearer nope" },
      { "x-api-key": generateApiKey() },
      { "x-api-key": key },
    ]) {
      const err = await rejection(auth.authenticate(headers));
      expect(err.status).toBe(401);
      expect(err.code).toBe("unauthorized");
      expect(err.message).not.toContain(key);
    }
  });

  it("keeps DynamoDB off the hot path: one read per key per TTL, shared by concurrent first requests", async () => {
    // Prepare
    let clock = 1_000_000;
    const { key } = await keys.create({ tenantId: "t-cache" });
    const auth = new Authenticator({
      authRequired: true,
      keys,
      defaultQuotas: defaults,
      cacheTtlMs: 10_000,
      now: () => clock,
    });
    const before = table.requests();
    // Act: 50 concurrent first requests, then 50 more within the TTL
    await Promise.all(Array.from({ length: 50 }, () => auth.authenticate({ "x-api-key": key })));
    for (let i = 0; i < 50; i++) await auth.authenticate({ "x-api-key": key });
    // Assess
    expect(table.requests() - before).toBe(1);
    clock += 10_001;
    await auth.authenticate({ "x-api-key": key });
    expect(table.requests() - before).toBe(2);
  });

  it("sees a revocation once the positive cache entry expires (the documented delay)", async () => {
    let clock = 0;
    const { key } = await keys.create({ tenantId: "t-revoke-cache" });
    const auth = new Authenticator({ authRequired: true, keys, defaultQuotas: defaults, now: () => clock });
    expect((await auth.authenticate({ "x-api-key": key })).tenantId).toBe("t-revoke-cache");
    await keys.revoke(key);
    clock += 5_000; // inside the 10 s default TTL: still cached
    expect((await auth.authenticate({ "x-api-key": key })).tenantId).toBe("t-revoke-cache");
    clock += 5_001;
    await rejection(auth.authenticate({ "x-api-key": key }));
  });

  it("remembers unknown keys briefly and never reads DynamoDB for malformed ones", async () => {
    let clock = 0;
    const auth = new Authenticator({ authRequired: true, keys, defaultQuotas: defaults, now: () => clock });
    const unknown = generateApiKey();
    const before = table.requests();
    for (let i = 0; i < 10; i++) await rejection(auth.authenticate({ "x-api-key": unknown }));
    for (let i = 0; i < 10; i++) await rejection(auth.authenticate({ "x-api-key": "garbage" }));
    expect(table.requests() - before).toBe(1);
    clock += 2_001;
    await rejection(auth.authenticate({ "x-api-key": unknown }));
    expect(table.requests() - before).toBe(2);
  });

  it("bounds the cache: with room for 2 keys, a third evicts the oldest", async () => {
    const auth = new Authenticator({ authRequired: true, keys, defaultQuotas: defaults, maxCacheEntries: 2 });
    const created = await Promise.all([1, 2, 3].map(() => keys.create({ tenantId: "t-bound" })));
    for (const { key } of created) await auth.authenticate({ "x-api-key": key });
    const before = table.requests();
    await auth.authenticate({ "x-api-key": created[2]?.key ?? "" }); // newest: cached
    await auth.authenticate({ "x-api-key": created[1]?.key ?? "" }); // cached
    expect(table.requests() - before).toBe(0);
    await auth.authenticate({ "x-api-key": created[0]?.key ?? "" }); // evicted: read again
    expect(table.requests() - before).toBe(1);
  });
});
