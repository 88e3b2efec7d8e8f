// The local stand-in for a DynamoDB stream trigger: every change record reaches the consumer once,
// even when a flush (tests, `stop`) and the pump's own timer run at the same time.
import { describe, expect, it } from "vitest";
import type { ChangeRecord } from "../../functions/src/local/dynamodb-rules.js";
import { startStreamPump } from "../../functions/src/local/stream-pump.js";

function record(n: number): ChangeRecord {
  return {
    eventID: `e${n}`,
    eventName: "INSERT",
    eventVersion: "1.1",
    eventSource: "aws:dynamodb",
    awsRegion: "local",
    eventSourceARN: "arn:aws:dynamodb:local:000000000000:table/episodes/stream/local",
    dynamodb: {
      ApproximateCreationDateTime: 0,
      Keys: { pk: { S: `p${n}` }, sk: { S: "s" } },
      SequenceNumber: String(n),
      SizeBytes: 10,
      StreamViewType: "NEW_AND_OLD_IMAGES",
    },
  };
}

describe("stream pump", () => {
  it("hands each record to the consumer once while a flush and timer ticks overlap", async () => {
    // Prepare: a slow consumer and a timer that ticks many times during one batch.
    const seen: string[] = [];
    const pump = startStreamPump({
      intervalMs: 2,
      process: async (records) => {
        await new Promise((r) => setTimeout(r, 40));
        seen.push(...records.map((r) => r.eventID));
      },
    });
    try {
      // Act
      pump.push([record(1), record(2)]);
      await pump.flush();
      pump.push([record(3)]);
      await pump.flush();
      // Assess
      expect(seen).toEqual(["e1", "e2", "e3"]);
    } finally {
      await pump.stop();
    }
    expect(seen).toEqual(["e1", "e2", "e3"]);
  });

  it("a failing batch fails the flush and is retried, not dropped", async () => {
    // Prepare
    let fail = true;
    const seen: string[] = [];
    const pump = startStreamPump({
      intervalMs: 60_000,
      onError: () => undefined,
      process: async (records) => {
        if (fail) throw new Error("consumer down");
        seen.push(...records.map((r) => r.eventID));
      },
    });
    try {
      pump.push([record(1)]);
      // Act + Assess
      await expect(pump.flush()).rejects.toThrow("consumer down");
      fail = false;
      await pump.flush();
      expect(seen).toEqual(["e1"]);
    } finally {
      await pump.stop();
    }
  });
});
