// Item sizes under DynamoDB's rules, as the repository bills them: checked against the local
// DynamoDB front's own implementation of the same rules (which enforces the 400 KB limit) on the
// items a step really writes, and against hand-computed cases.
import { marshall } from "@aws-sdk/util-dynamodb";
import { describe, expect, it } from "vitest";
import { itemSize } from "../../functions/src/local/dynamodb-rules.js";
import { itemBytes, numberBytes, readUnits, writeUnits } from "../../functions/src/store/item-size.js";

/** AttributeValue form as it goes over the wire (binary as base64), the front's input. */
function wireForm(item: Record<string, unknown>): Record<string, Record<string, unknown>> {
  return JSON.parse(
    JSON.stringify(marshall(item, { removeUndefinedValues: true }), (_k, v: unknown) =>
      v instanceof Uint8Array || (v && typeof v === "object" && (v as { type?: string }).type === "Buffer")
        ? Buffer.from((v as { data?: number[] }).data ?? (v as Uint8Array)).toString("base64")
        : v,
    ),
  ) as Record<string, Record<string, unknown>>;
}

describe("item sizes", () => {
  it("counts names, UTF-8 strings, binary, numbers, lists and maps as DynamoDB does", () => {
    expect(itemBytes({ a: "é" })).toBe(1 + 2);
    expect(itemBytes({ bin: new Uint8Array(10) })).toBe(3 + 10);
    expect(itemBytes({ n: 12345 })).toBe(1 + 1 + 3);
    expect(itemBytes({ l: ["ab", 1] })).toBe(1 + 3 + (1 + 2) + (1 + 2));
    expect(itemBytes({ m: { k: "v" } })).toBe(1 + 3 + (1 + 1 + 1));
    expect(numberBytes("0")).toBe(1);
    expect(numberBytes("-1.50")).toBe(1 + 1 + 1);
    expect(writeUnits(1024)).toBe(1);
    expect(writeUnits(1025)).toBe(2);
    expect(writeUnits(100, true)).toBe(2);
    expect(readUnits(4096, true)).toBe(1);
    expect(readUnits(4097, false)).toBe(1);
  });

  it("agrees with the local DynamoDB front on the items a step writes", () => {
    const items: Record<string, unknown>[] = [
      {
        pk: "EP#acme#ep_0123456789abcdef01234567",
        sk: "M#0193a1b2c3d4e5f60718#0000000021",
        tenant: "acme",
        day: "2026-12-02",
        executor_ms: 1,
        state_bytes: 120,
        at: 1764637200123,
        rec: new Uint8Array(250),
        snap: new Uint8Array(120),
        rids: new Uint8Array(192),
      },
      {
        pk: "EP#acme#ep_0123456789abcdef01234567",
        sk: "META",
        tenant_id: "acme",
        incarnation: "0193a1b2c3d4e5f60718",
        policy: "openenv",
        additional_imports: ["numpy", "pandas"],
        step_timeout_s: 25,
        ttl_s: 86400,
        seed: -7,
        created_at_ms: 1764637200000,
        expires_at: 1764723600,
        day: "2026-12-02",
      },
      {
        pk: "TENANT#acme",
        sk: "USAGE#2026-12-02",
        steps: 0,
        gb_seconds: 0.0123456789012,
        nested: { a: [1, "x"] },
      },
    ];
    for (const item of items) expect(itemBytes(item)).toBe(itemSize(wireForm(item)));
  });
});
