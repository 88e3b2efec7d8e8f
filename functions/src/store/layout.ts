// Every item layout of the service table (one table, `pk`/`sk` strings, TTL attribute
// `expires_at`), in one place. docs/DATA-MODEL.md explains the choices.
//
// Episode partition `EP#<tenant>#<id>` (ids are scoped by tenant):
//   META                          head: settings, incarnation, TTL (refreshed lazily by steps)
//   M#<incarnation>#<version:10>  one immutable item per committed step: its record, the new
//                                 snapshot (inline, or the id of its chunks), recent request ids,
//                                 and its usage (tenant, day, executor_ms, state_bytes). No TTL:
//                                 history lives as long as the episode.
//   C#<snapshot id>#<nnn>         chunks of a snapshot too large to sit inline (TTL)
//   X#<ms:13>#<random>            an execution that did not commit: its usage (TTL)
//   CLAIM                         the step running now: one step at a time per episode on every API
//                                 instance (dynamodb-step-claims.ts); outside the step's Query range
// `M#` sorts just below `META`, so one descending Query on `M#`..`META` with Limit 2 reads the
// head and the latest version; incarnations start with their creation time in hex, so the latest
// incarnation's versions sort last.
//
// Tenant partition `TENANT#<id>`: `USAGE#<YYYY-MM-DD>` (usage per UTC day, rolled up from the
// change stream), `ACTIVE` (ids of possibly live episodes). API keys: `KEY#<sha256>` / `META`.
// Their attributes are in tenancy's adapters: dynamodb-usage.ts, dynamodb-active-episodes.ts,
// dynamodb-api-keys.ts; the stream records' reading in dynamodb-usage-stream.ts.

export const episodePk = (tenantId: string, id: string) => `EP#${tenantId}#${id}`;
export const HEAD_SK = "META";
export const VERSION_PREFIX = "M#";
export const CHUNK_PREFIX = "C#";
export const EXECUTION_PREFIX = "X#";
export const CLAIM_SK = "CLAIM";

export const versionPrefix = (incarnation: string) => `${VERSION_PREFIX}${incarnation}#`;
export const versionSk = (incarnation: string, version: number) =>
  `${versionPrefix(incarnation)}${String(version).padStart(10, "0")}`;
export const chunkSk = (snapshotId: string, i: number) =>
  `${CHUNK_PREFIX}${snapshotId}#${String(i).padStart(3, "0")}`;
export const executionSk = (nowMs: number, random: string) =>
  `${EXECUTION_PREFIX}${String(Math.trunc(nowMs)).padStart(13, "0")}#${random}`;

/** The version number of a version item's sort key. */
export function versionOfSk(sk: string): number {
  return Number(sk.slice(sk.lastIndexOf("#") + 1));
}
/** The incarnation of a version item's sort key. */
export function incarnationOfSk(sk: string): string {
  return sk.slice(VERSION_PREFIX.length, sk.lastIndexOf("#"));
}
/** The episode id and tenant of an episode partition key (ids never contain `#`). */
export function parseEpisodePk(pk: string): { tenantId: string; id: string } | null {
  if (!pk.startsWith("EP#")) return null;
  const last = pk.lastIndexOf("#");
  return { tenantId: pk.slice(3, last), id: pk.slice(last + 1) };
}

/** Attributes every metered item carries (version items and uncommitted executions). */
export const METER = {
  tenant: "tenant",
  day: "day",
  executorMs: "executor_ms",
  stateBytes: "state_bytes",
} as const;

export const USAGE_PREFIX = "USAGE#";
export const tenantPk = (tenantId: string) => `TENANT#${tenantId}`;

/** Key of a tenant's usage item for one UTC day. */
export function usageKey(tenantId: string, day: string): { pk: string; sk: string } {
  return { pk: tenantPk(tenantId), sk: `${USAGE_PREFIX}${day}` };
}

/** Key of an API key's item (only the key's SHA-256 is stored). */
export function apiKeyKey(keyHash: string): { pk: string; sk: string } {
  return { pk: `KEY#${keyHash}`, sk: "META" };
}

/** Key of a tenant's active-episodes item. */
export function activeEpisodesKey(tenantId: string): { pk: string; sk: string } {
  return { pk: tenantPk(tenantId), sk: "ACTIVE" };
}
