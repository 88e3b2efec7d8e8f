// HostedTenancy's hooks with real transactions: the local DynamoDB (dynalite behind the API's
// TransactWriteItems front), the same one `npm start` runs.

import { TransactionCanceledException } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient, TransactWriteCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiError } from "../../functions/src/core/errors.js";
import { type DynaliteHandle, startDynalite } from "../../functions/src/local/dynalite-server.js";
import { episodePk } from "../../functions/src/store/episode-store.js";
import {
  BUILT_IN_QUOTAS,
  type DocTransactItem,
  HostedTenancy,
  QuotaExceededError,
  retryTransactionConflicts,
  StateQuotaExceededError,
} from "../../functions/src/tenancy/index.js";
import { clientFor, createServiceTable } from "./helpers/dynalite-table.js";

const tableName = "coding-env-hosted";
let ddb: DynaliteHandle;
let doc: DynamoDBDocumentClient;
let tenancy: HostedTenancy;
const nowMs = Date.parse("2026-11-27T12:00:00Z");

beforeAll(async () => {
  ddb = await startDynalite({ path: null });
  const client = clientFor(ddb.endpoint);
  await createServiceTable(client, tableName);
  doc = DynamoDBDocumentClient.from(client);
  tenancy = new HostedTenancy({
    client,
    tableName,
    authRequired: true,
    executorMemoryMb: 2048,
    defaultQuotas: { ...BUILT_IN_QUOTAS, stepsPerDay: 3, activeEpisodes: 2, maxStateBytes: 100 },
    env: {},
    now: () => nowMs,
  });
});
afterAll(async () => {
  doc.destroy();
  await ddb.stop();
});

/** A stand-in for the store's episode write: the META item, then tenancy's items, in one transaction. */
function writeEpisode(tenantId: string, id: string, expiresAtS = nowMs / 1000 + 3600) {
  return async (extra: readonly DocTransactItem[]) => {
    await doc.send(
      new TransactWriteCommand({
        TransactItems: [
          {
            Put: {
              TableName: tableName,
              Item: { pk: episodePk(tenantId, id), sk: "META", tenant_id: tenantId, expires_at: expiresAtS },
            },
          },
          ...extra,
        ],
      }),
    );
    return id;
  };
}

async function rejectionOf(p: Promise<unknown>): Promise<ApiError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApiError);
  return err as ApiError;
}

describe("HostedTenancy hooks in real transactions", () => {
  it("createEpisode admits up to active_episodes, then 429; an expired episode's slot is reclaimed", async () => {
    const ctx = (episodeId: string) => ({ tenantId: "t1", episodeId, stateBytes: 0, nowMs });
    expect(await tenancy.createEpisode(ctx("e1"), writeEpisode("t1", "e1", nowMs / 1000 - 1))).toBe("e1"); // expired at once
    expect(await tenancy.createEpisode(ctx("e2"), writeEpisode("t1", "e2"))).toBe("e2");
    // e1 is past expires_at: pruning frees its slot and the reset goes through.
    expect(await tenancy.createEpisode(ctx("e3"), writeEpisode("t1", "e3"))).toBe("e3");
    const err = await rejectionOf(tenancy.createEpisode(ctx("e4"), writeEpisode("t1", "e4")));
    expect(err).toBeInstanceOf(QuotaExceededError);
    expect(err.details).toMatchObject({
      quota: "active_episodes",
      limit: 2,
      resets_at: new Date(nowMs + 3_600_000).toISOString(),
    });
    // Nothing of the refused reset was written.
    const usage = await tenancy.usage("t1", "2026-11-27", "2026-11-27");
    expect(usage.totals.episodes_created).toBe(3);
  });

  it("deleteEpisode frees the slot in the same transaction", async () => {
    const ctx = (episodeId: string) => ({ tenantId: "t2", episodeId, stateBytes: 0, nowMs });
    await tenancy.createEpisode(ctx("d1"), writeEpisode("t2", "d1"));
    await tenancy.createEpisode(ctx("d2"), writeEpisode("t2", "d2"));
    await tenancy.deleteEpisode({ tenantId: "t2", episodeId: "d1" }, async (extra) => {
      await doc.send(
        new TransactWriteCommand({
          TransactItems: [
            { Delete: { TableName: tableName, Key: { pk: episodePk("t2", "d1"), sk: "META" } } },
            ...extra,
          ],
        }),
      );
    });
    expect((await tenancy.active.listed("t2")).ids).toEqual(["d2"]);
    expect(await tenancy.createEpisode(ctx("d3"), writeEpisode("t2", "d3"))).toBe("d3");
  });

  it("commitStep meters each step and answers 429 after steps_per_day, then refuses before executing", async () => {
    const step = (ms: number) =>
      tenancy.commitStep({ tenantId: "t3", executorMs: ms, stateBytes: 10, nowMs }, async (extra) => {
        await doc.send(
          new TransactWriteCommand({
            TransactItems: [
              { Put: { TableName: tableName, Item: { pk: "EP#s", sk: `STEP#${Math.random()}` } } },
              ...extra,
            ],
          }),
        );
        return "committed";
      });
    for (const ms of [1, 2, 3]) expect(await step(ms)).toBe("committed");
    const err = await rejectionOf(step(4));
    expect(err.status).toBe(429);
    expect(err.details).toEqual({ quota: "steps_per_day", limit: 3, resets_at: "2026-11-28T00:00:00.000Z" });
    expect(err.headers?.["Retry-After"]).toBe(String(12 * 3600));
    expect(() => tenancy.beforeStep({ tenantId: "t3", nowMs })).toThrow(QuotaExceededError);
    expect(() => tenancy.beforeStep({ tenantId: "t-other", nowMs })).not.toThrow();
    const usage = await tenancy.usage("t3", undefined, "2026-11-27");
    expect(usage.totals).toEqual({
      steps: 3,
      executor_ms: 6,
      gb_seconds: 0.012,
      episodes_created: 0,
      state_bytes: 30,
    });
  });

  it("commitStep refuses state over max_state_bytes with 413 before writing anything", async () => {
    let wrote = false;
    const err = await rejectionOf(
      tenancy.commitStep({ tenantId: "t4", executorMs: 1, stateBytes: 101, nowMs }, async () => {
        wrote = true;
      }),
    );
    expect(err).toBeInstanceOf(StateQuotaExceededError);
    expect(err.status).toBe(413);
    expect(wrote).toBe(false);
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

  it("stepTimeoutForReset: 429 over the quota, the default capped at it", () => {
    const custom = { ...BUILT_IN_QUOTAS, maxStepTimeoutS: 5 };
    return tenancy.runAs({ tenantId: "t7", keyId: "key_y", quotas: custom }, async () => {
      expect(tenancy.stepTimeoutForReset("t7", undefined, 30)).toBe(5);
      expect(tenancy.stepTimeoutForReset("t7", 4, 30)).toBe(4);
      expect(() => tenancy.stepTimeoutForReset("t7", 6, 30)).toThrow(QuotaExceededError);
    });
  });

  it("the local tenant (auth off) is metered but unlimited unless a quota is set in the environment", async () => {
    const local = new HostedTenancy({
      client: clientFor(ddb.endpoint),
      tableName,
      authRequired: false,
      executorMemoryMb: 1024,
      env: { CODING_ENV_QUOTA_MAX_STATE_BYTES: "1000" },
    });
    const tenant = await local.authenticate({});
    expect(tenant.tenantId).toBe("local");
    expect(tenant.quotas.stepsPerDay).toBe(Number.POSITIVE_INFINITY);
    expect(tenant.quotas.maxStateBytes).toBe(1000);
    for (let i = 0; i < 5; i++) {
      await local.createEpisode(
        { tenantId: "local", episodeId: `l${i}`, stateBytes: 0, nowMs: Date.now() },
        writeEpisode("local", `l${i}`),
      );
    }
    expect((await local.active.listed("local")).ids).toEqual([]); // not tracked: nothing to grow
    expect((await local.usage("local", undefined, undefined)).totals.episodes_created).toBe(5);
  });
});

describe("CODING_ENV_METERING", () => {
  it("off (local stack only) writes no usage items; it is refused with auth on or a bad value", async () => {
    const client = clientFor(ddb.endpoint);
    const unmetered = new HostedTenancy({
      client,
      tableName,
      authRequired: false,
      executorMemoryMb: 1024,
      env: { CODING_ENV_METERING: "off" },
    });
    expect(unmetered.metering).toBe(false);
    const seen: Array<readonly DocTransactItem[]> = [];
    const capture = async (extra: readonly DocTransactItem[]) => {
      seen.push(extra);
    };
    await unmetered.createEpisode({ tenantId: "local", episodeId: "m1", stateBytes: 0, nowMs }, capture);
    await unmetered.commitStep({ tenantId: "local", executorMs: 5, stateBytes: 5, nowMs }, capture);
    expect(seen).toEqual([[], []]);
    const base = { client, tableName, executorMemoryMb: 1024 };
    expect(
      () => new HostedTenancy({ ...base, authRequired: true, env: { CODING_ENV_METERING: "off" } }),
    ).toThrow(/metering/);
    expect(
      () => new HostedTenancy({ ...base, authRequired: false, env: { CODING_ENV_METERING: "no" } }),
    ).toThrow(/CODING_ENV_METERING/);
    expect(new HostedTenancy({ ...base, authRequired: true, env: {} }).metering).toBe(true);
  });
});

describe("retryTransactionConflicts (simulated AWS TransactionConflict: built by hand, dynalite never conflicts)", () => {
  const conflict = () =>
    new TransactionCanceledException({
      message: "Transaction cancelled",
      $metadata: {},
      CancellationReasons: [{ Code: "None" }, { Code: "TransactionConflict" }],
    });

  it("re-sends a transaction cancelled only by a conflict, up to maxAttempts", async () => {
    let calls = 0;
    const result = await retryTransactionConflicts(
      async () => {
        calls++;
        if (calls < 3) throw conflict();
        return "ok";
      },
      { baseDelayMs: 1 },
    );
    expect(result).toBe("ok");
    expect(calls).toBe(3);
    calls = 0;
    await expect(
      retryTransactionConflicts(
        async () => {
          calls++;
          throw conflict();
        },
        { maxAttempts: 4, baseDelayMs: 1 },
      ),
    ).rejects.toBeInstanceOf(TransactionCanceledException);
    expect(calls).toBe(4);
  });

  it("does not retry any other failure", async () => {
    let calls = 0;
    await expect(
      retryTransactionConflicts(async () => {
        calls++;
        throw new Error("boom");
      }),
    ).rejects.toThrow("boom");
    expect(calls).toBe(1);
  });
});
