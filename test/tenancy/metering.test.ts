import { TransactionCanceledException } from "@aws-sdk/client-dynamodb";
import { GetCommand, UpdateCommand, type UpdateCommandInput } from "@aws-sdk/lib-dynamodb";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  billedMs,
  conditionFailedAt,
  type DocTransactItem,
  episodeCreatedTransactItem,
  formatScaled,
  gbSeconds,
  isRetryableTransactionConflict,
  nextUtcMidnight,
  parseScaled,
  QuotaExceededError,
  StepQuotaGate,
  stepQuotaErrorFromCancellation,
  stepUsageTransactItem,
  usageDay,
} from "../../functions/src/tenancy/index.js";
import { startTestTable, type TestTable } from "./helpers/dynalite-table.js";

let table: TestTable;

beforeAll(async () => {
  table = await startTestTable();
});
afterAll(async () => {
  await table.stop();
});

/** Applies a transaction item's Update on its own (dynalite has no TransactWriteItems). */
async function apply(item: DocTransactItem): Promise<"ok" | "condition_failed"> {
  try {
    await table.doc.send(new UpdateCommand(item.Update as UpdateCommandInput));
    return "ok";
  } catch (err) {
    if ((err as Error).name === "ConditionalCheckFailedException") return "condition_failed";
    throw err;
  }
}

async function usageItem(tenantId: string, day: string): Promise<Record<string, unknown> | undefined> {
  const out = await table.doc.send(
    new GetCommand({
      TableName: table.tableName,
      Key: { pk: `TENANT#${tenantId}`, sk: `USAGE#${day}` },
      ConsistentRead: true,
    }),
  );
  return out.Item;
}

const at = new Date("2026-11-27T23:59:59.500Z");

describe("usage arithmetic", () => {
  it("books on the UTC day and resets at the next UTC midnight", () => {
    expect(usageDay(at)).toBe("2026-11-27");
    expect(nextUtcMidnight(at).toISOString()).toBe("2026-11-28T00:00:00.000Z");
    expect(nextUtcMidnight(new Date("2026-12-31T10:00:00Z")).toISOString()).toBe("2027-01-01T00:00:00.000Z");
  });

  it("bills whole milliseconds, rounded up", () => {
    expect(billedMs(0.42)).toBe(1);
    expect(billedMs(12)).toBe(12);
    expect(billedMs(-3)).toBe(0);
    expect(billedMs(Number.NaN)).toBe(0);
  });

  it("computes GB-seconds exactly: ms x MB / 1 024 000", () => {
    expect(gbSeconds(1000, 1024)).toBe("1");
    expect(gbSeconds(1, 1024)).toBe("0.001");
    expect(gbSeconds(1, 1)).toBe("0.0000009765625");
    expect(gbSeconds(0, 1024)).toBe("0");
    expect(() => gbSeconds(1.5, 1024)).toThrow();
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10_000_000 }), fc.integer({ min: 1, max: 10_240 }), (ms, mb) => {
        // Exact: the decimal times 1 024 000 gives back ms x MB.
        const scaled = parseScaled(gbSeconds(ms, mb), 13);
        expect(scaled * 1_024_000n).toBe(BigInt(ms) * BigInt(mb) * 10n ** 13n);
      }),
    );
  });

  it("parses and formats DynamoDB decimals", () => {
    expect(parseScaled("1.5", 3)).toBe(1500n);
    expect(parseScaled("1E-3", 3)).toBe(1n);
    expect(parseScaled("2.5e2", 0)).toBe(250n);
    expect(parseScaled("-0.25", 2)).toBe(-25n);
    expect(parseScaled("0.0001", 2)).toBe(0n);
    expect(formatScaled(1234n, 3)).toBe("1.234");
    expect(formatScaled(1000n, 3)).toBe("1");
    expect(formatScaled(5n, 3)).toBe("0.005");
    expect(() => parseScaled("abc", 2)).toThrow();
  });
});

describe("step usage item against dynalite", () => {
  it("adds one step with its ms, GB-seconds and state bytes", async () => {
    const item = stepUsageTransactItem({
      tableName: table.tableName,
      tenantId: "t-add",
      at,
      executorMs: 2.2,
      memoryMb: 1024,
      stateBytes: 300,
      stepsPerDay: 10,
    });
    expect(await apply(item)).toBe("ok");
    expect(await apply(item)).toBe("ok");
    expect(await usageItem("t-add", "2026-11-27")).toMatchObject({
      steps: 2,
      executor_ms: 6,
      gb_seconds: 0.006,
      state_bytes: 600,
      tenant_id: "t-add",
      usage_date: "2026-11-27",
    });
  });

  it("refuses the step after the daily limit, and counts exactly under concurrency", async () => {
    // Prepare: limit 25, 60 concurrent steps
    const item = stepUsageTransactItem({
      tableName: table.tableName,
      tenantId: "t-race",
      at,
      executorMs: 3,
      memoryMb: 512,
      stateBytes: 10,
      stepsPerDay: 25,
    });
    // Act
    const results = await Promise.all(Array.from({ length: 60 }, () => apply(item)));
    // Assess
    expect(results.filter((r) => r === "ok")).toHaveLength(25);
    expect(results.filter((r) => r === "condition_failed")).toHaveLength(35);
    const got = await usageItem("t-race", "2026-11-27");
    expect(got).toMatchObject({ steps: 25, executor_ms: 75, state_bytes: 250 });
    expect(got?.gb_seconds).toBe(Number(gbSeconds(75, 512)));
  });

  it("counts episodes created without touching the step quota", async () => {
    const created = episodeCreatedTransactItem({ tableName: table.tableName, tenantId: "t-eps", at });
    for (let i = 0; i < 3; i++) expect(await apply(created)).toBe("ok");
    const step = stepUsageTransactItem({
      tableName: table.tableName,
      tenantId: "t-eps",
      at,
      executorMs: 1,
      memoryMb: 1024,
      stateBytes: 0,
      stepsPerDay: 1,
    });
    expect(await apply(step)).toBe("ok");
    expect(await apply(step)).toBe("condition_failed");
    expect(await usageItem("t-eps", "2026-11-27")).toMatchObject({ episodes_created: 3, steps: 1 });
  });
});

describe("cancellation reasons (simulated AWS TransactionCanceledException: built by hand, not from DynamoDB)", () => {
  const cancelled = (codes: string[]) =>
    new TransactionCanceledException({
      message: "Transaction cancelled",
      $metadata: {},
      CancellationReasons: codes.map((Code) => ({ Code })),
    });

  it("maps the usage item's ConditionalCheckFailed to a 429 naming the quota and its reset", () => {
    const err = stepQuotaErrorFromCancellation(cancelled(["None", "None", "ConditionalCheckFailed"]), 2, {
      stepsPerDay: 5,
      at,
    });
    expect(err).toBeInstanceOf(QuotaExceededError);
    expect(err?.status).toBe(429);
    expect(err?.code).toBe("quota_exceeded");
    expect(err?.details).toEqual({ quota: "steps_per_day", limit: 5, resets_at: "2026-11-28T00:00:00.000Z" });
    expect(err?.headers).toEqual({ "Retry-After": "1" });
    expect(err?.message).toMatch(/steps_per_day.*2026-11-28T00:00:00\.000Z/);
  });

  it("does not blame the quota for another item's failure or another error", () => {
    expect(
      stepQuotaErrorFromCancellation(cancelled(["ConditionalCheckFailed", "None"]), 1, {
        stepsPerDay: 5,
        at,
      }),
    ).toBe(undefined);
    expect(stepQuotaErrorFromCancellation(new Error("boom"), 0, { stepsPerDay: 5, at })).toBeUndefined();
    expect(conditionFailedAt({ name: "TransactionCanceledException" }, 0)).toBe(false);
  });

  it("recognises a pure transaction conflict as retryable, and nothing else", () => {
    expect(isRetryableTransactionConflict(cancelled(["None", "TransactionConflict"]))).toBe(true);
    expect(isRetryableTransactionConflict(cancelled(["ConditionalCheckFailed", "TransactionConflict"]))).toBe(
      false,
    );
    expect(isRetryableTransactionConflict(cancelled(["None"]))).toBe(false);
    expect(isRetryableTransactionConflict(new Error("x"))).toBe(false);
  });
});

describe("StepQuotaGate", () => {
  it("refuses a tenant marked exhausted until UTC midnight or a changed limit", () => {
    const gate = new StepQuotaGate();
    gate.assertOpen("t", 5, at);
    gate.markExhausted("t", 5, at);
    expect(() => gate.assertOpen("t", 5, at)).toThrow(QuotaExceededError);
    gate.assertOpen("other", 5, at);
    gate.assertOpen("t", 6, at); // a raised per-key quota opens it (and clears the mark)
    gate.assertOpen("t", 5, at);
    gate.markExhausted("t", 5, at);
    gate.assertOpen("t", 5, nextUtcMidnight(at));
  });
});
