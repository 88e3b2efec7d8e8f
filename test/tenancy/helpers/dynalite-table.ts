// A real dynalite (in memory) on a free port with the service table (`pk`/`sk` strings), for the
// tenancy module tests. The full-stack tests use `startLocalStack` instead.
import { once } from "node:events";
import type { Server } from "node:http";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import { CreateTableCommand, DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";

const require = createRequire(import.meta.url);
const dynalite = require("dynalite") as (opts: Record<string, unknown>) => Server;

export interface TestTable {
  readonly endpoint: string;
  readonly tableName: string;
  readonly client: DynamoDBClient;
  readonly doc: DynamoDBDocumentClient;
  /** Number of DynamoDB requests `client` has sent. */
  readonly requests: () => number;
  stop(): Promise<void>;
}

/**
 * A client of a local DynamoDB. A local stack's endpoint needs the stack's start-up credentials
 * (`stack.credentials`); a bare dynalite takes any.
 */
export function clientFor(
  endpoint: string,
  credentials: { accessKeyId: string; secretAccessKey: string } = {
    accessKeyId: "local",
    secretAccessKey: "local",
  },
): DynamoDBClient {
  return new DynamoDBClient({ endpoint, region: "us-east-1", credentials });
}

/** Creates the service table (`pk`/`sk` strings), as the CDK stack and the local stack do. */
export async function createServiceTable(client: DynamoDBClient, tableName: string): Promise<void> {
  await client.send(
    new CreateTableCommand({
      TableName: tableName,
      AttributeDefinitions: [
        { AttributeName: "pk", AttributeType: "S" },
        { AttributeName: "sk", AttributeType: "S" },
      ],
      KeySchema: [
        { AttributeName: "pk", KeyType: "HASH" },
        { AttributeName: "sk", KeyType: "RANGE" },
      ],
      BillingMode: "PAY_PER_REQUEST",
    }),
  );
}

export async function startTestTable(tableName = "coding-env-test"): Promise<TestTable> {
  const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const client = clientFor(endpoint);
  let requests = 0;
  client.middlewareStack.add(
    (next) => async (args) => {
      requests++;
      return next(args);
    },
    { step: "initialize", name: "countRequests" },
  );
  await createServiceTable(client, tableName);
  return {
    endpoint,
    tableName,
    client,
    doc: DynamoDBDocumentClient.from(client),
    requests: () => requests,
    async stop() {
      client.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
