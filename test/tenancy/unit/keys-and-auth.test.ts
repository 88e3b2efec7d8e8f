// Fast unit tier: API keys and authentication with the key store in memory
// (test/tenancy/in-memory-repositories.ts). The same behaviour against dynalite:
// test/tenancy/keys.test.ts and auth.test.ts.
import { describe, expect, it } from "vitest";
import {
  ApiKeyStore,
  Authenticator,
  BUILT_IN_QUOTAS,
  generateApiKey,
  hashApiKey,
  UnauthorizedError,
} from "../../../functions/src/tenancy/index.js";
import { InMemoryApiKeyRepository } from "../in-memory-repositories.js";

function storeInMemory(nowMs = Date.parse("2026-12-01T00:00:00Z")): {
  repository: InMemoryApiKeyRepository;
  store: ApiKeyStore;
  tick: () => void;
} {
  const repository = new InMemoryApiKeyRepository();
  let t = nowMs;
  const store = new ApiKeyStore({ repository, now: () => new Date(t) });
  return { repository, store, tick: () => (t += 1000) };
}

async function errorOf(p: Promise<unknown>): Promise<Error> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(Error);
  return err as Error;
}

describe("ApiKeyStore (key store in memory)", () => {
  it("keeps only the key's hash, id and display prefix, and finds the key by itself", async () => {
    const { repository, store } = storeInMemory();
    const { key, record } = await store.create({ tenantId: "acme", quotas: { stepsPerDay: 5 } });
    const stored = repository.records.get(hashApiKey(key));
    expect(stored).toMatchObject({
      tenantId: "acme",
      name: "default",
      revoked: false,
      quotas: { stepsPerDay: 5 },
    });
    expect(JSON.stringify([...repository.records.values()])).not.toContain(key);
    expect(record.keyId).toBe(`key_${hashApiKey(key).slice(0, 12)}`);
    expect(record.keyPrefix).toBe(key.slice(0, 12));
    expect(await store.findByKey(key)).toEqual(record);
  });

  it("refuses a malformed key without asking the store, and an unknown one after one read", async () => {
    const { repository, store } = storeInMemory();
    expect(await store.findByKey("ce_live_short")).toBeUndefined();
    expect(repository.calls.total()).toBe(0);
    expect(await store.findByKey(generateApiKey())).toBeUndefined();
    expect(repository.calls.of("findByHash")).toBe(1);
  });

  it("does not answer for a stored record whose hash differs from the one asked for", async () => {
    const { repository, store } = storeInMemory();
    const { key, record } = await store.create({ tenantId: "acme" });
    // A store answering a different record under this hash (a corrupted item) is not trusted.
    const other = hashApiKey(generateApiKey());
    repository.records.set(other, { ...record });
    expect(await store.findByHash(other)).toBeUndefined();
    expect(await store.findByKey(key)).toBeDefined();
  });

  it("refuses an invalid tenant id before writing anything", async () => {
    const { repository, store } = storeInMemory();
    await expect(store.create({ tenantId: "a#b" })).rejects.toThrow(/Invalid tenant id/);
    expect(repository.calls.of("insert")).toBe(0);
  });

  it("lists keys oldest first, optionally of one tenant", async () => {
    const { store, tick } = storeInMemory();
    const first = (await store.create({ tenantId: "b" })).record;
    tick();
    const second = (await store.create({ tenantId: "a" })).record;
    tick();
    const third = (await store.create({ tenantId: "b" })).record;
    expect((await store.list()).map((r) => r.keyId)).toEqual([first.keyId, second.keyId, third.keyId]);
    expect((await store.list({ tenantId: "b" })).map((r) => r.keyId)).toEqual([first.keyId, third.keyId]);
  });

  it("revokes by key, hash, key id or unique prefix, keeping the first revocation time", async () => {
    const { store, tick } = storeInMemory();
    const { key, record } = await store.create({ tenantId: "acme" });
    const byId = await store.revoke(record.keyId);
    expect(byId.revoked).toBe(true);
    const firstAt = byId.revokedAt;
    tick();
    for (const ref of [key, record.keyHash, record.keyPrefix]) {
      expect((await store.revoke(ref)).revokedAt).toBe(firstAt);
    }
  });

  it("says which keys an ambiguous prefix matches, and refuses unknown references", async () => {
    const { repository, store } = storeInMemory();
    const a = (await store.create({ tenantId: "acme" })).record;
    const b = (await store.create({ tenantId: "acme" })).record;
    repository.records.set(b.keyHash, { ...b, keyPrefix: a.keyPrefix });
    const ambiguous = await errorOf(store.revoke(a.keyPrefix));
    expect(ambiguous.message).toMatch(/matches 2 keys/);
    expect(ambiguous.message).toContain(a.keyId);
    expect((await errorOf(store.revoke("key_000000000000"))).message).toMatch(/No API key matches/);
    expect((await errorOf(store.revoke(generateApiKey()))).message).toMatch(/No API key matches/);
    expect((await errorOf(store.revoke("0".repeat(64)))).message).toMatch(/No API key matches/);
  });

  it("reports a key that disappears between finding and revoking it as not matching", async () => {
    const { repository, store } = storeInMemory();
    const { key } = await store.create({ tenantId: "acme" });
    repository.markRevoked = async () => undefined; // deleted meanwhile
    expect((await errorOf(store.revoke(key))).message).toMatch(/No API key matches/);
  });
});

describe("Authenticator (key store in memory)", () => {
  const defaults = { ...BUILT_IN_QUOTAS, stepsPerDay: 100 };

  async function setUp(opts: { cacheTtlMs?: number; negativeCacheTtlMs?: number } = {}) {
    const repository = new InMemoryApiKeyRepository();
    const keys = new ApiKeyStore({ repository });
    let now = 1_000_000;
    const auth = new Authenticator({
      authRequired: true,
      keys,
      defaultQuotas: defaults,
      now: () => now,
      ...opts,
    });
    return { repository, keys, auth, advance: (ms: number) => (now += ms) };
  }

  it("resolves a key to its tenant with the key's quota overrides over the defaults", async () => {
    const { keys, auth } = await setUp();
    const { key, record } = await keys.create({ tenantId: "acme", quotas: { activeEpisodes: 3 } });
    const tenant = await auth.authenticate({ authorization: `Bearer ${key}` });
    expect(tenant).toEqual({
      tenantId: "acme",
      keyId: record.keyId,
      quotas: { ...defaults, activeEpisodes: 3 },
    });
  });

  it("answers 401 for a missing, malformed, unknown or revoked key", async () => {
    const { keys, auth } = await setUp({ cacheTtlMs: 0 });
    const { key } = await keys.create({ tenantId: "acme" });
    for (const headers of [{}, { "x-api-key": "nope" }, { "x-api-key": generateApiKey() }]) {
      await expect(auth.authenticate(headers)).rejects.toBeInstanceOf(UnauthorizedError);
    }
    await keys.revoke(key);
    await expect(auth.authenticate({ "x-api-key": key })).rejects.toBeInstanceOf(UnauthorizedError);
  });

  it("reads a key once per cache lifetime, and concurrent first requests share that read", async () => {
    const { repository, keys, auth, advance } = await setUp({ cacheTtlMs: 10_000 });
    const { key } = await keys.create({ tenantId: "acme" });
    await Promise.all(Array.from({ length: 5 }, () => auth.authenticate({ "x-api-key": key })));
    expect(repository.calls.of("findByHash")).toBe(1);
    advance(9_999);
    await auth.authenticate({ "x-api-key": key });
    expect(repository.calls.of("findByHash")).toBe(1);
    // A revocation reaches this instance when the cached entry expires.
    await keys.revoke(key);
    advance(1);
    await expect(auth.authenticate({ "x-api-key": key })).rejects.toBeInstanceOf(UnauthorizedError);
    expect(repository.calls.of("findByHash")).toBe(3); // revoke's own lookup, then the re-read
  });

  it("remembers an unknown key for the shorter negative lifetime", async () => {
    const { repository, auth, advance } = await setUp({ negativeCacheTtlMs: 2_000 });
    const unknown = generateApiKey();
    for (let i = 0; i < 3; i++) await expect(auth.authenticate({ "x-api-key": unknown })).rejects.toThrow();
    expect(repository.calls.of("findByHash")).toBe(1);
    advance(2_000);
    await expect(auth.authenticate({ "x-api-key": unknown })).rejects.toThrow();
    expect(repository.calls.of("findByHash")).toBe(2);
  });

  it("with auth off every request is the local tenant and the store is never read", async () => {
    const repository = new InMemoryApiKeyRepository();
    const keys = new ApiKeyStore({ repository });
    const auth = new Authenticator({ authRequired: false, keys, defaultQuotas: defaults });
    expect((await auth.authenticate({ "x-api-key": generateApiKey() })).tenantId).toBe("local");
    expect(repository.calls.total()).toBe(0);
  });
});
