// Removing what is left of an episode once its head is gone (delete, reset of the same id, TTL).
// Version items have no TTL (history lives as long as its episode), so they are removed here:
// by the API on delete and reset, and by the stream roll-up when DynamoDB's TTL removes a head.
// Chunks and execution records carry their own TTL and are only removed here on delete.
import { DeleteCommand, ScanCommand } from "@aws-sdk/lib-dynamodb";
import type { Key, TableClient } from "./dynamodb-batch.js";
import { CLAIM_SK, HEAD_SK, incarnationOfSk, VERSION_PREFIX } from "./layout.js";

export type RemainsScope =
  /** Everything but a (new) head: after a DELETE. */
  | { readonly keepIncarnation: null }
  /** Version items of other incarnations: after a reset of the same id. */
  | { readonly keepIncarnation: string }
  /** Version items of this incarnation and older ones: after the head's TTL removal. */
  | { readonly upToIncarnation: string };

/** Deletes an episode partition's remains in `scope` (batched, unprocessed items retried). */
export async function deleteEpisodeRemains(
  table: TableClient,
  pk: string,
  scope: RemainsScope,
): Promise<number> {
  const everything = "keepIncarnation" in scope && scope.keepIncarnation === null;
  const keys: Key[] = [];
  for await (const it of table.queryAll({
    KeyConditionExpression: everything ? "pk = :pk" : "pk = :pk AND begins_with(sk, :prefix)",
    ExpressionAttributeValues: everything ? { ":pk": pk } : { ":pk": pk, ":prefix": VERSION_PREFIX },
    ProjectionExpression: "pk, sk",
  })) {
    const sk = String(it.sk);
    if (sk === HEAD_SK) continue;
    if (!everything) {
      const incarnation = incarnationOfSk(sk);
      if ("keepIncarnation" in scope && incarnation === scope.keepIncarnation) continue;
      // Newer incarnations (a reset after the expiry) sort after the removed one.
      if ("upToIncarnation" in scope && incarnation > scope.upToIncarnation) continue;
    }
    keys.push({ pk, sk });
  }
  await table.batchDelete(keys);
  return keys.length;
}

/**
 * Deletes items whose TTL has passed, and the remains of expired episodes (DynamoDB's TTL and the
 * stream roll-up do this in AWS; a local stack without them calls this on a timer). @returns count
 */
export async function sweepExpired(table: TableClient, nowMs: number): Promise<number> {
  const expired: Array<Key & { incarnation?: string }> = [];
  let startKey: Record<string, unknown> | undefined;
  do {
    const out = await table.doc.send(
      new ScanCommand({
        TableName: table.tableName,
        FilterExpression: "expires_at < :now",
        ExpressionAttributeValues: { ":now": Math.floor(nowMs / 1000) },
        ProjectionExpression: "pk, sk, incarnation",
        ExclusiveStartKey: startKey,
      }),
    );
    for (const it of out.Items ?? [])
      expired.push({
        pk: String(it.pk),
        sk: String(it.sk),
        ...(typeof it.incarnation === "string" ? { incarnation: it.incarnation } : {}),
      });
    startKey = out.LastEvaluatedKey;
  } while (startKey);
  const claims = expired.filter((k) => k.sk === CLAIM_SK);
  await table.batchDelete(expired.filter((k) => k.sk !== CLAIM_SK).map(({ pk, sk }) => ({ pk, sk })));
  // A step may have taken the claim again since the scan: deleted only if still lapsed, as
  // DynamoDB's TTL does.
  for (const { pk, sk } of claims) {
    try {
      await table.doc.send(
        new DeleteCommand({
          TableName: table.tableName,
          Key: { pk, sk },
          ConditionExpression: "expires_at < :now",
          ExpressionAttributeValues: { ":now": Math.floor(nowMs / 1000) },
        }),
      );
    } catch (err) {
      if ((err as { name?: string }).name !== "ConditionalCheckFailedException") throw err;
    }
  }
  let removed = expired.length;
  for (const head of expired) {
    if (head.sk !== HEAD_SK || head.incarnation === undefined) continue;
    removed += await deleteEpisodeRemains(table, head.pk, { upToIncarnation: head.incarnation });
  }
  return removed;
}
