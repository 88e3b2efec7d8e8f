// Units of metering: the UTC day usage is booked on, billed milliseconds and exact GB-seconds.
// Usage is not written by steps: their items carry it and functions/src/metering/ rolls it up.

/** The UTC day a usage figure is booked on, `YYYY-MM-DD`. */
export function usageDay(at: Date): string {
  return at.toISOString().slice(0, 10);
}

/** The next UTC midnight after `at`: when the daily quotas reset. */
export function nextUtcMidnight(at: Date): Date {
  return new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), at.getUTCDate() + 1));
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
