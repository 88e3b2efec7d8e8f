// Builds the API's dependencies (AWS SDK clients, store, executor, tenancy, service) from the
// configuration. Used once per process by the Lambda entry and the local stack, so clients and
// their keep-alive connections are reused across requests.
import { Agent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { LambdaClient } from "@aws-sdk/client-lambda";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import type { HttpAuthScheme, Identity } from "@smithy/types";
import type { AppDeps } from "./app.js";
import { type ApiConfig, EXECUTOR_POOL_HEADROOM } from "./config.js";
import { EpisodeService } from "./core/episodes.js";
import { LambdaExecutor } from "./executor/executor.js";
import { FairShareExecutor } from "./executor/fair-share.js";
import { DynamoDbEpisodeRepository } from "./store/dynamodb-episode-repository.js";
import { HostedTenancy } from "./tenancy/hosted.js";

/** Options of {@link buildDeps}. */
export interface BuildDepsOpts {
  readonly config: ApiConfig;
  /** DynamoDB endpoint override (dynalite). @default the AWS endpoint of the region */
  readonly dynamodbEndpoint?: string;
  /** Lambda endpoint override (local executor). @default the AWS endpoint of the region */
  readonly executorEndpoint?: string;
  /** @default process.env.AWS_REGION ?? "us-east-1" */
  readonly region?: string;
  /** Environment the tenancy settings (quotas, auth cache) are read from. @default process.env */
  readonly env?: Record<string, string | undefined>;
}

export interface BuiltDeps extends AppDeps {
  /** The episode repository (DynamoDB adapter): request stats, the local expiry sweep. */
  readonly store: DynamoDbEpisodeRepository;
  readonly dynamodb: DynamoDBClient;
  readonly lambda: LambdaClient;
  readonly tenancy: HostedTenancy;
  destroy(): void;
}

// Local endpoints (dynalite, the local executor) check no signature: fixed credentials keep the SDK
// from searching for real ones, and a pass-through SigV4 signer saves ~0.15 ms per call.
const LOCAL_CREDENTIALS = { accessKeyId: "local", secretAccessKey: "local" };
const LOCAL_AUTH_SCHEMES: HttpAuthScheme[] = [
  {
    schemeId: "aws.auth#sigv4",
    identityProvider: () => async () => ({ ...LOCAL_CREDENTIALS }) as Identity,
    signer: { sign: async (request) => request },
  },
];

export function buildDeps(opts: BuildDepsOpts): BuiltDeps {
  const region = opts.region ?? process.env.AWS_REGION ?? "us-east-1";
  const local = (endpoint: string | undefined) =>
    endpoint
      ? {
          endpoint,
          credentials: LOCAL_CREDENTIALS,
          httpAuthSchemes: LOCAL_AUTH_SCHEMES,
          requestHandler: {
            httpAgent: new Agent({ keepAlive: true, maxSockets: 256 }),
            connectionTimeout: 5_000,
          },
        }
      : {};
  const dynamodb = new DynamoDBClient({ region, maxAttempts: 3, ...local(opts.dynamodbEndpoint) });
  const doc = DynamoDBDocumentClient.from(dynamodb, {
    marshallOptions: { removeUndefinedValues: true },
  });
  // One attempt: a retried Invoke would run user code twice. The pool holds more connections than
  // the fair-share scheduler ever uses at once, so no call waits inside the agent.
  const executorSockets = opts.config.executorMaxConcurrency + EXECUTOR_POOL_HEADROOM;
  const lambdaLocal = local(opts.executorEndpoint);
  const lambda = new LambdaClient({
    region,
    maxAttempts: 1,
    ...lambdaLocal,
    requestHandler: opts.executorEndpoint
      ? { httpAgent: new Agent({ keepAlive: true, maxSockets: executorSockets }), connectionTimeout: 5_000 }
      : { httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets: executorSockets }) },
  });
  const store = new DynamoDbEpisodeRepository({
    doc,
    tableName: opts.config.tableName,
    maxStateBytes: opts.config.maxStateBytes,
  });
  const executor = new FairShareExecutor(
    new LambdaExecutor({
      client: lambda,
      functionName: opts.config.executorFunction,
      graceMs: opts.config.executorGraceS * 1000,
    }),
    {
      maxRunning: opts.config.executorMaxConcurrency,
      tenantMaxRunning: opts.config.tenantMaxRunningSteps,
      tenantMaxWaiting: opts.config.tenantMaxWaitingSteps,
    },
  );
  const tenancy = new HostedTenancy({
    client: dynamodb,
    tableName: opts.config.tableName,
    authRequired: opts.config.authRequired,
    executorMemoryMb: Math.round(opts.config.executorMemoryMb),
    env: opts.env ?? process.env,
  });
  const episodes = new EpisodeService({ repository: store, executor, config: opts.config, tenancy });
  return {
    episodes,
    config: opts.config,
    tenancy,
    store,
    dynamodb,
    lambda,
    destroy: () => {
      dynamodb.destroy();
      lambda.destroy();
    },
  };
}
