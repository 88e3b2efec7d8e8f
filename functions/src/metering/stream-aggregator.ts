// Usage roll-up from the table's change stream. Steps are metered by their own items: every
// committed step's version item and every execution that did not commit carry `tenant`, `day` and
// `executor_ms` (store/layout.ts), and a new episode head carries its `day`. A batch of stream
// records becomes one UpdateItem (ADD) per tenant and day on `TENANT#<id>`/`USAGE#<day>`, so no
// step ever writes a shared item. In AWS the stream (NEW_AND_OLD_IMAGES) invokes
// functions/src/aggregator-lambda.ts; locally the DynamoDB front emits the same records.
//
// Also: when DynamoDB's TTL removes an episode head (a REMOVE by the service), the episode's
// version items (which have no TTL, so history lives as long as the episode) are deleted here.
//
// Delivery is at least once: a batch retried after a partial failure may count its records again.
import type { AttributeValue } from "@aws-sdk/client-dynamodb";
import { type DynamoDBDocumentClient, NumberValue, UpdateCommand } from "@aws-sdk/lib-dynamodb";
import { unmarshall } from "@aws-sdk/util-dynamodb";
import { TableClient } from "../store/dynamodb-batch.js";
import { deleteEpisodeRemains } from "../store/episode-cleanup.js";
import {
  EXECUTION_PREFIX,
  HEAD_SK,
  METER,
  parseEpisodePk,
  usageKey,
  VERSION_PREFIX,
} from "../store/layout.js";
import { formatScaled, GB_SECONDS_SCALE, gbSeconds, parseScaled } from "../tenancy/metering.js";

/**
 * An item image in AttributeValue form (`{ "pk": { "S": "..." } }`). Typed loosely so both the
 * Lambda event's type and the local front's records fit; read with `unmarshall`.
 */
export type StreamImage = Readonly<Record<string, object>>;

/** One DynamoDB Streams record (images in AttributeValue form), as Lambda delivers it. */
export interface StreamRecord {
  readonly eventName: "INSERT" | "MODIFY" | "REMOVE";
  readonly dynamodb: {
    readonly Keys: StreamImage;
    readonly NewImage?: StreamImage;
    readonly OldImage?: StreamImage;
  };
  /** Present on removals by DynamoDB's TTL. */
  readonly userIdentity?: { readonly type: "Service"; readonly principalId: "dynamodb.amazonaws.com" };
}

export interface StreamAggregatorDeps {
  readonly doc: DynamoDBDocumentClient;
  readonly tableName: string;
  /** Clock (ms), unused by the roll-up itself. @default Date.now() */
  readonly nowMs?: number;
  /** The executor's memory for GB-seconds. @default CODING_ENV_EXECUTOR_MEMORY_MB or 1024 */
  readonly executorMemoryMb?: number;
}

/** Usage of one tenant on one day within a batch. */
interface DayUsage {
  tenantId: string;
  day: string;
  steps: number;
  executions: number;
  executorMs: number;
  gbSeconds: bigint;
  episodesCreated: number;
  stateBytes: number;
}

function image(raw: StreamImage | undefined): Record<string, unknown> | undefined {
  return raw ? unmarshall(raw as Record<string, AttributeValue>, { wrapNumbers: false }) : undefined;
}

function memoryMbFromEnv(): number {
  const raw = Number(process.env.CODING_ENV_EXECUTOR_MEMORY_MB ?? 1024);
  return Number.isInteger(raw) && raw > 0 ? raw : 1024;
}

/** Rolls a batch of stream records up into the usage items and cleans up expired episodes. */
export async function processStreamBatch(
  records: readonly StreamRecord[],
  deps: StreamAggregatorDeps,
): Promise<void> {
  const memoryMb = deps.executorMemoryMb ?? memoryMbFromEnv();
  const usage = new Map<string, DayUsage>();
  const expiredHeads: Array<{ pk: string; incarnation: string }> = [];
  const dayOf = (tenantId: string, day: string): DayUsage => {
    const key = `${tenantId}\u0000${day}`;
    let u = usage.get(key);
    if (!u) {
      u = {
        tenantId,
        day,
        steps: 0,
        executions: 0,
        executorMs: 0,
        gbSeconds: 0n,
        episodesCreated: 0,
        stateBytes: 0,
      };
      usage.set(key, u);
    }
    return u;
  };

  for (const record of records) {
    const next = image(record.dynamodb.NewImage);
    const prev = image(record.dynamodb.OldImage);
    const keys = image(record.dynamodb.Keys) ?? {};
    const pk = String(keys.pk ?? next?.pk ?? prev?.pk ?? "");
    const sk = String(keys.sk ?? next?.sk ?? prev?.sk ?? "");
    // Only episode partitions carry usage (API keys, tenants and connections share the table).
    if (parseEpisodePk(pk) === null) continue;
    if (record.eventName === "REMOVE") {
      if (
        sk === HEAD_SK &&
        record.userIdentity?.type === "Service" &&
        typeof prev?.incarnation === "string"
      ) {
        expiredHeads.push({ pk, incarnation: prev.incarnation });
      }
      continue;
    }
    if (!next) continue;
    if (sk === HEAD_SK) {
      // A new incarnation (reset, fork): an episode created. TTL refreshes keep the incarnation.
      if (prev?.incarnation === next.incarnation) continue;
      if (typeof next.tenant_id !== "string" || typeof next.day !== "string") continue;
      const u = dayOf(next.tenant_id, next.day);
      u.episodesCreated += 1;
      u.stateBytes += Number(next.state_bytes ?? 0);
      continue;
    }
    // Version and execution items are written once: only their INSERT counts.
    if (record.eventName !== "INSERT") continue;
    if (!sk.startsWith(VERSION_PREFIX) && !sk.startsWith(EXECUTION_PREFIX)) continue;
    const tenantId = next[METER.tenant];
    const day = next[METER.day];
    const ms = Number(next[METER.executorMs]);
    // Copies made by a fork carry no usage.
    if (typeof tenantId !== "string" || typeof day !== "string" || !Number.isInteger(ms) || ms < 0) continue;
    const u = dayOf(tenantId, day);
    u.executions += 1;
    u.executorMs += ms;
    u.gbSeconds += parseScaled(gbSeconds(ms, memoryMb), GB_SECONDS_SCALE);
    if (sk.startsWith(VERSION_PREFIX)) {
      u.steps += 1;
      u.stateBytes += Number(next[METER.stateBytes] ?? 0);
    }
  }

  await Promise.all(
    [...usage.values()].map((u) =>
      deps.doc.send(
        new UpdateCommand({
          TableName: deps.tableName,
          Key: usageKey(u.tenantId, u.day),
          UpdateExpression:
            "ADD steps :steps, executions :executions, executor_ms :ms, gb_seconds :gbs, episodes_created :created, state_bytes :bytes SET tenant_id = :tenant, usage_date = :day",
          ExpressionAttributeValues: {
            ":steps": u.steps,
            ":executions": u.executions,
            ":ms": u.executorMs,
            // A decimal string: DynamoDB sums GB-seconds exactly.
            ":gbs": NumberValue.from(formatScaled(u.gbSeconds, GB_SECONDS_SCALE)),
            ":created": u.episodesCreated,
            ":bytes": u.stateBytes,
            ":tenant": u.tenantId,
            ":day": u.day,
          },
        }),
      ),
    ),
  );

  if (expiredHeads.length > 0) {
    const table = new TableClient(deps.doc, deps.tableName);
    for (const head of expiredHeads) {
      await deleteEpisodeRemains(table, head.pk, { upToIncarnation: head.incarnation });
    }
  }
}
