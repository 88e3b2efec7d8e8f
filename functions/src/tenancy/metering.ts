import type { CancellationReason } from "@aws-sdk/client-dynamodb";
import { NumberValue, type TransactWriteCommandInput } from "@aws-sdk/lib-dynamodb";
import { QuotaExceededError } from "./errors.js";

/**
 * One item of a `TransactWriteCommand` (lib-dynamodb's document form, native JS values), the form the
 * API's episode store sends; the same type as its `TransactItem`.
 */
export type DocTransactItem = NonNullable<TransactWriteCommandInput["TransactItems"]>[number];

/** The UTC day a usage figure is booked on, `YYYY-MM-DD`. */
export function usageDay(at: Date): string {
  return at.toISOString().slice(0, 10);
}

/** The next UTC midnight after `at`: when the daily quotas reset. */
export function nextUtcMidnight(at: Date): Date {
  return new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), at.getUTCDate() + 1));
}

/** Key of a tenant's usage item for one day. */
export function usageKey(tenantId: string, day: string): { pk: string; sk: string } {
  return { pk: `TENANT#${tenantId}`, sk: `USAGE#${day}` };
}

/** GB-seconds carry 13 decimals: ms × MB / 1 024 000 is always exact at that scale (1 024 000 = 2^13·5^3). */
export const GB_SECONDS_SCALE = 13;
const GB_SECONDS_FACTOR = 10n ** BigInt(GB_SECONDS_SCALE);

/** Formats a scaled integer as a plain decimal string (`1234n`, scale 3 -> `"1.234"`). */
export function formatScaled(value: bigint, scale: number): string {
  const negative = value < 0n;
  const digits = (negative ? -value : value).toString().padStart(scale + 1, "0");
  const whole = digits.slice(0, digits.length - scale);
  const fraction = digits.slice(digits.length - scale).replace(/0+$/, "");
  return `${negative ? "-" : ""}${whole}${fraction ? `.${fraction}` : ""}`;
}

/** Parses a DynamoDB number string (plain or with exponent) into a scaled integer, truncating beyond `scale`. */
export function parseScaled(raw: string, scale: number): bigint {
  const match = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(raw.trim());
  const [, sign = "", whole = "", fraction = "", exponent = "0"] = match ?? [];
  if (!match || (whole === "" && fraction === "")) throw new Error(`Not a number: '${raw}'.`);
  const digits = `${whole}${fraction}`;
  // How many of `digits` sit before the decimal point once the value is multiplied by 10^scale.
  const pointAt = whole.length + Number(exponent) + scale;
  let integer = "0";
  if (pointAt >= digits.length) integer = digits + "0".repeat(pointAt - digits.length);
  else if (pointAt > 0) integer = digits.slice(0, pointAt);
  const value = BigInt(integer);
  return sign === "-" ? -value : value;
}

/** Billed executor milliseconds of one step: rounded up to a whole millisecond, at least 0. */
export function billedMs(durationMs: number): number {
  return Number.isFinite(durationMs) && durationMs > 0 ? Math.ceil(durationMs) : 0;
}

/** Exact GB-seconds of `executorMs` at `memoryMb`, as a decimal string for a DynamoDB `N`. */
export function gbSeconds(executorMs: number, memoryMb: number): string {
  if (!Number.isInteger(executorMs) || executorMs < 0) throw new Error("executorMs must be an integer >= 0.");
  if (!Number.isInteger(memoryMb) || memoryMb <= 0) throw new Error("memoryMb must be a positive integer.");
  return formatScaled(
    (BigInt(executorMs) * BigInt(memoryMb) * GB_SECONDS_FACTOR) / 1_024_000n,
    GB_SECONDS_SCALE,
  );
}

export interface StepUsageItemOpts {
  readonly tableName: string;
  readonly tenantId: string;
  /** When the step is committed (books it on that UTC day). */
  readonly at: Date;
  /** The executor's duration for the step, in ms (rounded up to a whole ms). */
  readonly executorMs: number;
  /** The executor's configured memory (`CODING_ENV_EXECUTOR_MEMORY_MB`). */
  readonly memoryMb: number;
  /** Bytes of Python state the step stores (the new snapshot's size). */
  readonly stateBytes: number;
  /** The tenant's daily step quota: the item's condition fails once `steps` reaches it (`Infinity`: no condition). */
  readonly stepsPerDay: number;
}

/**
 * The `TransactWriteItem` to add to a step's transaction: one `Update` on `TENANT#<id>`/`USAGE#<day>`
 * that adds 1 step, the executor ms, the GB-seconds and the state bytes, with the daily step quota
 * as its condition (`attribute_not_exists(steps) OR steps < :limit`). DynamoDB evaluates the
 * condition and the ADD atomically, so concurrent steps never over-count or overshoot the quota.
 * When it fails, the transaction is cancelled with `ConditionalCheckFailed` at this item's index:
 * see `stepQuotaErrorFromCancellation`.
 */
export function stepUsageTransactItem(opts: StepUsageItemOpts): DocTransactItem {
  const ms = billedMs(opts.executorMs);
  const day = usageDay(opts.at);
  const limited = Number.isFinite(opts.stepsPerDay);
  return {
    Update: {
      TableName: opts.tableName,
      Key: usageKey(opts.tenantId, day),
      UpdateExpression:
        "ADD steps :one, executor_ms :ms, gb_seconds :gbs, state_bytes :bytes SET tenant_id = :tenant, usage_date = :day",
      ...(limited ? { ConditionExpression: "attribute_not_exists(steps) OR steps < :limit" } : {}),
      ExpressionAttributeValues: {
        ":one": 1,
        ":ms": ms,
        // A decimal string, not a JS number: DynamoDB then sums GB-seconds exactly.
        ":gbs": NumberValue.from(gbSeconds(ms, opts.memoryMb)),
        ":bytes": Math.max(0, Math.trunc(opts.stateBytes)),
        ":tenant": opts.tenantId,
        ":day": day,
        ...(limited ? { ":limit": opts.stepsPerDay } : {}),
      },
      ...(limited ? { ReturnValuesOnConditionCheckFailure: "ALL_OLD" as const } : {}),
    },
  };
}

export interface EpisodeCreatedItemOpts {
  readonly tableName: string;
  readonly tenantId: string;
  readonly at: Date;
  /** Bytes of state the new episode stores (a fork copies its source's snapshot). @default 0 */
  readonly stateBytes?: number;
}

/** The `TransactWriteItem` for a reset or fork: adds 1 to `episodes_created` (no condition). */
export function episodeCreatedTransactItem(opts: EpisodeCreatedItemOpts): DocTransactItem {
  const day = usageDay(opts.at);
  return {
    Update: {
      TableName: opts.tableName,
      Key: usageKey(opts.tenantId, day),
      UpdateExpression:
        "ADD episodes_created :one, state_bytes :bytes SET tenant_id = :tenant, usage_date = :day",
      ExpressionAttributeValues: {
        ":one": 1,
        ":bytes": Math.max(0, Math.trunc(opts.stateBytes ?? 0)),
        ":tenant": opts.tenantId,
        ":day": day,
      },
    },
  };
}

/** The cancellation reasons of a `TransactionCanceledException` (by name, so any SDK copy matches). */
export function cancellationReasons(err: unknown): readonly CancellationReason[] | undefined {
  if (typeof err !== "object" || err === null) return undefined;
  const named = err as { name?: unknown; CancellationReasons?: unknown };
  if (named.name !== "TransactionCanceledException") return undefined;
  return Array.isArray(named.CancellationReasons) ? (named.CancellationReasons as CancellationReason[]) : [];
}

/** Whether the item at `index` failed its condition in a cancelled transaction. */
export function conditionFailedAt(err: unknown, index: number): boolean {
  return cancellationReasons(err)?.[index]?.Code === "ConditionalCheckFailed";
}

/**
 * Whether a transaction was cancelled only because another transaction was touching one of its items
 * at the same time (`TransactionConflict`, e.g. two steps of one tenant updating the same usage item).
 * Such a transaction changed nothing and can be sent again as is.
 */
export function isRetryableTransactionConflict(err: unknown): boolean {
  const reasons = cancellationReasons(err);
  if (!reasons || reasons.length === 0) return false;
  let conflict = false;
  for (const reason of reasons) {
    if (reason.Code === "TransactionConflict") conflict = true;
    else if (reason.Code && reason.Code !== "None") return false;
  }
  return conflict;
}

/**
 * The 429 for a step transaction cancelled by the usage item's quota condition at `index`, or
 * undefined when that item was not the cause (then the error is someone else's, e.g. a version 409).
 */
export function stepQuotaErrorFromCancellation(
  err: unknown,
  index: number,
  opts: { readonly stepsPerDay: number; readonly at: Date },
): QuotaExceededError | undefined {
  if (!conditionFailedAt(err, index)) return undefined;
  const resetsAt = nextUtcMidnight(opts.at);
  return new QuotaExceededError({
    quota: "steps_per_day",
    limit: opts.stepsPerDay,
    resetsAt,
    now: opts.at.getTime(),
    message:
      `Quota 'steps_per_day' exceeded: ${opts.stepsPerDay} steps per UTC day; it resets at ` +
      `${resetsAt.toISOString()}. The step was not committed and the episode is unchanged.`,
  });
}

/**
 * Remembers, per API instance, tenants whose daily step quota is used up, so their next steps are
 * refused before the executor runs (otherwise every refused step would still cost an execution).
 * Only a cancelled transaction marks a tenant, and the mark ends at the UTC midnight or when the
 * tenant's limit changes (a raised per-key quota), so it can never refuse a step DynamoDB would accept
 * for longer than the rest of that day at that limit.
 */
export class StepQuotaGate {
  private readonly exhausted = new Map<string, { day: string; limit: number }>();

  /** Throws the 429 if `tenantId` is known to be out of steps today at `stepsPerDay`. */
  assertOpen(tenantId: string, stepsPerDay: number, at: Date): void {
    const mark = this.exhausted.get(tenantId);
    if (!mark) return;
    if (mark.day !== usageDay(at) || mark.limit !== stepsPerDay) {
      this.exhausted.delete(tenantId);
      return;
    }
    const resetsAt = nextUtcMidnight(at);
    throw new QuotaExceededError({ quota: "steps_per_day", limit: stepsPerDay, resetsAt, now: at.getTime() });
  }

  /** Records that a step of `tenantId` was refused by the quota condition at `at`. */
  markExhausted(tenantId: string, stepsPerDay: number, at: Date): void {
    this.exhausted.set(tenantId, { day: usageDay(at), limit: stepsPerDay });
  }
}
