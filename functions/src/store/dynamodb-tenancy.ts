// Hosted mode's repositories on the service table, in one call for the composition root
// (functions/src/deps.ts) and tests: API keys, active-episode sets, the live-episode lookup (episode
// heads) and usage. Item layouts: layout.ts and the adapter of each.
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { TenancyRepositories } from "../tenancy/repositories.js";
import { batchGetLiveEpisodes, DynamoDbActiveEpisodeRepository } from "./dynamodb-active-episodes.js";
import { DynamoDbApiKeyRepository } from "./dynamodb-api-keys.js";
import { DynamoDbUsageRepository } from "./dynamodb-usage.js";

export interface DynamoDbTenancyOpts {
  /** The low-level client of the service table. */
  readonly client: DynamoDBClient;
  readonly tableName: string;
  /** Clock in ms: when an episode counts as expired for the active-episode quota. @default Date.now */
  readonly now?: () => number;
}

export function dynamoDbTenancyRepositories(opts: DynamoDbTenancyOpts): TenancyRepositories {
  if (!opts.tableName) throw new Error("dynamoDbTenancyRepositories: tableName is required.");
  const table = { client: opts.client, tableName: opts.tableName };
  const now = opts.now ?? Date.now;
  return {
    apiKeys: new DynamoDbApiKeyRepository(table),
    activeEpisodes: new DynamoDbActiveEpisodeRepository(table),
    // The episode's head item (layout.ts), with `tenant_id` and `expires_at`.
    liveEpisodes: batchGetLiveEpisodes({ ...table, now: () => new Date(now()) }),
    usage: new DynamoDbUsageRepository(table),
  };
}
