// The WebSocket connection item: what the AWS WebSocket API's Lambda knows about one connection
// between its messages (any Lambda instance may serve any message, so nothing lives in a process).
//
// Key `WS#<connectionId>` / `CONN`. Written at $connect, read (strongly consistent, ~0.2 KB: one
// read unit) per message, updated only when the session's episode changes (reset, or the first
// step of a session without one), deleted at $disconnect. Its TTL outlives API Gateway's 2-hour
// connection limit, so an item whose $disconnect never ran still goes away.
import {
  DeleteCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  UpdateCommand,
} from "@aws-sdk/lib-dynamodb";

/** API Gateway closes every WebSocket connection after 2 hours. */
export const MAX_CONNECTION_S = 2 * 3600;
/** TTL of a connection item after its $connect: the connection limit plus DynamoDB's TTL slack. */
export const CONNECTION_TTL_S = MAX_CONNECTION_S + 600;

/** What a connection carries from its $connect to its messages. */
export interface ConnectionRecord {
  readonly connectionId: string;
  readonly tenantId: string;
  /** SHA-256 of the API key that opened the connection (re-checked per message); `null` with auth off. */
  readonly keyHash: string | null;
  /** The session's episode, `null` until a reset or first step. */
  readonly episodeId: string | null;
  readonly connectedAtMs: number;
}

const key = (connectionId: string) => ({ pk: `WS#${connectionId}`, sk: "CONN" });

/** The connection items of one table. */
export class ConnectionStore {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly tableName: string,
    private readonly now: () => number = Date.now,
  ) {}

  /** Records a new connection ($connect). */
  async put(record: Omit<ConnectionRecord, "connectedAtMs">): Promise<ConnectionRecord> {
    const connectedAtMs = this.now();
    await this.doc.send(
      new PutCommand({
        TableName: this.tableName,
        Item: {
          ...key(record.connectionId),
          tenant_id: record.tenantId,
          key_hash: record.keyHash,
          episode_id: record.episodeId,
          connected_at: connectedAtMs,
          expires_at: Math.floor(connectedAtMs / 1000) + CONNECTION_TTL_S,
        },
      }),
    );
    return { ...record, connectedAtMs };
  }

  /** The connection, or `undefined` when it is gone (disconnected, expired). */
  async get(connectionId: string): Promise<ConnectionRecord | undefined> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: key(connectionId), ConsistentRead: true }),
    );
    const item = out.Item;
    if (!item || typeof item.tenant_id !== "string") return undefined;
    if (typeof item.expires_at === "number" && item.expires_at * 1000 <= this.now()) return undefined;
    return {
      connectionId,
      tenantId: item.tenant_id,
      keyHash: typeof item.key_hash === "string" ? item.key_hash : null,
      episodeId: typeof item.episode_id === "string" ? item.episode_id : null,
      connectedAtMs: Number(item.connected_at ?? 0),
    };
  }

  /**
   * Sets the session's episode. Only on an existing item: a message racing its own $disconnect
   * does not bring the connection back. @returns false when the connection is gone
   */
  async setEpisode(connectionId: string, episodeId: string | null): Promise<boolean> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: key(connectionId),
          UpdateExpression: "SET episode_id = :episode",
          ConditionExpression: "attribute_exists(pk)",
          ExpressionAttributeValues: { ":episode": episodeId },
        }),
      );
      return true;
    } catch (err) {
      if ((err as { name?: string }).name === "ConditionalCheckFailedException") return false;
      throw err;
    }
  }

  /** Forgets the connection ($disconnect). */
  async delete(connectionId: string): Promise<void> {
    await this.doc.send(new DeleteCommand({ TableName: this.tableName, Key: key(connectionId) }));
  }
}
