// DynamoDB Streams records as the store's writes produce them (images in AttributeValue form), for
// feeding the usage roll-up (`processStreamBatch`) in tests.
import { randomBytes } from "node:crypto";
import { marshall } from "@aws-sdk/util-dynamodb";
import type { StreamRecord } from "../../../functions/src/metering/stream-aggregator.js";
import { episodePk, executionSk, HEAD_SK, versionSk } from "../../../functions/src/store/layout.js";

const keysOf = (item: Record<string, unknown>) => marshall({ pk: item.pk, sk: item.sk });

export function insertOf(item: Record<string, unknown>): StreamRecord {
  return { eventName: "INSERT", dynamodb: { Keys: keysOf(item), NewImage: marshall(item) } };
}

/** A committed step's version item (metered) at `at`. */
export function stepInserted(
  tenantId: string,
  at: string,
  executorMs: number,
  stateBytes: number,
): StreamRecord {
  const nowMs = Date.parse(at);
  return insertOf({
    pk: episodePk(tenantId, "ep"),
    sk: versionSk(`${nowMs.toString(16).padStart(12, "0")}00000000`, 1 + Math.floor(Math.random() * 1e6)),
    tenant: tenantId,
    day: at.slice(0, 10),
    executor_ms: executorMs,
    state_bytes: stateBytes,
    at: nowMs,
    rec: "{}",
  });
}

/** An execution that did not commit. */
export function executionInserted(tenantId: string, at: string, executorMs: number): StreamRecord {
  const nowMs = Date.parse(at);
  return insertOf({
    pk: episodePk(tenantId, "ep"),
    sk: executionSk(nowMs, randomBytes(4).toString("hex")),
    tenant: tenantId,
    day: at.slice(0, 10),
    executor_ms: executorMs,
    reason: "conflict",
  });
}

/** A new episode head (reset or fork). */
export function headInserted(
  tenantId: string,
  id: string,
  at: string,
  incarnation: string,
  stateBytes = 0,
): StreamRecord {
  return insertOf({
    pk: episodePk(tenantId, id),
    sk: HEAD_SK,
    tenant_id: tenantId,
    incarnation,
    day: at.slice(0, 10),
    expires_at: Math.floor(Date.parse(at) / 1000) + 3600,
    ...(stateBytes > 0 ? { state_bytes: stateBytes } : {}),
  });
}
