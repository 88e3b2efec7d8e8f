// API keys (hosted mode): only the SHA-256 of a key is stored, as `KEY#<sha256>` / `META` with the
// tenant it belongs to. Key management (creating, revoking, quotas) is issue 7's; this is the lookup.
import { createHash } from "node:crypto";
import { type DynamoDBDocumentClient, GetCommand } from "@aws-sdk/lib-dynamodb";

export function hashApiKey(key: string): string {
  return createHash("sha256").update(key, "utf8").digest("hex");
}

export class ApiKeyStore {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  /** @returns the key's tenant, or `null` for an unknown or revoked key. */
  async tenantOf(key: string): Promise<string | null> {
    const out = await this.doc.send(
      new GetCommand({
        TableName: this.tableName,
        Key: { pk: `KEY#${hashApiKey(key)}`, sk: "META" },
        ConsistentRead: true,
      }),
    );
    const item = out.Item;
    if (!item || item.revoked === true || typeof item.tenant_id !== "string") return null;
    return item.tenant_id;
  }
}
