// The AWS data path on the synthesized template: timeouts that hold a cold start inside API
// Gateway's 30 s, the table's stream feeding the usage roll-up (least privilege, bisect, retries,
// dead letters), the executor's zones, and the CORS allow-list passed to the API.
import { Match } from "aws-cdk-lib/assertions";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AWS_TIMEOUTS,
  COLD_START_ALLOWANCE_S,
  configFromEnv,
  EXECUTOR_MARGIN_S,
  READ_BEFORE_INVOKE_S,
} from "../../functions/src/config.js";
import { USAGE_STREAM } from "../lib/usage-aggregator.js";
import {
  isExecutor,
  onlyResource,
  propsOf,
  referencedId,
  removeSynthOutputs,
  resourcesOfType,
  runsAs,
  type Synthesized,
  statementsOfRole,
  synth,
  variablesOf,
} from "./synth.js";

afterAll(removeSynthOutputs);

const variables = variablesOf;
const isApi = runsAs("coding-env-api");
const isAggregator = runsAs("coding-env-usage");

describe("timeouts that hold cold", () => {
  let s: Synthesized;
  beforeAll(() => {
    s = synth();
  });

  it("nests every limit inside the next: cold step < invoke abort <= API deadline < API Lambda < integration < 30 s", () => {
    const [, api] = onlyResource(s.json, "AWS::Lambda::Function", isApi);
    const [, executor] = onlyResource(s.json, "AWS::Lambda::Function", isExecutor);
    const integrations = resourcesOfType(s.json, "AWS::ApiGatewayV2::Integration");
    const [, integration] = onlyResource(
      s.json,
      "AWS::ApiGatewayV2::Integration",
      (r) => r.Properties?.PayloadFormatVersion === "2.0",
    );
    // The WebSocket API's routes wait as long as the HTTP API's (its Lambda has the same budget).
    expect(integrations.map(([, i]) => i.Properties?.TimeoutInMillis)).toEqual(
      integrations.map(() => AWS_TIMEOUTS.apiGatewayIntegrationS * 1000),
    );
    const env = variables(api) as Record<string, string>;
    // The API reads its budget from the environment the template gives it (fails on a broken one).
    const config = configFromEnv(env);
    const maxStep = config.maxStepTimeoutS;
    const executorTimeout = executor.Properties?.Timeout as number;
    const apiTimeout = api.Properties?.Timeout as number;
    const integrationTimeoutS = (propsOf(integration).TimeoutInMillis as number) / 1000;

    expect(maxStep).toBe(AWS_TIMEOUTS.maxStepTimeoutS);
    expect(config.requestDeadlineS).toBe(AWS_TIMEOUTS.requestDeadlineS);
    // Keys on: one tenant cannot take the executor's whole concurrency (admission/executor-governor.ts).
    expect(config.executorGovernor).toBe(true);
    // The executor's own timeout covers the step, a cold start and the snapshot restore/save...
    expect(executorTimeout).toBe(maxStep + COLD_START_ALLOWANCE_S + EXECUTOR_MARGIN_S);
    expect(config.executorGraceS).toBe(COLD_START_ALLOWANCE_S + EXECUTOR_MARGIN_S);
    // ...and the API waits as long after its read, within its own deadline...
    expect(READ_BEFORE_INVOKE_S + maxStep + config.executorGraceS).toBeLessThanOrEqual(
      config.requestDeadlineS,
    );
    // ...which comes before its Lambda is killed, which comes before API Gateway gives up.
    expect(config.requestDeadlineS).toBeLessThan(apiTimeout);
    expect(apiTimeout).toBeLessThan(integrationTimeoutS);
    expect(integrationTimeoutS).toBe(AWS_TIMEOUTS.apiGatewayIntegrationS);
    expect(integrationTimeoutS).toBeLessThan(30);
  });

  it("gives the executor the deployment's step limit plus the grace when the limit is lowered", () => {
    const { template } = synth({ context: { maxStepTimeoutSeconds: "8" } });
    template.hasResourceProperties("AWS::Lambda::Function", {
      PackageType: "Image",
      Timeout: 8 + COLD_START_ALLOWANCE_S + EXECUTOR_MARGIN_S,
    });
    template.hasResourceProperties("AWS::Lambda::Function", {
      Environment: {
        Variables: Match.objectLike({
          CODING_ENV_MAX_STEP_TIMEOUT_S: "8",
          CODING_ENV_REQUEST_DEADLINE_S: "27",
        }),
      },
    });
  });
});

describe("usage roll-up from the table's stream", () => {
  let s: Synthesized;
  beforeAll(() => {
    s = synth();
  });

  it("feeds the aggregator from the table's stream in batches, bisecting a failing batch, then to a dead-letter queue", () => {
    const [tableId] = onlyResource(s.json, "AWS::DynamoDB::Table");
    const [aggregatorId] = onlyResource(s.json, "AWS::Lambda::Function", isAggregator);
    const [queueId] = onlyResource(s.json, "AWS::SQS::Queue");
    s.template.hasResourceProperties("AWS::Lambda::EventSourceMapping", {
      EventSourceArn: { "Fn::GetAtt": [tableId, "StreamArn"] },
      FunctionName: { Ref: aggregatorId },
      StartingPosition: "TRIM_HORIZON",
      BatchSize: USAGE_STREAM.batchSize,
      MaximumBatchingWindowInSeconds: USAGE_STREAM.maxBatchingWindowS,
      BisectBatchOnFunctionError: true,
      MaximumRetryAttempts: USAGE_STREAM.retryAttempts,
      ParallelizationFactor: 1,
      DestinationConfig: { OnFailure: { Destination: { "Fn::GetAtt": [queueId, "Arn"] } } },
    });
    s.template.resourceCountIs("AWS::Lambda::EventSourceMapping", 1);
  });

  it("runs the aggregator from its own bundled entry with the table name, on Node.js 22", () => {
    const [tableId] = onlyResource(s.json, "AWS::DynamoDB::Table");
    s.template.hasResourceProperties("AWS::Lambda::Function", {
      Runtime: "nodejs22.x",
      Handler: "index.handler",
      Architectures: ["arm64"],
      Environment: {
        Variables: Match.objectLike({
          CODING_ENV_TABLE: { Ref: tableId },
          // GB-seconds of each execution are computed with the executor's memory.
          CODING_ENV_EXECUTOR_MEMORY_MB: "1024",
          POWERTOOLS_SERVICE_NAME: "coding-env-usage",
        }),
      },
    });
  });

  it("keeps dead letters encrypted, TLS-only, for 14 days", () => {
    s.template.hasResourceProperties("AWS::SQS::Queue", {
      SqsManagedSseEnabled: true,
      MessageRetentionPeriod: 14 * 24 * 3600,
    });
    s.template.hasResourceProperties("AWS::SQS::QueuePolicy", {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: "Deny", Condition: { Bool: { "aws:SecureTransport": "false" } } }),
        ]),
      },
    });
  });

  it("gives the aggregator role the stream, usage updates and history clean-up on its table, its queue and its logs: nothing else", () => {
    const [tableId] = onlyResource(s.json, "AWS::DynamoDB::Table");
    const [queueId] = onlyResource(s.json, "AWS::SQS::Queue");
    const [, aggregator] = onlyResource(s.json, "AWS::Lambda::Function", isAggregator);
    const roleId = referencedId(aggregator.Properties?.Role) as string;
    const logGroupId = referencedId((propsOf(aggregator).LoggingConfig as { LogGroup: unknown }).LogGroup);
    const { statements, managedPolicies } = statementsOfRole(s.json, roleId);
    expect(managedPolicies).toEqual([]);
    expect(statements.every((st) => st.Effect === "Allow")).toBe(true);

    const byResource = (resource: unknown) =>
      statements.filter((st) => JSON.stringify(st.Resource) === JSON.stringify([resource]));
    const onTable = byResource({ "Fn::GetAtt": [tableId, "Arn"] }).flatMap((st) => st.Action);
    expect(onTable.sort()).toEqual(["dynamodb:BatchWriteItem", "dynamodb:Query", "dynamodb:UpdateItem"]);
    const onStream = byResource({ "Fn::GetAtt": [tableId, "StreamArn"] }).flatMap((st) => st.Action);
    expect(onStream).toEqual(
      expect.arrayContaining(["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"]),
    );
    const onQueue = byResource({ "Fn::GetAtt": [queueId, "Arn"] }).flatMap((st) => st.Action);
    expect(onQueue.every((a) => a.startsWith("sqs:Send") || a.startsWith("sqs:Get"))).toBe(true);
    const onLogs = byResource({ "Fn::GetAtt": [logGroupId, "Arn"] }).flatMap((st) => st.Action);
    expect(onLogs.sort()).toEqual(["logs:CreateLogStream", "logs:PutLogEvents"]);
    // ListStreams cannot be limited to one table; it reveals stream ARNs, no data.
    const rest = statements
      .flatMap((st) => st.Action)
      .filter((a) => ![...onTable, ...onStream, ...onQueue, ...onLogs].includes(a));
    expect(rest).toEqual(["dynamodb:ListStreams"]);
    const text = JSON.stringify(statements);
    for (const forbidden of ["lambda:", "s3:", "dynamodb:Scan", "dynamodb:PutItem", "dynamodb:*", "iam:"])
      expect(text).not.toContain(forbidden);
  });
});

describe("executor subnets and the CORS allow-list (context)", () => {
  it("places the executor's isolated subnets in the zones named by coding-env:executorAvailabilityZones", () => {
    const { template, json } = synth({
      context: { executorAvailabilityZones: "us-east-1b,us-east-1c,us-east-1d" },
    });
    const subnets = resourcesOfType(json, "AWS::EC2::Subnet").map(
      ([, sn]) => sn.Properties?.AvailabilityZone,
    );
    expect(subnets.sort()).toEqual(["us-east-1b", "us-east-1c", "us-east-1d"]);
    template.hasResourceProperties("AWS::Lambda::Function", {
      PackageType: "Image",
      VpcConfig: Match.objectLike({
        SubnetIds: resourcesOfType(json, "AWS::EC2::Subnet").map(([id]) => ({ Ref: id })),
      }),
    });
    expect(resourcesOfType(json, "AWS::EC2::Route")).toEqual([]);
  });

  it("uses the region's first two zones by default", () => {
    const { json } = synth();
    const zones = resourcesOfType(json, "AWS::EC2::Subnet").map(([, sn]) => sn.Properties?.AvailabilityZone);
    expect(zones).toEqual([
      { "Fn::Select": [0, { "Fn::GetAZs": "" }] },
      { "Fn::Select": [1, { "Fn::GetAZs": "" }] },
    ]);
  });

  it("passes coding-env:allowedOrigins to the API as CODING_ENV_ALLOWED_ORIGINS, which the API accepts", () => {
    const { template, json } = synth({
      context: { allowedOrigins: "https://app.example.com, http://localhost:5173" },
    });
    template.hasResourceProperties("AWS::Lambda::Function", {
      Environment: {
        Variables: Match.objectLike({
          CODING_ENV_ALLOWED_ORIGINS: "https://app.example.com,http://localhost:5173",
        }),
      },
    });
    const [, api] = onlyResource(json, "AWS::Lambda::Function", isApi);
    expect(configFromEnv(variables(api) as Record<string, string>).allowedOrigins).toEqual([
      "https://app.example.com",
      "http://localhost:5173",
    ]);
  });

  it("sets no allow-list by default (same-origin only)", () => {
    const { json } = synth();
    const [, api] = onlyResource(json, "AWS::Lambda::Function", isApi);
    expect(variables(api).CODING_ENV_ALLOWED_ORIGINS).toBeUndefined();
  });
});
