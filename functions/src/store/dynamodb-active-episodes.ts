// The active-episode set on DynamoDB (tenancy's `ActiveEpisodeRepository`, reasoning in
// tenancy/active-episodes.ts): one item per tenant, `TENANT#<id>` / `ACTIVE` (layout.ts), with the
// string set `active_ids`, a version `ver` bumped by every addition, and `tenant_id`. And the lookup
// of which listed episodes are alive: their head items, read with consistent BatchGetItem calls.
import {
  type AttributeValue,
  BatchGetItemCommand,
  ConditionalCheckFailedException,
  type DynamoDBClient,
  GetItemCommand,
  UpdateItemCommand,
} from "@aws-sdk/client-dynamodb";
import { ActiveEpisodes } from "../tenancy/active-episodes.js";
import type {
  ActiveEpisodeRepository,
  ActiveEpisodeSet,
  LiveEpisodeLookup,
} from "../tenancy/repositories.js";
import { activeEpisodesKey, episodePk, HEAD_SK } from "./layout.js";

export interface DynamoDbTableOpts {
  readonly client: DynamoDBClient;
  readonly tableName: string;
}

function activeEpisodesAttrKey(tenantId: string): Record<string, AttributeValue> {
  const key = activeEpisodesKey(tenantId);
  return { pk: { S: key.pk }, sk: { S: key.sk } };
}

/** {@link ActiveEpisodeRepository} on the service table; every condition is evaluated by DynamoDB. */
export class DynamoDbActiveEpisodeRepository implements ActiveEpisodeRepository {
  private readonly client: DynamoDBClient;
  private readonly tableName: string;

  constructor(opts: DynamoDbTableOpts) {
    this.client = opts.client;
    this.tableName = opts.tableName;
  }

  /** One conditional UpdateItem: `size(active_ids) < limit OR contains(active_ids, id)`. */
  async addIfRoom(tenantId: string, episodeId: string, limit: number): Promise<boolean> {
    try {
      await this.client.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: activeEpisodesAttrKey(tenantId),
          UpdateExpression: "ADD active_ids :ids, ver :one SET tenant_id = :tenant",
          ConditionExpression:
            "attribute_not_exists(active_ids) OR size(active_ids) < :limit OR contains(active_ids, :id)",
          ExpressionAttributeValues: {
            ":ids": { SS: [episodeId] },
            ":one": { N: "1" },
            ":tenant": { S: tenantId },
            ":limit": { N: String(limit) },
            ":id": { S: episodeId },
          },
        }),
      );
      return true;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return false;
      throw err;
    }
  }

  async remove(tenantId: string, episodeId: string): Promise<void> {
    await this.client.send(
      new UpdateItemCommand({
        TableName: this.tableName,
        Key: activeEpisodesAttrKey(tenantId),
        UpdateExpression: "DELETE active_ids :ids",
        ExpressionAttributeValues: { ":ids": { SS: [episodeId] } },
      }),
    );
  }

  async read(tenantId: string): Promise<ActiveEpisodeSet> {
    const out = await this.client.send(
      new GetItemCommand({
        TableName: this.tableName,
        Key: activeEpisodesAttrKey(tenantId),
        ConsistentRead: true,
      }),
    );
    return { ids: out.Item?.active_ids?.SS ?? [], ver: out.Item?.ver?.N };
  }

  /** One UpdateItem `DELETE active_ids` with the condition `ver = <ver read>`. */
  async removeIfUnchanged(tenantId: string, episodeIds: readonly string[], ver: string): Promise<boolean> {
    try {
      await this.client.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: activeEpisodesAttrKey(tenantId),
          UpdateExpression: "DELETE active_ids :dead",
          ConditionExpression: "ver = :ver",
          ExpressionAttributeValues: { ":dead": { SS: [...episodeIds] }, ":ver": { N: ver } },
        }),
      );
      return true;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return false;
      throw err;
    }
  }
}

export interface BatchGetLiveEpisodesOpts extends DynamoDbTableOpts {
  /**
   * The episode item's key. @default the head of the episode partition (layout.ts):
   * `{ pk: { S: "EP#<tenant>#<id>" }, sk: { S: "META" } }`
   */
  readonly episodeKey?: (tenantId: string, episodeId: string) => Record<string, AttributeValue>;
  /** Clock, for tests. @default () => new Date() */
  readonly now?: () => Date;
}

const headKey = (tenantId: string, id: string): Record<string, AttributeValue> => ({
  pk: { S: episodePk(tenantId, id) },
  sk: { S: HEAD_SK },
});

/**
 * A `LiveEpisodeLookup` that reads the episode items with strongly consistent BatchGetItem calls
 * (100 keys each, unprocessed keys retried with backoff). An episode is alive when its item exists,
 * belongs to the tenant (`tenant_id`, when the item has one) and its `expires_at` (epoch seconds,
 * the TTL attribute) is in the future or absent.
 */
export function batchGetLiveEpisodes(opts: BatchGetLiveEpisodesOpts): LiveEpisodeLookup {
  const now = opts.now ?? (() => new Date());
  const episodeKey = opts.episodeKey ?? headKey;
  return async (tenantId, episodeIds) => {
    const byKey = new Map<string, string>();
    const keys = episodeIds.map((id) => {
      const key = episodeKey(tenantId, id);
      byKey.set(`${key.pk?.S}\u0000${key.sk?.S}`, id);
      return key;
    });
    const live = new Map<string, Date | null>();
    const nowS = now().getTime() / 1000;
    for (let i = 0; i < keys.length; i += 100) {
      let pending: Record<string, AttributeValue>[] = keys.slice(i, i + 100);
      for (let attempt = 0; pending.length > 0; attempt++) {
        if (attempt > 0) await new Promise((r) => setTimeout(r, Math.min(1000, 25 * 2 ** attempt)));
        if (attempt > 8) throw new Error("BatchGetItem kept returning unprocessed keys.");
        const out = await opts.client.send(
          new BatchGetItemCommand({
            RequestItems: { [opts.tableName]: { Keys: pending, ConsistentRead: true } },
          }),
        );
        for (const item of out.Responses?.[opts.tableName] ?? []) {
          const id = byKey.get(`${item.pk?.S}\u0000${item.sk?.S}`);
          if (id === undefined) continue;
          if (item.tenant_id?.S !== undefined && item.tenant_id.S !== tenantId) continue;
          const expiresAtS = item.expires_at?.N === undefined ? undefined : Number(item.expires_at.N);
          if (expiresAtS !== undefined && expiresAtS <= nowS) continue;
          live.set(id, expiresAtS === undefined ? null : new Date(expiresAtS * 1000));
        }
        pending = out.UnprocessedKeys?.[opts.tableName]?.Keys ?? [];
      }
    }
    return live;
  };
}

/** {@link ActiveEpisodes} on the service table (tests, tools). */
export function dynamoDbActiveEpisodes(
  opts: DynamoDbTableOpts & { readonly lookupLive?: LiveEpisodeLookup; readonly maxAttempts?: number },
): ActiveEpisodes {
  return new ActiveEpisodes({
    repository: new DynamoDbActiveEpisodeRepository(opts),
    lookupLive: opts.lookupLive ?? batchGetLiveEpisodes(opts),
    ...(opts.maxAttempts !== undefined ? { maxAttempts: opts.maxAttempts } : {}),
  });
}
