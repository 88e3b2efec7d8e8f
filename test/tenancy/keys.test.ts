import { PutItemCommand, ScanCommand } from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dynamoDbApiKeyStore } from "../../functions/src/store/dynamodb-api-keys.js";
import {
  API_KEY_PREFIX,
  type ApiKeyStore,
  generateApiKey,
  hashApiKey,
  hashesEqual,
  isWellFormedApiKey,
} from "../../functions/src/tenancy/index.js";
import { startTestTable, type TestTable } from "./helpers/dynalite-table.js";

let table: TestTable;
let store: ApiKeyStore;

beforeAll(async () => {
  table = await startTestTable();
  store = dynamoDbApiKeyStore({ client: table.client, tableName: table.tableName });
});
afterAll(async () => {
  await table.stop();
});

describe("API keys", () => {
  it("generates distinct, prefixed keys of the documented shape", () => {
    const keys = new Set(Array.from({ length: 200 }, () => generateApiKey()));
    expect(keys.size).toBe(200);
    for (const key of keys) {
      expect(key.startsWith(API_KEY_PREFIX)).toBe(true);
      expect(isWellFormedApiKey(key)).toBe(true);
    }
    expect(isWellFormedApiKey("ce_live_short")).toBe(false);
    expect(isWellFormedApiKey(`${generateApiKey()}x`)).toBe(false);
  });

  it("compares hashes in constant time and only equal hashes match", () => {
    const a = hashApiKey("a");
    expect(hashesEqual(a, hashApiKey("a"))).toBe(true);
    expect(hashesEqual(a, hashApiKey("b"))).toBe(false);
    expect(hashesEqual(a, a.slice(0, 10))).toBe(false);
    expect(hashesEqual("", "")).toBe(false);
  });

  it("stores only the hash: the key appears nowhere in the table", async () => {
    // Prepare / Act
    const { key, record } = await store.create({ tenantId: "acme", name: "ci" });
    // Assess
    expect(record.keyHash).toBe(hashApiKey(key));
    expect(record.keyId).toBe(`key_${record.keyHash.slice(0, 12)}`);
    expect(record.keyPrefix).toBe(key.slice(0, 12));
    const scan = await table.client.send(new ScanCommand({ TableName: table.tableName }));
    const dump = JSON.stringify(scan.Items);
    expect(dump).toContain(record.keyHash);
    expect(dump).not.toContain(key);
    expect(dump).not.toContain(key.slice(12));
    const item = scan.Items?.find((i) => i.pk?.S === `KEY#${record.keyHash}`);
    expect(item?.sk?.S).toBe("META");
    expect(item?.tenant_id?.S).toBe("acme");
    expect(item?.name?.S).toBe("ci");
    expect(item?.revoked?.BOOL).toBe(false);
    expect(Date.parse(item?.created_at?.S ?? "")).not.toBeNaN();
  });

  it("finds a key by the key itself, and nothing for a wrong or malformed key", async () => {
    const { key, record } = await store.create({ tenantId: "t-find", quotas: { stepsPerDay: 7 } });
    const found = await store.findByKey(key);
    expect(found).toMatchObject({ tenantId: "t-find", keyId: record.keyId, revoked: false });
    expect(found?.quotas).toEqual({ stepsPerDay: 7 });
    expect(await store.findByKey(generateApiKey())).toBeUndefined();
    expect(await store.findByKey("not-a-key")).toBeUndefined();
  });

  it("rejects a tenant id that could break the key layout", async () => {
    await expect(store.create({ tenantId: "a#b" })).rejects.toThrow(/Invalid tenant id/);
    await expect(store.create({ tenantId: "" })).rejects.toThrow(/Invalid tenant id/);
  });

  it("lists keys by tenant, oldest first, without secrets", async () => {
    const first = await store.create({ tenantId: "t-list", name: "one" });
    const second = await store.create({ tenantId: "t-list", name: "two" });
    await store.create({ tenantId: "t-other" });
    const listed = await store.list({ tenantId: "t-list" });
    expect(listed.map((r) => r.keyId).sort()).toEqual([first.record.keyId, second.record.keyId].sort());
    expect(listed.every((r) => r.tenantId === "t-list")).toBe(true);
    const all = await store.list();
    expect(all.length).toBeGreaterThanOrEqual(3);
    expect(all.some((r) => r.tenantId === "t-other")).toBe(true);
  });

  it("revokes by key id, by displayed prefix and by the key; unknown refs are an error", async () => {
    const a = await store.create({ tenantId: "t-revoke" });
    const b = await store.create({ tenantId: "t-revoke" });
    const c = await store.create({ tenantId: "t-revoke" });
    expect((await store.revoke(a.record.keyId)).revoked).toBe(true);
    expect((await store.revoke(b.key)).keyId).toBe(b.record.keyId);
    // The 12-character prefix is unique among three random keys (2^24 possibilities for the random part).
    const byPrefix = await store.revoke(c.record.keyPrefix);
    expect(byPrefix.keyId).toBe(c.record.keyId);
    for (const { key } of [a, b, c]) expect((await store.findByKey(key))?.revoked).toBe(true);
    const revokedAt = (await store.findByKey(a.key))?.revokedAt;
    expect(Date.parse(revokedAt ?? "")).not.toBeNaN();
    await expect(store.revoke("key_000000000000")).rejects.toThrow(/No API key matches/);
    await expect(store.revoke(generateApiKey())).rejects.toThrow(/No API key matches/);
  });

  it("refuses a displayed prefix that two keys share", async () => {
    // Prepare: two key items whose displayed prefixes collide (1 in 2^24 for real keys, so written directly).
    for (const n of [1, 2]) {
      const hash = hashApiKey(`collision-${n}`);
      await table.client.send(
        new PutItemCommand({
          TableName: table.tableName,
          Item: {
            pk: { S: `KEY#${hash}` },
            sk: { S: "META" },
            item_type: { S: "api_key" },
            key_hash: { S: hash },
            key_id: { S: `key_${hash.slice(0, 12)}` },
            key_prefix: { S: "ce_live_SAME" },
            tenant_id: { S: "t-collide" },
            name: { S: `k${n}` },
            created_at: { S: new Date().toISOString() },
            revoked: { BOOL: false },
          },
        }),
      );
    }
    // Act / Assess
    await expect(store.revoke("ce_live_SAME")).rejects.toThrow(/matches 2 keys/);
    expect((await store.list({ tenantId: "t-collide" })).every((r) => !r.revoked)).toBe(true);
  });
});
