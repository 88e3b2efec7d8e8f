// Builds the API's dependencies (AWS SDK clients, store, executor, tenancy, service) from the
// configuration. Used once per process by the Lambda entry and the local stack, so clients and
// their keep-alive connections are reused across requests.
import { Agent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { LambdaClient } from "@aws-sdk/client-lambda";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import type { HttpAuthScheme, Identity } from "@smithy/types";
import { ExecutorGovernor } from "./admission/executor-governor.js";
import { FairQueue } from "./admission/fair-queue.js";
import { GovernedExecutor, governedTenantCap } from "./admission/governed-executor.js";
import { LoadGovernor } from "./admission/load-governor.js";
import { admissionLimits, admitSteps } from "./admission/step-admission.js";
import type { AppDeps } from "./app.js";
import { API_ENV, type ApiConfig, EXECUTOR_POOL_HEADROOM } from "./config.js";
import { EpisodeService } from "./core/episodes.js";
import { LambdaExecutor } from "./executor/executor.js";
import { executorShareLimits, FairShareExecutor } from "./executor/fair-share.js";
import { PackageSetReporter } from "./executor/package-set.js";
import { tuneAwsClient } from "./store/aws-client-tuning.js";
import { DynamoDbEpisodeRepository } from "./store/dynamodb-episode-repository.js";
import { DynamoDbExecutorGovernorStore } from "./store/dynamodb-executor-governor.js";
import { dynamoDbTenancyRepositories } from "./store/dynamodb-tenancy.js";
import { createStateS3Client, S3StateStore } from "./store/s3-state.js";
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
  /**
   * Credentials for the local endpoints (the local stack's start-up secret: its DynamoDB front and
   * executor refuse any other access key id). @default env `CODING_ENV_LOCAL_ACCESS_KEY_ID` /
   * `CODING_ENV_LOCAL_SECRET_ACCESS_KEY`, else "local"
   */
  readonly localCredentials?: LocalCredentials;
}

export interface LocalCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
}

export interface BuiltDeps extends AppDeps {
  /** The episode repository (DynamoDB adapter): request stats, the local expiry sweep. */
  readonly store: DynamoDbEpisodeRepository;
  readonly dynamodb: DynamoDBClient;
  readonly lambda: LambdaClient;
  readonly tenancy: HostedTenancy;
  /** The cross-instance executor governor and its store, when on (`executorGovernor`). */
  readonly executorGovernor?: {
    readonly governor: ExecutorGovernor;
    readonly store: DynamoDbExecutorGovernorStore;
  };
  destroy(): void;
}

// Local endpoints (dynalite's front, the local executor) check the access key id of the
// `Authorization` header, not the signature: explicit credentials keep the SDK from searching for
// real ones, and a signer that only writes that header saves ~0.15 ms of SigV4 per call.
function localAuthSchemes(credentials: LocalCredentials, service: string): HttpAuthScheme[] {
  const authorization = `AWS4-HMAC-SHA256 Credential=${credentials.accessKeyId}/19700101/local/${service}/aws4_request, SignedHeaders=host, Signature=local`;
  return [
    {
      schemeId: "aws.auth#sigv4",
      identityProvider: () => async () => ({ ...credentials }) as Identity,
      signer: {
        sign: async (request) => {
          (request as { headers: Record<string, string> }).headers.authorization = authorization;
          return request;
        },
      },
    },
  ];
}

function localCredentialsFrom(env: Record<string, string | undefined>): LocalCredentials {
  const accessKeyId = env[API_ENV.localAccessKeyId];
  return accessKeyId
    ? { accessKeyId, secretAccessKey: env[API_ENV.localSecretAccessKey] ?? "local" }
    : { accessKeyId: "local", secretAccessKey: "local" };
}

export function buildDeps(opts: BuildDepsOpts): BuiltDeps {
  const region = opts.region ?? process.env.AWS_REGION ?? "us-east-1";
  const credentials = opts.localCredentials ?? localCredentialsFrom(opts.env ?? process.env);
  const local = (endpoint: string | undefined, service = "dynamodb") =>
    endpoint
      ? {
          endpoint,
          credentials,
          httpAuthSchemes: localAuthSchemes(credentials, service),
          requestHandler: {
            httpAgent: new Agent({ keepAlive: true, maxSockets: 256 }),
            connectionTimeout: 5_000,
          },
        }
      : {};
  // Every client is tuned (store/aws-client-tuning.ts): less CPU per call, the same requests.
  const dynamodb = tuneAwsClient(
    new DynamoDBClient({ region, maxAttempts: 3, ...local(opts.dynamodbEndpoint) }),
  );
  const doc = DynamoDBDocumentClient.from(dynamodb, {
    marshallOptions: { removeUndefinedValues: true },
  });
  // A step's Query and PutItem: calls without options, so the resolved middleware stack is reused
  // (cacheMiddleware; the document client refuses it). Its own client, as `dynamodb` is shared
  // with document clients.
  const dynamodbSteps = tuneAwsClient(
    new DynamoDBClient({
      region,
      maxAttempts: 3,
      cacheMiddleware: true,
      ...local(opts.dynamodbEndpoint),
    }),
  );
  // One attempt: a retried Invoke would run user code twice. The pool holds more connections than
  // the fair-share scheduler ever uses at once, so no call waits inside the agent.
  const executorSockets = opts.config.executorMaxConcurrency + EXECUTOR_POOL_HEADROOM;
  const lambdaLocal = local(opts.executorEndpoint, "lambda");
  // The executor client waits for an answer itself (executor.ts): a connection silent for longer
  // than any step may run is given up. Calls carry no options, so the resolved middleware stack is
  // reused (cacheMiddleware) instead of being rebuilt per Invoke.
  const invokeSocketTimeoutMs = (opts.config.maxStepTimeoutS + opts.config.executorGraceS + 30) * 1000;
  const lambda = tuneAwsClient(
    new LambdaClient({
      region,
      maxAttempts: 1,
      cacheMiddleware: true,
      ...lambdaLocal,
      requestHandler: opts.executorEndpoint
        ? {
            httpAgent: new Agent({ keepAlive: true, maxSockets: executorSockets }),
            connectionTimeout: 5_000,
            requestTimeout: invokeSocketTimeoutMs,
          }
        : {
            httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets: executorSockets }),
            requestTimeout: invokeSocketTimeoutMs,
          },
    }),
  );
  // Large state in S3 (CODING_ENV_STATE_BUCKET; the local S3 by CODING_ENV_S3_ENDPOINT).
  const env = opts.env ?? process.env;
  const s3Endpoint = env[API_ENV.s3Endpoint] || undefined;
  const stateBucket = env[API_ENV.stateBucket];
  const s3 = stateBucket
    ? createStateS3Client({
        region,
        ...(s3Endpoint
          ? {
              endpoint: s3Endpoint,
              credentials,
              requestHandler: { httpAgent: new Agent({ keepAlive: true, maxSockets: 64 }) },
            }
          : {}),
      })
    : undefined;
  const store = new DynamoDbEpisodeRepository({
    doc,
    client: dynamodbSteps,
    tableName: opts.config.tableName,
    maxStateBytes: opts.config.maxStateBytes,
    ...(s3 && stateBucket ? { stateObjects: new S3StateStore({ client: s3, bucket: stateBucket }) } : {}),
  });
  const lambdaExecutor = new LambdaExecutor({
    client: lambda,
    functionName: opts.config.executorFunction,
    graceMs: opts.config.executorGraceS * 1000,
  });
  // One tenant may not take the executor's whole concurrency across API instances: while it is
  // contended, each step holds a slot of its tenant's (admission/executor-governor.ts).
  const governorStore = opts.config.executorGovernor
    ? new DynamoDbExecutorGovernorStore({ client: dynamodb, tableName: opts.config.tableName })
    : undefined;
  const governor = governorStore
    ? new ExecutorGovernor({
        store: governorStore,
        ...(opts.config.executorGovernorCheckMs !== undefined
          ? { checkIntervalMs: opts.config.executorGovernorCheckMs }
          : {}),
        ...(opts.config.executorGovernorTtlS !== undefined
          ? { contentionTtlMs: opts.config.executorGovernorTtlS * 1000 }
          : {}),
        always: opts.config.executorGovernorAlways ?? false,
      })
    : undefined;
  const executor = new FairShareExecutor(
    governor
      ? new GovernedExecutor(lambdaExecutor, {
          governor,
          // The calling key's `concurrent_steps` (tenancy is built below; called per step).
          capFor: (tenantId) =>
            governedTenantCap(
              tenancy.quotasFor(tenantId).concurrentSteps,
              opts.config.executorReservedConcurrency,
            ),
          graceMs: opts.config.executorGraceS * 1000,
        })
      : lambdaExecutor,
    executorShareLimits(opts.config),
  );
  const tenancy = new HostedTenancy({
    repositories: dynamoDbTenancyRepositories({ client: dynamodb, tableName: opts.config.tableName }),
    authRequired: opts.config.authRequired,
    executorMemoryMb: Math.round(opts.config.executorMemoryMb),
    env: opts.env ?? process.env,
  });
  // Steps wait their tenant's turn before their first store read (issue 10 point 7).
  const admissionLimitsNow = admissionLimits(opts.config);
  const admission = new FairQueue(admissionLimitsNow);
  // The per-tenant cap follows how busy this process is (admission/load-governor.ts).
  const loadGovernor =
    opts.config.admissionGovernor === false
      ? undefined
      : new LoadGovernor(admission, admissionLimitsNow.tenantMaxRunning);
  const episodes = new EpisodeService({
    repository: store,
    executor,
    config: opts.config,
    tenancy: admitSteps(tenancy, admission),
  });
  const packageSet = new PackageSetReporter(lambda, opts.config.executorFunction);
  return {
    episodes,
    packages: () => packageSet.get(),
    config: opts.config,
    tenancy,
    store,
    dynamodb,
    lambda,
    ...(governor && governorStore ? { executorGovernor: { governor, store: governorStore } } : {}),
    destroy: () => {
      loadGovernor?.stop();
      dynamodb.destroy();
      dynamodbSteps.destroy();
      lambda.destroy();
      s3?.destroy();
    },
  };
}
