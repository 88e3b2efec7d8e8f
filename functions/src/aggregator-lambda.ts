// AWS entry of the usage roll-up: the table's DynamoDB stream (NEW_AND_OLD_IMAGES) -> the same
// `processStreamBatch` the local stack runs on a timer. A thrown error fails the whole batch: Lambda
// splits it in two and retries (bisect on error), then describes it in the dead-letter queue
// (infra/lib/usage-aggregator.ts). The client is built once per container.
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { API_ENV } from "./config.js";
import { processStreamBatch, type StreamRecord } from "./metering/stream-aggregator.js";
import { DynamoDbUsageRepository } from "./store/dynamodb-usage.js";

/** What Lambda passes for a DynamoDB stream event source mapping. */
export interface DynamoDBStreamEvent {
  readonly Records: readonly StreamRecord[];
}

const tableName = process.env[API_ENV.table];
if (!tableName) throw new Error(`${API_ENV.table} is not set`);
const dynamodbEndpoint = process.env[API_ENV.dynamodbEndpoint];
const client = new DynamoDBClient({
  region: process.env.AWS_REGION ?? "us-east-1",
  maxAttempts: 5,
  ...(dynamodbEndpoint ? { endpoint: dynamodbEndpoint } : {}),
});
const doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
const usage = new DynamoDbUsageRepository({ client, tableName });

export async function handler(event: DynamoDBStreamEvent): Promise<void> {
  await processStreamBatch(event.Records, { doc, tableName: tableName as string, usage });
}
