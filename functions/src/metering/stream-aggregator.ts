// Usage roll-up from the table's change stream. Steps are metered by their own items: every
// committed step's version item and every execution that did not commit carry their usage, and a
// new episode head its day (the layout and its decoding: store/dynamodb-usage-stream.ts). A batch
// of stream records becomes one `ADD` per tenant and day on that day's usage (`rollUpUsage`, then
// the usage repository), so no step ever writes a shared item. In AWS the stream
// (NEW_AND_OLD_IMAGES) invokes functions/src/aggregator-lambda.ts; locally the DynamoDB front emits
// the same records.
//
// Also: when DynamoDB's TTL removes an episode head (a REMOVE by the service), the episode's
// version items (which have no TTL, so history lives as long as the episode) are deleted here.
//
// Delivery is at least once: a batch retried after a partial failure may count its records again.
import type { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { API_ENV } from "../config.js";
import { DynamoDbUsageRepository } from "../store/dynamodb-usage.js";
import {
  decodeStreamRecords,
  deleteExpiredEpisodes,
  type StreamRecord,
} from "../store/dynamodb-usage-stream.js";
import type { UsageRepository } from "../tenancy/repositories.js";
import { rollUpUsage } from "./usage-rollup.js";

export type { StreamImage, StreamRecord } from "../store/dynamodb-usage-stream.js";

export interface StreamAggregatorDeps {
  readonly doc: DynamoDBDocumentClient;
  readonly tableName: string;
  /** Where the sums go. @default the usage items of `tableName` (store/dynamodb-usage.ts) */
  readonly usage?: UsageRepository;
  /** Clock (ms), unused by the roll-up itself. @default Date.now() */
  readonly nowMs?: number;
  /** The executor's memory for GB-seconds. @default CODING_ENV_EXECUTOR_MEMORY_MB or 1024 */
  readonly executorMemoryMb?: number;
}

function memoryMbFromEnv(): number {
  const raw = Number(process.env[API_ENV.executorMemoryMb] ?? 1024);
  return Number.isInteger(raw) && raw > 0 ? raw : 1024;
}

/** Rolls a batch of stream records up into the usage items and cleans up expired episodes. */
export async function processStreamBatch(
  records: readonly StreamRecord[],
  deps: StreamAggregatorDeps,
): Promise<void> {
  const memoryMb = deps.executorMemoryMb ?? memoryMbFromEnv();
  const { usage, expired } = decodeStreamRecords(records);
  const repository =
    deps.usage ?? new DynamoDbUsageRepository({ client: deps.doc, tableName: deps.tableName });
  await repository.add(rollUpUsage(usage, memoryMb));
  await deleteExpiredEpisodes(deps.doc, deps.tableName, expired);
}
