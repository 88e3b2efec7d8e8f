import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiError, type ValidationError } from "../../functions/src/core/errors.js";
import { processStreamBatch } from "../../functions/src/metering/stream-aggregator.js";
import { DynamoDbUsageRepository } from "../../functions/src/store/dynamodb-usage.js";
import { queryUsage, usageRange } from "../../functions/src/tenancy/index.js";
import { startTestTable, type TestTable } from "./helpers/dynalite-table.js";
import { headInserted, stepInserted } from "./helpers/stream-records.js";

let table: TestTable;

beforeAll(async () => {
  table = await startTestTable();
});
afterAll(async () => {
  await table.stop();
});

/** One committed step, rolled up from its stream record as the aggregator does. */
async function step(tenantId: string, at: string, executorMs: number, stateBytes: number): Promise<void> {
  await processStreamBatch([stepInserted(tenantId, at, executorMs, stateBytes)], {
    doc: table.doc,
    tableName: table.tableName,
    executorMemoryMb: 1024,
  });
}

describe("usageRange", () => {
  const now = new Date("2026-11-27T15:00:00Z");
  it("defaults to the 30 days up to today", () => {
    expect(usageRange(undefined, undefined, now)).toEqual({ from: "2026-10-29", to: "2026-11-27" });
    expect(usageRange("2026-11-01", undefined, now)).toEqual({ from: "2026-11-01", to: "2026-11-27" });
  });

  it("answers 422 validation_error naming the parameter for malformed, impossible, reversed or too long ranges", () => {
    for (const [from, to] of [
      ["2026-11-1", undefined],
      ["2026-02-30", undefined],
      ["yesterday", undefined],
      ["2026-11-20", "2026-11-10"],
      ["2024-01-01", "2026-01-01"],
    ] as const) {
      let err: unknown;
      try {
        usageRange(from, to, now);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ApiError);
      expect((err as ApiError).status).toBe(422);
      expect((err as ApiError).code).toBe("validation_error");
      expect((err as ValidationError).issues[0]?.loc).toEqual(["query", "from"]);
    }
  });
});

describe("queryUsage", () => {
  it("returns the tenant's days in range, oldest first, with exact totals", async () => {
    // Prepare: 3 days for acme, one day outside the range, and another tenant
    await step("acme", "2026-11-01T10:00:00Z", 1, 100);
    await step("acme", "2026-11-01T23:59:59Z", 2, 100);
    await step("acme", "2026-11-03T00:00:00Z", 3, 50);
    await step("acme", "2026-11-30T00:00:00Z", 1000, 1);
    await step("other", "2026-11-01T10:00:00Z", 500, 500);
    await processStreamBatch([headInserted("acme", "e1", "2026-11-03T05:00:00Z", "0000000000010000aaaa")], {
      doc: table.doc,
      tableName: table.tableName,
    });
    // Act
    const report = await queryUsage({
      repository: new DynamoDbUsageRepository({ client: table.client, tableName: table.tableName }),
      tenantId: "acme",
      from: "2026-11-01",
      to: "2026-11-29",
    });
    // Assess
    expect(report).toEqual({
      tenant_id: "acme",
      from: "2026-11-01",
      to: "2026-11-29",
      days: [
        {
          date: "2026-11-01",
          steps: 2,
          executions: 2,
          executor_ms: 3,
          gb_seconds: 0.003,
          episodes_created: 0,
          state_bytes: 200,
        },
        {
          date: "2026-11-03",
          steps: 1,
          executions: 1,
          executor_ms: 3,
          gb_seconds: 0.003,
          episodes_created: 1,
          state_bytes: 50,
        },
      ],
      totals: {
        steps: 3,
        executions: 3,
        executor_ms: 6,
        gb_seconds: 0.006,
        episodes_created: 1,
        state_bytes: 250,
      },
    });
  });

  it("returns no days and zero totals for a tenant without usage", async () => {
    const report = await queryUsage({
      repository: new DynamoDbUsageRepository({ client: table.client, tableName: table.tableName }),
      tenantId: "nobody",
      from: "2026-11-01",
      to: "2026-11-02",
    });
    expect(report.days).toEqual([]);
    expect(report.totals).toEqual({
      steps: 0,
      executions: 0,
      executor_ms: 0,
      gb_seconds: 0,
      episodes_created: 0,
      state_bytes: 0,
    });
  });

  it("sums GB-seconds exactly over many days (no floating-point drift)", async () => {
    // 0.1 + 0.2 style sums: 1 ms at 1024 MB is 0.001 GB-s; 300 of them are exactly 0.3.
    const steps: Promise<void>[] = [];
    for (let d = 1; d <= 30; d++) {
      for (let i = 0; i < 10; i++)
        steps.push(step("t-exact", `2026-09-${String(d).padStart(2, "0")}T12:00:00Z`, 1, 0));
    }
    await Promise.all(steps);
    expect(Array.from({ length: 300 }, () => 0.001).reduce((a, b) => a + b)).not.toBe(0.3); // floats would drift
    const report = await queryUsage({
      repository: new DynamoDbUsageRepository({ client: table.client, tableName: table.tableName }),
      tenantId: "t-exact",
      from: "2026-09-01",
      to: "2026-09-30",
    });
    expect(report.days).toHaveLength(30);
    expect(report.totals.gb_seconds).toBe(0.3);
    expect(report.totals.steps).toBe(300);
  });
});
