// What the table's change stream says, in the roll-up's terms: DynamoDB Streams records (images in
// AttributeValue form) of this table's layout (layout.ts) turned into usage events, and the
// episodes DynamoDB's TTL removed. Every committed step's version item and every execution that did
// not commit carry `tenant`, `day` and `executor_ms` (+ `state_bytes`); a new episode head carries
// its `day` (and `tenant_id`, `state_bytes`). Other partitions (API keys, tenants, connections)
// carry no usage.
import type { AttributeValue } from "@aws-sdk/client-dynamodb";
import type { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { unmarshall } from "@aws-sdk/util-dynamodb";
import type { UsageEvent } from "../metering/usage-rollup.js";
import { TableClient } from "./dynamodb-batch.js";
import { deleteEpisodeRemains } from "./episode-cleanup.js";
import { EXECUTION_PREFIX, episodePk, HEAD_SK, METER, parseEpisodePk, VERSION_PREFIX } from "./layout.js";

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

/** An episode head removed by DynamoDB's TTL: that incarnation's (and older) items are left to delete. */
export interface ExpiredEpisode {
  readonly tenantId: string;
  readonly episodeId: string;
  readonly incarnation: string;
}

function image(raw: StreamImage | undefined): Record<string, unknown> | undefined {
  return raw ? unmarshall(raw as Record<string, AttributeValue>, { wrapNumbers: false }) : undefined;
}

/** The usage events and TTL expiries in a batch of stream records, in record order. */
export function decodeStreamRecords(records: readonly StreamRecord[]): {
  usage: UsageEvent[];
  expired: ExpiredEpisode[];
} {
  const usage: UsageEvent[] = [];
  const expired: ExpiredEpisode[] = [];
  for (const record of records) {
    const next = image(record.dynamodb.NewImage);
    const prev = image(record.dynamodb.OldImage);
    const keys = image(record.dynamodb.Keys) ?? {};
    const pk = String(keys.pk ?? next?.pk ?? prev?.pk ?? "");
    const sk = String(keys.sk ?? next?.sk ?? prev?.sk ?? "");
    // Only episode partitions carry usage (API keys, tenants and connections share the table).
    const episode = parseEpisodePk(pk);
    if (episode === null) continue;
    if (record.eventName === "REMOVE") {
      if (
        sk === HEAD_SK &&
        record.userIdentity?.type === "Service" &&
        typeof prev?.incarnation === "string"
      ) {
        expired.push({ tenantId: episode.tenantId, episodeId: episode.id, incarnation: prev.incarnation });
      }
      continue;
    }
    if (!next) continue;
    if (sk === HEAD_SK) {
      // A new incarnation (reset, fork): an episode created. TTL refreshes keep the incarnation.
      if (prev?.incarnation === next.incarnation) continue;
      if (typeof next.tenant_id !== "string" || typeof next.day !== "string") continue;
      usage.push({
        kind: "episode_created",
        tenantId: next.tenant_id,
        day: next.day,
        stateBytes: Number(next.state_bytes ?? 0),
      });
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
    const committed = sk.startsWith(VERSION_PREFIX);
    usage.push({
      kind: "execution",
      tenantId,
      day,
      executorMs: ms,
      committed,
      stateBytes: committed ? Number(next[METER.stateBytes] ?? 0) : 0,
    });
  }
  return { usage, expired };
}

/**
 * Deletes what TTL left of expired episodes: version items have no TTL (history lives as long as
 * its episode), so the incarnation's (and older) items go when its head does.
 */
export async function deleteExpiredEpisodes(
  doc: DynamoDBDocumentClient,
  tableName: string,
  expired: readonly ExpiredEpisode[],
): Promise<void> {
  if (expired.length === 0) return;
  const table = new TableClient(doc, tableName);
  for (const e of expired) {
    await deleteEpisodeRemains(table, episodePk(e.tenantId, e.episodeId), { upToIncarnation: e.incarnation });
  }
}
