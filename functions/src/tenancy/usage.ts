import { ValidationError } from "../core/errors.js";
import { formatScaled, GB_SECONDS_SCALE, parseScaled, usageDay } from "./metering.js";
import type { UsageRepository } from "./repositories.js";

/** One day of a tenant's usage, as `GET /usage` returns it. */
export interface UsageFigures {
  /** Committed steps. */
  readonly steps: number;
  /** Executor runs: committed steps and executions that did not commit (lost race, 413, error). */
  readonly executions: number;
  readonly executor_ms: number;
  readonly gb_seconds: number;
  readonly episodes_created: number;
  readonly state_bytes: number;
}

export interface UsageDay extends UsageFigures {
  readonly date: string;
}

/** The body of `GET /usage` (`docs/API.md`). `days` lists only days with recorded usage, oldest first. */
export interface UsageReport {
  readonly tenant_id: string;
  readonly from: string;
  readonly to: string;
  readonly days: UsageDay[];
  readonly totals: UsageFigures;
}

/** Longest range one `GET /usage` may ask for, in days. */
export const MAX_USAGE_RANGE_DAYS = 366;
/** Range when `from` is omitted: the last 30 days up to `to`. */
export const DEFAULT_USAGE_RANGE_DAYS = 30;

const DAY_MS = 86_400_000;
const DATE_PATTERN = /^\d{4}-\d{2}-\d{2}$/;

/** 422 `validation_error` naming the query parameter, in FastAPI's `detail` shape like every query error. */
function invalidQuery(name: "from" | "to", msg: string): ValidationError {
  return new ValidationError([{ loc: ["query", name], msg, type: "value_error" }]);
}

function parseDay(name: "from" | "to", raw: string): Date {
  const date = new Date(`${raw}T00:00:00Z`);
  if (!DATE_PATTERN.test(raw) || Number.isNaN(date.getTime()) || usageDay(date) !== raw) {
    throw invalidQuery(name, `'${name}' must be a date YYYY-MM-DD, got '${raw.slice(0, 40)}'.`);
  }
  return date;
}

/**
 * Validates `from`/`to` (inclusive UTC days). Defaults: `to` = today, `from` = 29 days before `to`.
 * Throws a `ValidationError` (422, as every malformed query) for a malformed date, `from` after `to`, or a range over
 * `MAX_USAGE_RANGE_DAYS`.
 */
export function usageRange(
  from: string | undefined,
  to: string | undefined,
  now: Date = new Date(),
): { from: string; to: string } {
  const toDate = to ? parseDay("to", to) : new Date(`${usageDay(now)}T00:00:00Z`);
  const fromDate = from
    ? parseDay("from", from)
    : new Date(toDate.getTime() - (DEFAULT_USAGE_RANGE_DAYS - 1) * DAY_MS);
  if (fromDate > toDate) throw invalidQuery("from", "'from' must not be after 'to'.");
  if ((toDate.getTime() - fromDate.getTime()) / DAY_MS + 1 > MAX_USAGE_RANGE_DAYS) {
    throw invalidQuery("from", `A usage range may span at most ${MAX_USAGE_RANGE_DAYS} days.`);
  }
  return { from: usageDay(fromDate), to: usageDay(toDate) };
}

export interface QueryUsageOpts {
  /** Where usage is kept (DynamoDB: `store/dynamodb-usage.ts`). */
  readonly repository: UsageRepository;
  readonly tenantId: string;
  /** First day, `YYYY-MM-DD` (inclusive). @default 29 days before `to` */
  readonly from?: string;
  /** Last day, `YYYY-MM-DD` (inclusive). @default today (UTC) */
  readonly to?: string;
  /** Clock, for the defaults. @default new Date() */
  readonly now?: Date;
}

function integerOf(value: string | undefined): bigint {
  return value === undefined ? 0n : parseScaled(value, 0);
}

/**
 * A tenant's usage per day and in total, from the stored days `from`..`to` (on DynamoDB one
 * strongly consistent Query on `TENANT#<id>`). Sums are exact (integers as BigInt, GB-seconds at
 * 13 decimals).
 *
 * @example await queryUsage({ repository, tenantId: "acme", from: "2026-11-01", to: "2026-11-30" })
 */
export async function queryUsage(opts: QueryUsageOpts): Promise<UsageReport> {
  const range = usageRange(opts.from, opts.to, opts.now);
  const days: UsageDay[] = [];
  const totals = {
    steps: 0n,
    executions: 0n,
    executor_ms: 0n,
    gb_seconds: 0n,
    episodes_created: 0n,
    state_bytes: 0n,
  };
  for (const stored of await opts.repository.days(opts.tenantId, range.from, range.to)) {
    const item = stored.figures;
    const figures = {
      steps: integerOf(item.steps),
      executions: integerOf(item.executions),
      executor_ms: integerOf(item.executor_ms),
      gb_seconds: item.gb_seconds === undefined ? 0n : parseScaled(item.gb_seconds, GB_SECONDS_SCALE),
      episodes_created: integerOf(item.episodes_created),
      state_bytes: integerOf(item.state_bytes),
    };
    totals.steps += figures.steps;
    totals.executions += figures.executions;
    totals.executor_ms += figures.executor_ms;
    totals.gb_seconds += figures.gb_seconds;
    totals.episodes_created += figures.episodes_created;
    totals.state_bytes += figures.state_bytes;
    days.push({ date: stored.date, ...toNumbers(figures) });
  }
  return { tenant_id: opts.tenantId, from: range.from, to: range.to, days, totals: toNumbers(totals) };
}

function toNumbers(figures: Record<keyof UsageFigures, bigint>): UsageFigures {
  return {
    steps: Number(figures.steps),
    executions: Number(figures.executions),
    executor_ms: Number(figures.executor_ms),
    gb_seconds: Number(formatScaled(figures.gb_seconds, GB_SECONDS_SCALE)),
    episodes_created: Number(figures.episodes_created),
    state_bytes: Number(figures.state_bytes),
  };
}
