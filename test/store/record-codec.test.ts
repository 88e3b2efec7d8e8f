// Step records in their version items (store/record-codec.ts): a gzip'ed record decodes to what was
// encoded, whether this process wrote it (remembered: no gunzip) or another one did.
import { gzipSync } from "node:zlib";
import { describe, expect, it, vi } from "vitest";

const gunzips = vi.hoisted(() => ({ count: 0 }));
vi.mock("node:zlib", async (importOriginal) => {
  const zlib = await importOriginal<typeof import("node:zlib")>();
  return {
    ...zlib,
    gunzipSync: (...args: Parameters<typeof zlib.gunzipSync>) => {
      gunzips.count++;
      return zlib.gunzipSync(...args);
    },
  };
});

const { decodeRecord, encodeRecord } = await import("../../functions/src/store/record-codec.js");
type StepRecord = Parameters<typeof encodeRecord>[0];

const record = (code: string): StepRecord =>
  ({
    step: 7,
    code,
    observation: { stdout: "1\n".repeat(40), stderr: "", exit_code: 0 },
    reward: 0.1,
    done: false,
    metadata: { last_code: code },
    info: {
      duration_ms: 3.5,
      timed_out: false,
      stdout_truncated: false,
      stderr_truncated: false,
      dropped_variables: [],
    },
  }) as unknown as StepRecord;

describe("record codec", () => {
  it("decodes a record this process encoded without gunzip, and equal to what was encoded", () => {
    const rec = record("print(1)");
    const stored = encodeRecord(rec);
    expect(stored).toBeInstanceOf(Uint8Array);
    gunzips.count = 0;
    // As DynamoDB returns it: other bytes, the same content.
    const read = decodeRecord(7, new Uint8Array(Buffer.from(stored as Uint8Array)));
    expect(gunzips.count).toBe(0);
    expect(read).toEqual(rec);
  });

  it("decodes a record another process encoded (gunzip), the same way", () => {
    const rec = record("print(2)");
    const { step: _step, ...stored } = rec;
    const { last_code: _lc, ...metadata } = stored.metadata as Record<string, unknown>;
    const elsewhere = gzipSync(JSON.stringify({ ...stored, metadata, lc: true }));
    gunzips.count = 0;
    expect(decodeRecord(7, new Uint8Array(elsewhere))).toEqual(rec);
    expect(gunzips.count).toBe(1);
  });
});
