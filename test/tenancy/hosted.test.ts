// HostedTenancy's hooks against a real (local, in-memory) DynamoDB: dynalite on a free port.

import { AsyncLocalStorage } from "node:async_hooks";
import { DynamoDBDocumentClient, PutCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { ApiError } from "../../functions/src/core/errors.js";
import { dynamoDbTenancyRepositories } from "../../functions/src/store/dynamodb-tenancy.js";
import { episodePk, HEAD_SK, usageKey } from "../../functions/src/store/layout.js";
import {
  BUILT_IN_QUOTAS,
  HostedTenancy,
  QuotaExceededError,
  StateQuotaExceededError,
} from "../../functions/src/tenancy/index.js";
import { startTestTable, type TestTable } from "./helpers/dynalite-table.js";

const tableName = "coding-env-hosted";
let table: TestTable;
let doc: DynamoDBDocumentClient;
let tenancy: HostedTenancy;
const nowMs = Date.parse("2026-11-27T12:00:00Z");

beforeAll(async () => {
  table = await startTestTable(tableName);
  doc = DynamoDBDocumentClient.from(table.client);
  tenancy = new HostedTenancy({
    repositories: dynamoDbTenancyRepositories({ client: table.client, tableName, now: () => nowMs }),
    authRequired: true,
    executorMemoryMb: 2048,
    defaultQuotas: {
      ...BUILT_IN_QUOTAS,
      stepsPerDay: 3,
      activeEpisodes: 2,
      maxStateBytes: 100,
      concurrentSteps: 2,
    },
    env: {},
    now: () => nowMs,
  });
});
afterAll(async () => {
  await table.stop();
});

/** An episode's head as the store writes it (the active-episode lookup reads it). */
async function putHead(tenantId: string, id: string, expiresAtS = nowMs / 1000 + 3600): Promise<void> {
  await doc.send(
    new PutCommand({
      TableName: tableName,
      Item: { pk: episodePk(tenantId, id), sk: HEAD_SK, tenant_id: tenantId, expires_at: expiresAtS },
    }),
  );
}

/** reserveEpisodeSlot then the head, as a reset does. */
async function reset(t: HostedTenancy, tenantId: string, id: string, expiresAtS?: number): Promise<string> {
  await t.reserveEpisodeSlot({ tenantId, episodeId: id, nowMs });
  await putHead(tenantId, id, expiresAtS);
  return id;
}

async function rejectionOf(p: Promise<unknown>): Promise<ApiError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApiError);
  return err as ApiError;
}

describe("HostedTenancy hooks", () => {
  it("reserveEpisodeSlot admits up to active_episodes, then 429; an expired episode's slot is reclaimed", async () => {
    expect(await reset(tenancy, "t1", "e1", nowMs / 1000 - 1)).toBe("e1"); // expired at once
    expect(await reset(tenancy, "t1", "e2")).toBe("e2");
    // e1 is past expires_at: pruning frees its slot and the reset goes through.
    expect(await reset(tenancy, "t1", "e3")).toBe("e3");
    const err = await rejectionOf(reset(tenancy, "t1", "e4"));
    expect(err).toBeInstanceOf(QuotaExceededError);
    expect(err.details).toMatchObject({
      quota: "active_episodes",
      limit: 2,
      resets_at: new Date(nowMs + 3_600_000).toISOString(),
    });
    // A reset that replaces one of its live episodes (same id) needs no new slot.
    expect(await reset(tenancy, "t1", "e3")).toBe("e3");
  });

  it("releaseEpisodeSlot frees the slot", async () => {
    await reset(tenancy, "t2", "d1");
    await reset(tenancy, "t2", "d2");
    await tenancy.releaseEpisodeSlot({ tenantId: "t2", episodeId: "d1", nowMs });
    expect((await tenancy.active.listed("t2")).ids).toEqual(["d2"]);
    expect(await reset(tenancy, "t2", "d3")).toBe("d3");
  });

  it("beginStep answers 429 once the rolled-up usage reaches steps_per_day (one cached read)", async () => {
    await doc.send(
      new PutCommand({ TableName: tableName, Item: { ...usageKey("t3", "2026-11-27"), steps: 2 } }),
    );
    const before = table.requests();
    const end = await tenancy.beginStep({ tenantId: "t3", nowMs });
    end();
    // The usage said 2 and this instance began 1 since: the next is over the quota of 3.
    const err = await rejectionOf(tenancy.beginStep({ tenantId: "t3", nowMs }));
    expect(err.status).toBe(429);
    expect(err.details).toEqual({ quota: "steps_per_day", limit: 3, resets_at: "2026-11-28T00:00:00.000Z" });
    expect(err.headers?.["Retry-After"]).toBe(String(12 * 3600));
    expect(table.requests() - before).toBe(1);
    // Another tenant is not affected.
    (await tenancy.beginStep({ tenantId: "t-other", nowMs }))();
  });

  it("beginStep caps a tenant's concurrent steps (429 concurrent_steps) until one ends", async () => {
    const first = await tenancy.beginStep({ tenantId: "t8", nowMs });
    const second = await tenancy.beginStep({ tenantId: "t8", nowMs });
    const err = await rejectionOf(tenancy.beginStep({ tenantId: "t8", nowMs }));
    expect(err.status).toBe(429);
    expect(err.details).toMatchObject({ quota: "concurrent_steps", limit: 2 });
    expect(err.headers?.["Retry-After"]).toBe("1");
    first();
    first(); // ending twice frees one slot only
    const third = await tenancy.beginStep({ tenantId: "t8", nowMs });
    await expect(tenancy.beginStep({ tenantId: "t8", nowMs })).rejects.toBeInstanceOf(QuotaExceededError);
    second();
    third();
  });

  it("checkState refuses state over max_state_bytes with 413", () => {
    expect(() => tenancy.checkState({ tenantId: "t4", stateBytes: 100 })).not.toThrow();
    let err: unknown;
    try {
      tenancy.checkState({ tenantId: "t4", stateBytes: 101 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(StateQuotaExceededError);
    expect((err as ApiError).status).toBe(413);
  });

  it("uses the calling key's quotas inside runAs, the defaults outside", async () => {
    const custom = { ...BUILT_IN_QUOTAS, stepsPerDay: 99 };
    expect(tenancy.quotasFor("t5").stepsPerDay).toBe(3);
    await tenancy.runAs({ tenantId: "t5", keyId: "key_x", quotas: custom }, async () => {
      await new Promise((r) => setTimeout(r, 1));
      expect(tenancy.quotasFor("t5").stepsPerDay).toBe(99);
      expect(tenancy.quotasFor("t6").stepsPerDay).toBe(3);
    });
  });

  it("opens a request scope only for a key whose quotas differ from the defaults", async () => {
    // A scope turns on Node's promise hooks for the whole process: none when nothing changes.
    const run = vi.spyOn(AsyncLocalStorage.prototype, "run");
    try {
      const defaults = tenancy.quotasFor("t9");
      await tenancy.runAs({ tenantId: "t9", keyId: "key_d", quotas: { ...defaults } }, async () => {
        expect(tenancy.quotasFor("t9")).toEqual(defaults);
      });
      expect(run).not.toHaveBeenCalled();
      const custom = { ...defaults, stepsPerDay: 7 };
      await tenancy.runAs({ tenantId: "t9", keyId: "key_c", quotas: custom }, async () => {
        expect(tenancy.quotasFor("t9").stepsPerDay).toBe(7);
        // Inside another key's scope a default key still gets a scope of its own (and the defaults).
        await tenancy.runAs({ tenantId: "t9", keyId: "key_d", quotas: { ...defaults } }, async () => {
          expect(tenancy.quotasFor("t9").stepsPerDay).toBe(defaults.stepsPerDay);
        });
      });
      expect(run).toHaveBeenCalledTimes(2);
    } finally {
      run.mockRestore();
    }
  });

  it("stepTimeoutForReset: 429 over the quota, the default capped at it", () => {
    const custom = { ...BUILT_IN_QUOTAS, maxStepTimeoutS: 5 };
    return tenancy.runAs({ tenantId: "t7", keyId: "key_y", quotas: custom }, async () => {
      expect(tenancy.stepTimeoutForReset("t7", undefined, 30)).toBe(5);
      expect(tenancy.stepTimeoutForReset("t7", 4, 30)).toBe(4);
      expect(() => tenancy.stepTimeoutForReset("t7", 6, 30)).toThrow(QuotaExceededError);
    });
  });

  it("the local tenant (auth off) is unlimited unless a quota is set in the environment", async () => {
    const local = new HostedTenancy({
      repositories: dynamoDbTenancyRepositories({ client: table.client, tableName }),
      authRequired: false,
      executorMemoryMb: 1024,
      env: { CODING_ENV_QUOTA_MAX_STATE_BYTES: "1000" },
    });
    const tenant = await local.authenticate({});
    expect(tenant.tenantId).toBe("local");
    expect(tenant.quotas.stepsPerDay).toBe(Number.POSITIVE_INFINITY);
    expect(tenant.quotas.concurrentSteps).toBe(Number.POSITIVE_INFINITY);
    expect(tenant.quotas.maxStateBytes).toBe(1000);
    for (let i = 0; i < 5; i++) await reset(local, "local", `l${i}`);
    // Listed (GET /episodes) but never refused: the set is capped, not the tenant.
    expect((await local.active.listed("local")).ids.sort()).toEqual(["l0", "l1", "l2", "l3", "l4"]);
    const ends = await Promise.all(
      Array.from({ length: 50 }, () => local.beginStep({ tenantId: "local", nowMs })),
    );
    for (const end of ends) end();
  });
});

describe("CODING_ENV_METERING", () => {
  it("off (local stack only) skips the daily step quota's usage read; refused with auth on or a bad value", async () => {
    const unmetered = new HostedTenancy({
      repositories: dynamoDbTenancyRepositories({ client: table.client, tableName }),
      authRequired: false,
      executorMemoryMb: 1024,
      env: { CODING_ENV_METERING: "off", CODING_ENV_QUOTA_STEPS_PER_DAY: "1" },
    });
    expect(unmetered.metering).toBe(false);
    const before = table.requests();
    for (let i = 0; i < 3; i++) (await unmetered.beginStep({ tenantId: "local", nowMs }))();
    expect(table.requests()).toBe(before);
    const base = {
      repositories: dynamoDbTenancyRepositories({ client: table.client, tableName }),
      executorMemoryMb: 1024,
    };
    expect(
      () => new HostedTenancy({ ...base, authRequired: true, env: { CODING_ENV_METERING: "off" } }),
    ).toThrow(/metering/);
    expect(
      () => new HostedTenancy({ ...base, authRequired: false, env: { CODING_ENV_METERING: "no" } }),
    ).toThrow(/CODING_ENV_METERING/);
    expect(new HostedTenancy({ ...base, authRequired: true, env: {} }).metering).toBe(true);
  });
});
