// The executor governor's DynamoDB adapter (functions/src/store/dynamodb-executor-governor.ts)
// against a real dynalite: the flag's conditional mark, step slots up to a cap with every
// condition evaluated by the store, slots whose holder's time ended taken again, a release that
// frees only its own slot, and the units it bills. The branch logic above it: unit/executor-governor.test.ts.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ExecutorGovernor } from "../../functions/src/admission/executor-governor.js";
import { DynamoDbExecutorGovernorStore } from "../../functions/src/store/dynamodb-executor-governor.js";
import { startTestTable, type TestTable } from "./helpers/dynalite-table.js";

let table: TestTable;
const T0 = Date.parse("2026-12-02T06:00:00Z");

beforeAll(async () => {
  table = await startTestTable();
});
afterAll(async () => {
  await table.stop();
});

const storeOf = () => new DynamoDbExecutorGovernorStore({ client: table.client, tableName: table.tableName });

describe("DynamoDbExecutorGovernorStore", () => {
  it("marks the flag only when it ends within the given time, and reads it back", async () => {
    const store = storeOf();
    expect(await store.readContendedUntil()).toBe(0);
    expect(await store.markContended(T0 + 30_000, T0 + 15_000)).toBe(true);
    // Another instance, 5 s later: marked until more than its keep-from time already.
    expect(await store.markContended(T0 + 35_000, T0 + 20_000)).toBe(false);
    expect(await store.readContendedUntil()).toBe(T0 + 30_000);
    // 16 s later: under half the lifetime left, so the mark is extended.
    expect(await store.markContended(T0 + 46_000, T0 + 31_000)).toBe(true);
    expect(await store.readContendedUntil()).toBe(T0 + 46_000);
  });

  it("gives at most `cap` slots of a tenant at once, each to one taker, under concurrent takes", async () => {
    const store = storeOf();
    const taken = await Promise.all(
      Array.from({ length: 12 }, () => store.takeStepSlot("flooder", 4, T0 + 10_000, T0)),
    );
    const slots = taken.filter((s) => s !== undefined);
    expect(slots.length).toBeLessThanOrEqual(4);
    expect(new Set(slots.map((s) => s.index)).size).toBe(slots.length);
    for (const s of slots) expect(s.index).toBeLessThan(4);
    // Taken one at a time, the remaining slots are found (a Query after a taken pick).
    let more = 0;
    while ((await store.takeStepSlot("flooder", 4, T0 + 10_000, T0)) !== undefined) more++;
    expect(await store.takeStepSlot("flooder", 4, T0 + 10_000, T0)).toBeUndefined();
    // One concurrent take at least won, and the cap's slots were all given, no more: a store that
    // gave nothing (or stopped short of the cap) would pass the bounds above.
    expect(slots.length).toBeGreaterThan(0);
    expect(slots.length + more).toBe(4);
    // Another tenant's slots are its own.
    expect(await store.takeStepSlot("bystander", 4, T0 + 10_000, T0)).toBeDefined();
  });

  it("frees a released slot, takes one whose holder's time ended, and a late release frees nothing", async () => {
    const store = storeOf();
    const first = await store.takeStepSlot("t1", 1, T0 + 1_000, T0);
    expect(first).toBeDefined();
    expect(await store.takeStepSlot("t1", 1, T0 + 1_000, T0 + 500)).toBeUndefined();
    // The holder's time ended: the slot is taken by another step.
    const second = await store.takeStepSlot("t1", 1, T0 + 5_000, T0 + 1_001);
    expect(second?.index).toBe(0);
    // The first holder's late release leaves the second's slot held.
    await store.releaseStepSlot(first as NonNullable<typeof first>);
    expect(await store.takeStepSlot("t1", 1, T0 + 5_000, T0 + 1_500)).toBeUndefined();
    await store.releaseStepSlot(second as NonNullable<typeof second>);
    expect(await store.takeStepSlot("t1", 1, T0 + 5_000, T0 + 1_500)).toBeDefined();
  });

  it("bills a normal-mode step nothing but a cached flag read, a governed one 2 WRU", async () => {
    const store = storeOf();
    const clock = { now: Date.now() };
    const governor = new ExecutorGovernor({ store, checkIntervalMs: 2_000, now: () => clock.now });
    // The flag marked above ended long before the real clock: normal mode.
    const before = { ...store.stats };
    for (let i = 0; i < 100; i++) await (await governor.admit("units", 8, clock.now + 1_000))();
    expect(store.stats.readUnits - before.readUnits).toBe(0.5);
    expect(store.stats.writeUnits - before.writeUnits).toBe(0);
    await governor.throttled();
    const governed = { ...store.stats };
    for (let i = 0; i < 100; i++) await (await governor.admit("units", 8, clock.now + 1_000))();
    expect((store.stats.writeUnits - governed.writeUnits) / 100).toBe(2);
    expect(store.stats.readUnits - governed.readUnits).toBe(0);
  });
});
