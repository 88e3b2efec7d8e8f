// The local tenant's metered usage today, read through the API's /usage while the stack's roll-up
// (from the table's change feed) catches up: how the exactly-once suites count executions.
import { call } from "./api.js";

export interface Totals {
  steps: number;
  executions: number;
}

export async function usageNow(baseUrl: string): Promise<Totals> {
  const today = new Date().toISOString().slice(0, 10);
  return (await call<{ totals: Totals }>(baseUrl, "GET", `/usage?from=${today}&to=${today}`)).body.totals;
}

/** The usage once the roll-up has counted at least `steps` steps (or after 15 s of trying). */
export async function usageAtLeast(baseUrl: string, steps: number): Promise<Totals> {
  let totals: Totals = { steps: 0, executions: 0 };
  for (let i = 0; i < 150 && totals.steps < steps; i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, 100));
    totals = await usageNow(baseUrl);
  }
  return totals;
}

/** The usage once the roll-up has nothing more to count (two reads 300 ms apart agree). */
export async function settledUsage(baseUrl: string): Promise<Totals> {
  let last = await usageNow(baseUrl);
  for (let i = 0; i < 50; i++) {
    await new Promise((r) => setTimeout(r, 300));
    const now = await usageNow(baseUrl);
    if (now.steps === last.steps && now.executions === last.executions) return now;
    last = now;
  }
  return last;
}
