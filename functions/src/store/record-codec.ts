// How a step record is kept in its version item: outputs capped for the history, the whole record
// bounded so the item always fits DynamoDB's 400 KB, gzip'ed when that is smaller, and the set of
// recent request ids that lets a retry find its step without an item per request.
import { createHash } from "node:crypto";
import { gunzipSync, gzipSync } from "node:zlib";
import type { StepRecord } from "../core/episode-repository.js";

/** stdout and stderr kept in the history, each (characters); the step's own response is complete. */
export const HISTORY_OUTPUT_CHARS = 64 * 1024;
/** Characters of display data (PNG base64, HTML...) kept in the history per step: whole bundles, in order. */
export const HISTORY_DISPLAY_CHARS = 160 * 1024;
/** Largest stored (encoded) record: the rest of a version item (snapshot inline ≤ 32 KB) fits 400 KB. */
export const MAX_RECORD_BYTES = 300 * 1024;
/**
 * Largest record as the API sends it (JSON with `metadata.last_code`, escapes counted: a NUL is 6
 * bytes), so a history page or export part of a few records always fits Lambda's 6 MB response.
 */
export const MAX_RECORD_WIRE_BYTES = 2 * 1024 * 1024;
/** Below this a record is kept as plain JSON (gzip's header costs more than it saves). */
const GZIP_FROM_BYTES = 160;

/**
 * The JSON of the gzip'ed records this process wrote lately, by their gzip bytes (as latin1 text):
 * a step reads the version the previous step wrote (its Query returns that record), and on the
 * instance that wrote it that read needs no gunzip. Only small records (a key per read costs a
 * copy of the bytes); the oldest go first.
 */
const recentGzipped = new Map<string, string>();
const RECENT_GZIPPED_ENTRIES = 256;
const RECENT_GZIPPED_MAX_BYTES = 8 * 1024;

const gzipKey = (gz: Uint8Array) => Buffer.from(gz.buffer, gz.byteOffset, gz.byteLength).toString("latin1");

function rememberGzipped(gz: Uint8Array, json: string): void {
  if (gz.byteLength > RECENT_GZIPPED_MAX_BYTES) return;
  if (recentGzipped.size >= RECENT_GZIPPED_ENTRIES) {
    const oldest = recentGzipped.keys().next();
    if (!oldest.done) recentGzipped.delete(oldest.value);
  }
  recentGzipped.set(gzipKey(gz), json);
}

function gunzipped(gz: Uint8Array): string {
  const known = gz.byteLength <= RECENT_GZIPPED_MAX_BYTES ? recentGzipped.get(gzipKey(gz)) : undefined;
  return known ?? gunzipSync(gz).toString("utf8");
}

/** Fields rebuilt on read instead of stored: the step number (the key) and metadata.last_code (= code). */
type StoredRecord = Omit<StepRecord, "step">;

/** The display bundles that fit `budget` characters of data, in order (a bundle is kept whole or not at all). */
function displayWithin(display: StepRecord["display"], budget: number): StepRecord["display"] {
  if (display === undefined) return undefined;
  const kept: NonNullable<StepRecord["display"]>[number][] = [];
  let used = 0;
  for (const bundle of display) {
    const size = Object.values(bundle.data).reduce((n, v) => n + v.length, 0);
    if (used + size > budget) break;
    used += size;
    kept.push(bundle);
  }
  return kept;
}

function cut(
  rec: StepRecord,
  codeChars: number,
  outputChars: number,
  listItems: number,
  displayChars: number,
): StepRecord {
  const dropped = rec.info.dropped_variables;
  const cutDropped = Array.isArray(dropped) && dropped.length > listItems;
  const display = displayWithin(rec.display, displayChars);
  const cutDisplay = display !== undefined && display.length !== rec.display?.length;
  const truncated =
    rec.code.length > codeChars ||
    rec.observation.stdout.length > outputChars ||
    rec.observation.stderr.length > outputChars ||
    cutDropped ||
    cutDisplay;
  if (!truncated) return rec;
  const code = rec.code.slice(0, codeChars);
  return {
    ...rec,
    code,
    metadata: rec.metadata.last_code === rec.code ? { ...rec.metadata, last_code: code } : rec.metadata,
    observation: {
      ...rec.observation,
      stdout: rec.observation.stdout.slice(0, outputChars),
      stderr: rec.observation.stderr.slice(0, outputChars),
    },
    info: cutDropped ? { ...rec.info, dropped_variables: dropped.slice(0, listItems) } : rec.info,
    ...(cutDisplay ? { display } : {}),
    history_truncated: true,
  };
}

function encodeOnce(rec: StepRecord): string | Uint8Array {
  const { step: _step, ...stored } = rec;
  const { last_code, ...metadata } = stored.metadata;
  // last_code is the code itself (OpenEnv's field): one flag instead of a second copy.
  const body: StoredRecord & { lc?: boolean } =
    last_code === rec.code ? { ...stored, metadata, lc: true } : stored;
  const json = JSON.stringify(body);
  const jsonBytes = Buffer.byteLength(json, "utf8");
  if (jsonBytes < GZIP_FROM_BYTES) return json;
  const gz = gzipSync(json, { level: 1 });
  if (gz.length >= jsonBytes) return json;
  rememberGzipped(gz, json);
  return gz;
}

/** Bytes of the record's JSON as the API sends it (see {@link MAX_RECORD_WIRE_BYTES}). */
export function recordWireBytes(rec: StepRecord): number {
  return Buffer.byteLength(JSON.stringify(rec), "utf8");
}

/**
 * Whether the record's JSON is within {@link MAX_RECORD_WIRE_BYTES}. Measured only when its long
 * strings could pass it (6 bytes per character at worst), so a usual step costs no serialization.
 */
function withinWireBytes(rec: StepRecord): boolean {
  const displayChars = (rec.display ?? []).reduce(
    (n, bundle) => n + Object.values(bundle.data).reduce((m, v) => m + v.length, 0),
    0,
  );
  const longChars =
    2 * rec.code.length + rec.observation.stdout.length + rec.observation.stderr.length + displayChars;
  return 6 * longChars + 256 * 1024 <= MAX_RECORD_WIRE_BYTES || recordWireBytes(rec) <= MAX_RECORD_WIRE_BYTES;
}

function encodedBytes(v: string | Uint8Array): number {
  return typeof v === "string" ? Buffer.byteLength(v, "utf8") : v.byteLength;
}

/**
 * The stored form of a record (the `rec` attribute): outputs over {@link HISTORY_OUTPUT_CHARS}
 * are cut, and if it is still over {@link MAX_RECORD_BYTES} the code too; each cut sets
 * `history_truncated`.
 */
export function encodeRecord(rec: StepRecord): string | Uint8Array {
  const whole = cut(rec, Number.POSITIVE_INFINITY, HISTORY_OUTPUT_CHARS, 1000, HISTORY_DISPLAY_CHARS);
  let encoded: string | Uint8Array;
  if (withinWireBytes(whole)) {
    encoded = encodeOnce(whole);
    if (encodedBytes(encoded) <= MAX_RECORD_BYTES) return encoded;
  }
  // Past here the code is at most 64 K characters: with the capped outputs and display that is
  // under MAX_RECORD_WIRE_BYTES however it escapes.
  encoded = encodeOnce(cut(rec, 64 * 1024, HISTORY_OUTPUT_CHARS, 100, 32 * 1024));
  if (encodedBytes(encoded) <= MAX_RECORD_BYTES) return encoded;
  // Only reachable with a metadata or info of pathological size: keep the essentials (and the
  // members every history record has).
  const { duration_ms, timed_out, stdout_truncated, stderr_truncated } = rec.info;
  return encodeOnce({
    ...cut(rec, 16 * 1024, 16 * 1024, 0, 0),
    metadata: {},
    info: { duration_ms, timed_out, stdout_truncated, stderr_truncated, dropped_variables: [] },
    history_truncated: true,
  });
}

export function decodeRecord(step: number, value: unknown): StepRecord {
  let json: string;
  if (typeof value === "string") json = value;
  else if (value instanceof Uint8Array) json = gunzipped(value);
  else throw new Error("corrupt step record");
  const { lc, ...stored } = JSON.parse(json) as StoredRecord & { lc?: boolean };
  return {
    step,
    ...stored,
    metadata: lc ? { ...stored.metadata, last_code: stored.code } : stored.metadata,
  };
}

// ---- Recent request ids -----------------------------------------------------------------------
// Each version item carries the request ids of the last RECENT_REQUESTS steps that had one, newest
// first, as 12-byte entries: the first 8 bytes of the id's SHA-256, then the step (uint32). A hash
// match is confirmed against the step record's own request_id, so a collision never replays.

/** How many recent request ids a retry can be answered for (older ones run again). */
export const RECENT_REQUESTS = 16;
const ENTRY_BYTES = 12;

function requestHash(requestId: string): Buffer {
  return createHash("sha256").update(requestId, "utf8").digest().subarray(0, 8);
}

/** The recent-requests attribute of version `step` given the previous version's. */
export function nextRecentRequests(
  previous: Uint8Array | undefined,
  requestId: string | undefined,
  step: number,
): Uint8Array | undefined {
  if (requestId === undefined) return previous && previous.byteLength > 0 ? previous : undefined;
  const entry = Buffer.alloc(ENTRY_BYTES);
  requestHash(requestId).copy(entry, 0);
  entry.writeUInt32BE(step, 8);
  const kept = previous
    ? Buffer.from(previous).subarray(0, (RECENT_REQUESTS - 1) * ENTRY_BYTES)
    : Buffer.alloc(0);
  return Buffer.concat([entry, kept]);
}

/** The step of `requestId` among the recent ones, or `null`. */
export function findRecentRequest(recent: Uint8Array | undefined, requestId: string): number | null {
  if (!recent) return null;
  const buf = Buffer.from(recent);
  const hash = requestHash(requestId);
  for (let off = 0; off + ENTRY_BYTES <= buf.length; off += ENTRY_BYTES) {
    if (buf.subarray(off, off + 8).equals(hash)) return buf.readUInt32BE(off + 8);
  }
  return null;
}
