// DynamoDB's Time to Live for the local front (dynalite has none): the setting per table, kept
// beside the data, and the sweep that deletes expired items as the TTL service does (their REMOVE
// records carry its identity, so the stream roll-up can tell them from deletes by the API).
import { readFileSync, writeFileSync } from "node:fs";
import { type DynaliteStore, describe, keyOf, runAction } from "./dynalite-store.js";
import { type AttributeMap, OperationError, validationError } from "./dynamodb-rules.js";
import type { ReadersWriterLock } from "./item-locks.js";
import type { SingleWrite } from "./item-operations.js";

const FIVE_YEARS_S = 5 * 365 * 24 * 3600;

export interface TimeToLiveContext {
  readonly store: DynaliteStore;
  readonly commitLock: ReadersWriterLock;
  /** LevelDB folder, or null in memory. */
  readonly path: string | null;
  readonly singleWrite: SingleWrite;
}

export function timeToLive({ store, commitLock, path, singleWrite }: TimeToLiveContext): {
  updateTimeToLive(input: Record<string, unknown>): Promise<Record<string, unknown>>;
  describeTimeToLive(input: Record<string, unknown>): Promise<Record<string, unknown>>;
  sweepExpired(nowMs?: number): Promise<number>;
} {
  // Time to Live settings, kept beside the data (dynalite has no TTL).
  const ttlFile = path ? `${path.replace(/\/+$/, "")}.ttl.json` : null;
  const ttl = new Map<string, string>();
  if (ttlFile) {
    try {
      for (const [t, a] of Object.entries(
        JSON.parse(readFileSync(ttlFile, "utf8")) as Record<string, string>,
      ))
        ttl.set(t, a);
    } catch {
      /* none yet */
    }
  }

  const updateTimeToLive = async (input: Record<string, unknown>): Promise<Record<string, unknown>> => {
    const tableName = String(input.TableName);
    await describe(store, tableName);
    const spec = input.TimeToLiveSpecification as { AttributeName?: string; Enabled?: boolean } | undefined;
    if (!spec?.AttributeName) throw validationError("TimeToLiveSpecification.AttributeName is required");
    if (spec.Enabled) ttl.set(tableName, spec.AttributeName);
    else ttl.delete(tableName);
    if (ttlFile) writeFileSync(ttlFile, JSON.stringify(Object.fromEntries(ttl)));
    return { TimeToLiveSpecification: spec };
  };

  const describeTimeToLive = async (input: Record<string, unknown>): Promise<Record<string, unknown>> => {
    const tableName = String(input.TableName);
    await describe(store, tableName);
    const attr = ttl.get(tableName);
    return {
      TimeToLiveDescription: attr
        ? { TimeToLiveStatus: "ENABLED", AttributeName: attr }
        : { TimeToLiveStatus: "DISABLED" },
    };
  };

  const sweepExpired = async (nowMs = Date.now()): Promise<number> => {
    const now = Math.floor(nowMs / 1000);
    let removed = 0;
    for (const [tableName, attr] of ttl) {
      // TTL deletes items whose attribute is a Number of epoch seconds in the past, but not more
      // than five years in the past; the delete re-checks expiry (the item may have been renewed).
      const condition = {
        ConditionExpression: "#ttl < :now AND #ttl > :floor",
        ExpressionAttributeNames: { "#ttl": attr },
        ExpressionAttributeValues: {
          ":now": { N: String(now) },
          ":floor": { N: String(now - FIVE_YEARS_S) },
        },
      };
      let startKey: AttributeMap | undefined;
      do {
        const release = await commitLock.shared();
        let page: Record<string, unknown>;
        try {
          page = await runAction(store, "Scan", {
            TableName: tableName,
            FilterExpression: condition.ConditionExpression,
            ExpressionAttributeNames: condition.ExpressionAttributeNames,
            ExpressionAttributeValues: condition.ExpressionAttributeValues,
            ...(startKey ? { ExclusiveStartKey: startKey } : {}),
          });
        } finally {
          release();
        }
        for (const item of (page.Items as AttributeMap[] | undefined) ?? []) {
          const key = await keyOf(store, tableName, item);
          try {
            await singleWrite("DeleteItem", { TableName: tableName, Key: key, ...condition }, true);
            removed++;
          } catch (err) {
            // Renewed since the scan, or held by a transaction: the next sweep sees it again.
            if (!(err instanceof OperationError)) throw err;
          }
        }
        startKey = page.LastEvaluatedKey as AttributeMap | undefined;
      } while (startKey);
    }
    return removed;
  };

  return { updateTimeToLive, describeTimeToLive, sweepExpired };
}
