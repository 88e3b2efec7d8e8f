// The security- and cost-relevant properties of the deployed stack, pinned on the synthesized
// CloudFormation template (aws-cdk-lib/assertions). Synthesis runs offline, without Docker.
import { readFileSync } from "node:fs";
import { App, Stack } from "aws-cdk-lib";
import { Match } from "aws-cdk-lib/assertions";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { configFromEnv, EXECUTOR_GOVERNOR_ENV } from "../../functions/src/config.js";
import {
  API_FUNCTION_TIMEOUT_S,
  CodingEnvironment,
  CodingEnvironmentPropsError,
  EXECUTOR_TIMEOUT_MARGIN_S,
} from "../lib/coding-environment.js";
import {
  isExecutor,
  onlyResource,
  propsOf,
  referencedId,
  removeSynthOutputs,
  resourcesOfType,
  runsAs,
  type Statement,
  type Synthesized,
  serviceOf,
  statementsOfRole,
  synth,
} from "./synth.js";

afterAll(removeSynthOutputs);

const isApi = runsAs("coding-env-api");
const roleIdOf = (fn: { Properties?: Record<string, unknown> }) => {
  const id = referencedId(fn.Properties?.Role);
  if (!id) throw new Error("function role is not a role of this stack");
  return id;
};
const allows = (statements: Statement[]) => statements.filter((s) => s.Effect === "Allow");
const ENI_ACTIONS = [
  "ec2:CreateNetworkInterface",
  "ec2:DescribeNetworkInterfaces",
  "ec2:DeleteNetworkInterface",
  "ec2:AssignPrivateIpAddresses",
  "ec2:UnassignPrivateIpAddresses",
];

describe("default deployment", () => {
  let s: Synthesized;
  beforeAll(() => {
    s = synth();
  });

  it("runs every Lambda function on arm64 with JSON logs, platform lines dropped (system level WARN), and has exactly the API, the WebSocket API's, the executor and the usage roll-up (no helper Lambdas)", () => {
    const functions = resourcesOfType(s.json, "AWS::Lambda::Function");
    expect(functions.map(([, fn]) => serviceOf(fn) ?? "executor").sort()).toEqual([
      "coding-env-api",
      "coding-env-usage",
      "coding-env-ws",
      "executor",
    ]);
    for (const [, fn] of functions) {
      expect(fn.Properties?.Architectures).toEqual(["arm64"]);
      expect(fn.Properties?.LoggingConfig).toMatchObject({
        LogFormat: "JSON",
        SystemLogLevel: "WARN",
        ApplicationLogLevel: "INFO",
      });
    }
  });

  it("runs the API on Node.js 22 from the esbuild bundle with source maps, JSON logs and its settings", () => {
    const [, api] = onlyResource(s.json, "AWS::Lambda::Function", isApi);
    const [executorId] = onlyResource(s.json, "AWS::Lambda::Function", isExecutor);
    const [tableId] = onlyResource(s.json, "AWS::DynamoDB::Table");
    expect(api.Properties).toMatchObject({
      Runtime: "nodejs22.x",
      Handler: "index.handler",
      Timeout: API_FUNCTION_TIMEOUT_S,
      LoggingConfig: { LogFormat: "JSON" },
    });
    expect(api.Properties?.Environment).toEqual({
      Variables: {
        NODE_OPTIONS: "--enable-source-maps",
        LOG_LEVEL: "INFO",
        POWERTOOLS_SERVICE_NAME: "coding-env-api",
        CODING_ENV_TABLE: { Ref: tableId },
        CODING_ENV_EXECUTOR_FUNCTION: { "Fn::GetAtt": [executorId, "Arn"] },
        CODING_ENV_EXECUTOR_MEMORY_MB: "1024",
        CODING_ENV_AUTH: "on",
        CODING_ENV_DEFAULT_STEP_TIMEOUT_S: "20",
        CODING_ENV_MAX_STEP_TIMEOUT_S: "20",
        CODING_ENV_EXECUTOR_GRACE_S: "6",
        CODING_ENV_REQUEST_DEADLINE_S: "27",
        CODING_ENV_QUOTA_MAX_STEP_TIMEOUT_S: "20",
        CODING_ENV_STATE_BUCKET: { Ref: onlyResource(s.json, "AWS::S3::Bucket")[0] },
      },
    });
  });

  it("runs the executor from the python-runtime image (arm64) with tenant isolation, its memory, timeout and JSON logs", () => {
    // Lambda's tenant isolation mode: an execution environment serves one TenantId only.
    s.template.hasResourceProperties("AWS::Lambda::Function", {
      PackageType: "Image",
      TenancyConfig: { TenantIsolationMode: "PER_TENANT" },
    });
    const [, executor] = onlyResource(s.json, "AWS::Lambda::Function", isExecutor);
    expect(executor.Properties).toMatchObject({
      PackageType: "Image",
      Architectures: ["arm64"],
      MemorySize: 1024,
      Timeout: 20 + EXECUTOR_TIMEOUT_MARGIN_S,
      LoggingConfig: { LogFormat: "JSON", SystemLogLevel: "WARN" },
      ImageConfig: { Command: ["coding_env_runtime.handler.handler"] },
      // User code's memory limit leaves room for the runtime inside the Lambda's memory.
      Environment: {
        Variables: { CODING_ENV_WORKER_MEMORY_MB: "768", CODING_ENV_WORKER_MAX_MEMORY_MB: "768" },
      },
    });
    expect(executor.Properties?.ReservedConcurrentExecutions).toBeUndefined();
    expect(JSON.stringify(executor.Properties?.Code)).toContain("container-assets");
    // The image is Lambda's Python 3.12 or later (3.11 on Lambda is deprecated in June 2027).
    const dockerfile = readFileSync(new URL("../../python-runtime/Dockerfile", import.meta.url), "utf8");
    const base = /^FROM\s+public\.ecr\.aws\/lambda\/python:3\.(\d+)/m.exec(dockerfile);
    expect(Number(base?.[1])).toBeGreaterThanOrEqual(12);
  });

  it("places the executor in isolated subnets only: no route out but the S3 gateway endpoint's, no NAT or internet gateway, HTTPS egress only", () => {
    const [, executor] = onlyResource(s.json, "AWS::Lambda::Function", isExecutor);
    const vpcConfig = executor.Properties?.VpcConfig as { SubnetIds: unknown[]; SecurityGroupIds: unknown[] };
    expect(vpcConfig.SubnetIds.length).toBeGreaterThanOrEqual(2);

    const subnetIds = vpcConfig.SubnetIds.map(referencedId);
    for (const subnetId of subnetIds) {
      const subnet = s.json.Resources[subnetId as string];
      expect(subnet?.Type).toBe("AWS::EC2::Subnet");
      expect(subnet?.Properties?.MapPublicIpOnLaunch).toBe(false);
      const tags = subnet?.Properties?.Tags as { Key: string; Value: string }[];
      expect(tags).toContainEqual({ Key: "aws-cdk:subnet-type", Value: "Isolated" });
    }
    expect(resourcesOfType(s.json, "AWS::EC2::Route")).toEqual([]);
    expect(resourcesOfType(s.json, "AWS::EC2::NatGateway")).toEqual([]);
    expect(resourcesOfType(s.json, "AWS::EC2::InternetGateway")).toEqual([]);
    // The only endpoint: S3's gateway (state objects; infra/test/state-bucket.test.ts).
    expect(
      resourcesOfType(s.json, "AWS::EC2::VPCEndpoint").map(([, e]) => e.Properties?.VpcEndpointType),
    ).toEqual(["Gateway"]);

    const [sgId] = vpcConfig.SecurityGroupIds.map(referencedId);
    const sg = s.json.Resources[sgId as string];
    // HTTPS only, which the isolated subnets route only to the S3 gateway endpoint.
    expect(sg?.Properties?.SecurityGroupEgress).toEqual([
      expect.objectContaining({ CidrIp: "0.0.0.0/0", IpProtocol: "tcp", FromPort: 443, ToPort: 443 }),
    ]);
    expect(sg?.Properties?.SecurityGroupIngress).toBeUndefined();
    expect(resourcesOfType(s.json, "AWS::EC2::SecurityGroupIngress")).toEqual([]);
  });

  it("gives the executor role its own log group and nothing else: no DynamoDB, Lambda, S3 or other service", () => {
    const [, executor] = onlyResource(s.json, "AWS::Lambda::Function", isExecutor);
    const logGroupId = referencedId((propsOf(executor).LoggingConfig as { LogGroup: unknown }).LogGroup);
    const { statements, managedPolicies } = statementsOfRole(s.json, roleIdOf(executor));
    expect(managedPolicies).toEqual([]);

    const allowed = allows(statements);
    const services = new Set(allowed.flatMap((st) => st.Action.map((a) => a.split(":")[0])));
    expect([...services].sort()).toEqual(["ec2", "logs"]);
    for (const st of allowed) {
      if (st.Action.some((a) => a.startsWith("logs:"))) {
        expect(st.Action.sort()).toEqual(["logs:CreateLogStream", "logs:PutLogEvents"]);
        expect(st.Resource).toEqual([{ "Fn::GetAtt": [logGroupId, "Arn"] }]);
      } else {
        // Lambda's own network-interface management for a VPC function, nothing more.
        expect(st.Action.every((a) => ENI_ACTIONS.includes(a))).toBe(true);
      }
    }
    const text = JSON.stringify(allowed);
    for (const forbidden of [
      "dynamodb:",
      "lambda:",
      "s3:",
      "kms:",
      "sts:",
      "secretsmanager:",
      "ssm:",
      "iam:",
    ]) {
      expect(text).not.toContain(forbidden);
    }
    // The function's code is denied every ec2 action: requests from inside the execution environment
    // carry lambda:SourceFunctionArn, Lambda's own ENI management does not.
    expect(statements.filter((st) => st.Effect === "Deny")).toEqual([
      {
        Effect: "Deny",
        Action: ["ec2:*"],
        Resource: ["*"],
        Condition: { Null: { "lambda:SourceFunctionArn": "false" } },
      },
    ]);
  });

  it("lets the API role read/write its table, invoke the executor (a TenantId needs no other action) and sign/list/delete state objects, and nothing else", () => {
    const [, api] = onlyResource(s.json, "AWS::Lambda::Function", isApi);
    const [executorId] = onlyResource(s.json, "AWS::Lambda::Function", isExecutor);
    const [tableId] = onlyResource(s.json, "AWS::DynamoDB::Table");
    const logGroupId = referencedId((propsOf(api).LoggingConfig as { LogGroup: unknown }).LogGroup);
    const { statements, managedPolicies } = statementsOfRole(s.json, roleIdOf(api));
    expect(managedPolicies).toEqual([]);
    expect(statements.every((st) => st.Effect === "Allow")).toBe(true);

    const dynamo = statements.filter((st) => st.Action.some((a) => a.startsWith("dynamodb:")));
    expect(dynamo.length).toBeGreaterThan(0);
    for (const st of dynamo) {
      expect(st.Action.every((a) => a.startsWith("dynamodb:"))).toBe(true);
      expect(st.Resource).toEqual([{ "Fn::GetAtt": [tableId, "Arn"] }]);
    }
    const granted = new Set(dynamo.flatMap((st) => st.Action));
    for (const needed of [
      "dynamodb:GetItem",
      "dynamodb:PutItem",
      "dynamodb:UpdateItem",
      "dynamodb:DeleteItem",
      "dynamodb:Query",
      "dynamodb:ConditionCheckItem",
    ]) {
      expect(granted).toContain(needed);
    }
    // Data-plane only: no table administration.
    for (const admin of [
      "dynamodb:DeleteTable",
      "dynamodb:UpdateTable",
      "dynamodb:CreateTable",
      "dynamodb:*",
    ]) {
      expect(granted).not.toContain(admin);
    }

    // State objects: infra/test/state-bucket.test.ts checks them.
    const others = statements.filter(
      (st) => !dynamo.includes(st) && !st.Action.some((a) => a.startsWith("s3:")),
    );
    expect(others).toEqual(
      expect.arrayContaining([
        {
          Effect: "Allow",
          Action: ["lambda:InvokeFunction"],
          Resource: [{ "Fn::GetAtt": [executorId, "Arn"] }],
          Condition: undefined,
        },
        {
          Effect: "Allow",
          Action: ["logs:CreateLogStream", "logs:PutLogEvents"],
          Resource: [{ "Fn::GetAtt": [logGroupId, "Arn"] }],
          Condition: undefined,
        },
      ]),
    );
    expect(others).toHaveLength(2);
  });

  it("keeps one on-demand table with pk/sk, point-in-time recovery, TTL on expires_at, KMS encryption, deletion protection, retained on delete", () => {
    s.template.resourceCountIs("AWS::DynamoDB::Table", 1);
    s.template.hasResource("AWS::DynamoDB::Table", {
      DeletionPolicy: "Retain",
      UpdateReplacePolicy: "Retain",
      Properties: {
        BillingMode: "PAY_PER_REQUEST",
        KeySchema: [
          { AttributeName: "pk", KeyType: "HASH" },
          { AttributeName: "sk", KeyType: "RANGE" },
        ],
        AttributeDefinitions: [
          { AttributeName: "pk", AttributeType: "S" },
          { AttributeName: "sk", AttributeType: "S" },
        ],
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        TimeToLiveSpecification: { AttributeName: "expires_at", Enabled: true },
        StreamSpecification: { StreamViewType: "NEW_AND_OLD_IMAGES" },
        // SSEEnabled: true is the AWS-managed KMS key (aws/dynamodb), not the AWS-owned default.
        SSESpecification: { SSEEnabled: true },
        DeletionProtectionEnabled: true,
      },
    });
  });

  it("routes everything to the API Lambda (payload v2) through a throttled, access-logged $default stage", () => {
    const [apiFnId] = onlyResource(s.json, "AWS::Lambda::Function", isApi);
    s.template.hasResourceProperties("AWS::ApiGatewayV2::Api", { ProtocolType: "HTTP" });
    const [httpApiId] = onlyResource(
      s.json,
      "AWS::ApiGatewayV2::Api",
      (r) => r.Properties?.ProtocolType === "HTTP",
    );
    s.template.hasResourceProperties("AWS::ApiGatewayV2::Route", {
      ApiId: { Ref: httpApiId },
      RouteKey: "$default",
    });
    expect(
      resourcesOfType(s.json, "AWS::ApiGatewayV2::Route").filter(
        ([, r]) => JSON.stringify(r.Properties?.ApiId) === JSON.stringify({ Ref: httpApiId }),
      ),
    ).toHaveLength(1);
    s.template.hasResourceProperties("AWS::ApiGatewayV2::Integration", {
      ApiId: { Ref: httpApiId },
      IntegrationType: "AWS_PROXY",
      PayloadFormatVersion: "2.0",
      IntegrationUri: { "Fn::GetAtt": [apiFnId, "Arn"] },
    });
    s.template.hasResourceProperties("AWS::ApiGatewayV2::Stage", {
      StageName: "$default",
      AutoDeploy: true,
      DefaultRouteSettings: { ThrottlingRateLimit: 50, ThrottlingBurstLimit: 100 },
      AccessLogSettings: {
        DestinationArn: Match.anyValue(),
        Format: Match.stringLikeRegexp("responseLatency"),
      },
    });
    // Only API Gateway may invoke the API function, only from this API.
    s.template.hasResourceProperties("AWS::Lambda::Permission", {
      Principal: "apigateway.amazonaws.com",
      FunctionName: { "Fn::GetAtt": [apiFnId, "Arn"] },
      SourceArn: Match.anyValue(),
    });
  });

  it("sets a retention on every log group", () => {
    const groups = resourcesOfType(s.json, "AWS::Logs::LogGroup");
    expect(groups).toHaveLength(5); // API, WebSocket, executor, usage roll-up, access logs
    for (const [, group] of groups) expect(group.Properties?.RetentionInDays).toBe(30);
  });

  it("alarms on API 5xx rate, executor errors, executor and API throttles and usage dead letters", () => {
    const alarms = resourcesOfType(s.json, "AWS::CloudWatch::Alarm").map(([, a]) => a.Properties ?? {});
    expect(alarms).toHaveLength(5);
    const rate = alarms.find((a) => Array.isArray(a.Metrics));
    expect(JSON.stringify(rate?.Metrics)).toMatch(
      /"MetricName":"5xx".*"MetricName":"Count"|"MetricName":"Count".*"MetricName":"5xx"/,
    );
    expect(rate?.Threshold).toBe(5);
    expect(
      alarms
        .map((a) => a.MetricName)
        .filter(Boolean)
        .sort(),
    ).toEqual(["ApproximateNumberOfMessagesVisible", "Errors", "Throttles", "Throttles"]);
    for (const a of alarms) expect(a.TreatMissingData).toBe("notBreaching");
  });

  it("has a dashboard with step latency, step count and executor duration, fed by access-log metric filters (the HTTP API's and the function URL's)", () => {
    const [, dashboard] = onlyResource(s.json, "AWS::CloudWatch::Dashboard");
    const body = JSON.stringify(dashboard.Properties?.DashboardBody);
    for (const metric of ["StepLatency", "Steps", "Duration", "MessageCount", "IteratorAge"])
      expect(body).toContain(metric);
    const filters = resourcesOfType(s.json, "AWS::Logs::MetricFilter").map(([, f]) => f.Properties ?? {});
    expect(
      filters.map((f) => (f.MetricTransformations as { MetricName: string }[])[0]?.MetricName).sort(),
    ).toEqual(["StepLatency", "StepLatency", "Steps", "Steps"]);
    expect(filters.map((f) => f.FilterPattern).sort()).toEqual([
      '{ ($.message = "access") && ($.method = "POST") && ($.path = "/step") }',
      '{ ($.message = "access") && ($.method = "POST") && ($.path = "/step") }',
      '{ ($.method = "POST") && ($.path = "/step") }',
      '{ ($.method = "POST") && ($.path = "/step") }',
    ]);
  });

  it("outputs the one base URL (the distribution), its /ws and /web, and the HTTP API's own URL", () => {
    const [apiId] = onlyResource(
      s.json,
      "AWS::ApiGatewayV2::Api",
      (r) => r.Properties?.ProtocolType === "HTTP",
    );
    const [distributionId] = onlyResource(s.json, "AWS::CloudFront::Distribution");
    const endpoint = { "Fn::GetAtt": [apiId, "ApiEndpoint"] };
    const domain = { "Fn::GetAtt": [distributionId, "DomainName"] };
    expect(s.json.Outputs?.BaseUrl?.Value).toEqual({ "Fn::Join": ["", ["https://", domain, "/"]] });
    expect(s.json.Outputs?.WebSocketUrl?.Value).toEqual({ "Fn::Join": ["", ["wss://", domain, "/ws"]] });
    expect(s.json.Outputs?.WebUiUrl?.Value).toEqual({ "Fn::Join": ["", ["https://", domain, "/web"]] });
    expect(s.json.Outputs?.HttpApiUrl?.Value).toEqual({ "Fn::Join": ["", [endpoint, "/"]] });
    expect(Object.keys(s.json.Outputs ?? {})).toEqual(
      expect.arrayContaining(["TableName", "ExecutorFunctionName", "DashboardName"]),
    );
  });
});

describe("configuration through context (-c coding-env:KEY=VALUE)", () => {
  it("tenantConcurrencyLimit=always makes every API step take its tenant's slot (CODING_ENV_EXECUTOR_GOVERNOR=always)", () => {
    const { json } = synth({ context: { tenantConcurrencyLimit: "always" } });
    const [, api] = onlyResource(json, "AWS::Lambda::Function", isApi);
    const env = (propsOf(api).Environment as { Variables: Record<string, unknown> }).Variables;
    expect(env[EXECUTOR_GOVERNOR_ENV.governor]).toBe("always");
    expect(
      configFromEnv({ [EXECUTOR_GOVERNOR_ENV.governor]: "always", CODING_ENV_AUTH: "on" }),
    ).toMatchObject({
      executorGovernor: true,
      executorGovernorAlways: true,
    });
  });

  it("applies string values as -c gives them: executor memory (and its metering env), concurrency, step limits, quotas, throttling, retention", () => {
    const { template, json } = synth({
      context: {
        executorMemoryMb: "2048",
        executorReservedConcurrency: "20",
        defaultStepTimeoutSeconds: "10",
        maxStepTimeoutSeconds: "15",
        apiRateLimit: "5",
        apiBurstLimit: "7",
        logRetentionDays: "7",
        authRequired: "false",
        logLevel: "DEBUG",
        quotaStepsPerDay: "500",
        quotaActiveEpisodes: "3",
        quotaMaxStateBytes: "1048576",
      },
    });
    const [, executor] = onlyResource(json, "AWS::Lambda::Function", isExecutor);
    expect(executor.Properties).toMatchObject({
      MemorySize: 2048,
      ReservedConcurrentExecutions: 20,
      Timeout: 15 + EXECUTOR_TIMEOUT_MARGIN_S,
      Environment: {
        Variables: { CODING_ENV_WORKER_MEMORY_MB: "1792", CODING_ENV_WORKER_MAX_MEMORY_MB: "1792" },
      },
    });
    template.hasResourceProperties("AWS::Lambda::Function", {
      Runtime: "nodejs22.x",
      Environment: {
        Variables: Match.objectLike({
          CODING_ENV_EXECUTOR_MEMORY_MB: "2048",
          CODING_ENV_DEFAULT_STEP_TIMEOUT_S: "10",
          CODING_ENV_MAX_STEP_TIMEOUT_S: "15",
          CODING_ENV_AUTH: "off",
          LOG_LEVEL: "DEBUG",
          CODING_ENV_QUOTA_STEPS_PER_DAY: "500",
          CODING_ENV_QUOTA_ACTIVE_EPISODES: "3",
          CODING_ENV_QUOTA_MAX_STATE_BYTES: "1048576",
          CODING_ENV_QUOTA_MAX_STEP_TIMEOUT_S: "15",
          // The executor governor's share of the executor (a tenant: half of it while throttled).
          [EXECUTOR_GOVERNOR_ENV.reservedConcurrency]: "20",
        }),
      },
    });
    template.hasResourceProperties("AWS::ApiGatewayV2::Stage", {
      DefaultRouteSettings: { ThrottlingRateLimit: 5, ThrottlingBurstLimit: 7 },
    });
    // The application log level of every function follows the setting.
    for (const [, fn] of resourcesOfType(json, "AWS::Lambda::Function"))
      expect(fn.Properties?.LoggingConfig).toMatchObject({
        ApplicationLogLevel: "DEBUG",
        SystemLogLevel: "WARN",
      });
    for (const [, group] of resourcesOfType(json, "AWS::Logs::LogGroup"))
      expect(group.Properties?.RetentionInDays).toBe(7);
  });

  it("turns internet access on by running the executor outside any VPC (no NAT gateway), its role keeping logs only", () => {
    const { json } = synth({ context: { executorInternetAccess: "true" } });
    const [, executor] = onlyResource(json, "AWS::Lambda::Function", isExecutor);
    expect(executor.Properties?.VpcConfig).toBeUndefined();
    expect(resourcesOfType(json, "AWS::EC2::VPC")).toEqual([]);
    expect(resourcesOfType(json, "AWS::EC2::NatGateway")).toEqual([]);
    const { statements } = statementsOfRole(json, roleIdOf(executor));
    expect(statements.flatMap((st) => st.Action).sort()).toEqual([
      "logs:CreateLogStream",
      "logs:PutLogEvents",
    ]);
  });

  it("lets the table be deleted with the stack when asked (deletion protection off, removal policy Delete)", () => {
    const { template } = synth({ context: { deletionProtection: false, retainTable: false } });
    template.hasResource("AWS::DynamoDB::Table", {
      DeletionPolicy: "Delete",
      Properties: Match.objectLike({ DeletionProtectionEnabled: false }),
    });
  });

  it("sends alarm and OK notifications to an existing SNS topic", () => {
    const arn = "arn:aws:sns:us-east-1:123456789012:ops-alerts";
    const { json } = synth({ context: { alarmTopicArn: arn, stackName: "CodingEnvStaging" } });
    const alarms = resourcesOfType(json, "AWS::CloudWatch::Alarm");
    expect(alarms).toHaveLength(5);
    for (const [, alarm] of alarms) {
      expect(alarm.Properties?.AlarmActions).toEqual([arn]);
      expect(alarm.Properties?.OKActions).toEqual([arn]);
    }
  });

  it.each([
    [{ executorMemoryMb: "lots" }, /coding-env:executorMemoryMb: expected a number/],
    [{ executorInternetAccess: "yes" }, /coding-env:executorInternetAccess: expected true or false/],
    [{ logRetentionDays: "31" }, /coding-env:logRetentionDays: 31 is not a CloudWatch retention/],
    [{ logLevel: "LOUD" }, /coding-env:logLevel/],
    [{ alarmTopicArn: "ops-alerts" }, /not an SNS topic ARN/],
    [{ executorMemoryMB: "2048" }, /coding-env:executorMemoryMB: unknown key/],
    [{ maxStepTimeoutSeconds: "21" }, /maxStepTimeoutSeconds must be an integer from 1 to 20, got 21/],
    [
      { allowedOrigins: "https://app.example.com/" },
      /allowedOrigins: 'https:\/\/app.example.com\/' is not an origin/,
    ],
    [{ allowedOrigins: "*" }, /allowedOrigins: '\*' is not an origin/],
    [
      { executorAvailabilityZones: "us-east-1a,us-east-1a" },
      /executorAvailabilityZones must name one or more distinct/,
    ],
    [{ executorAvailabilityZones: "use1-az1" }, /'use1-az1' is not a zone name/],
    [
      { executorAvailabilityZones: 5 },
      /coding-env:executorAvailabilityZones: expected a comma-separated list/,
    ],
    [
      { defaultStepTimeoutSeconds: "20", maxStepTimeoutSeconds: "15" },
      /defaultStepTimeoutSeconds must be an integer from 1 to 15, got 20/,
    ],
    [{ executorMemoryMb: "256" }, /executorMemoryMb must be an integer from 512 to 10240/],
    [{ executorReservedConcurrency: "0" }, /executorReservedConcurrency must be an integer/],
    [{ tenantConcurrencyLimit: "sometimes" }, /tenantConcurrencyLimit: expected contended, always or off/],
  ])("refuses %j at synth time", (context, message) => {
    expect(() => synth({ context })).toThrow(message);
  });
});

describe("CodingEnvironment construct (props)", () => {
  it("fails fast, naming the construct, when the step limit cannot fit API Gateway's 30 s with a cold start", () => {
    const stack = new Stack(new App(), "Props");
    expect(() => new CodingEnvironment(stack, "Env", { maxStepTimeoutSeconds: 25 })).toThrow(
      CodingEnvironmentPropsError,
    );
    expect(() => new CodingEnvironment(stack, "Env2", { maxStepTimeoutSeconds: 25 })).toThrow(
      /Props\/Env2: maxStepTimeoutSeconds must be an integer from 1 to 20, got 25/,
    );
  });

  it("refuses an active-episode quota the API cannot hold (the live-id set is one item)", () => {
    const stack = new Stack(new App(), "Props");
    expect(() => new CodingEnvironment(stack, "Env", { defaultQuotas: { activeEpisodes: 5001 } })).toThrow(
      /defaultQuotas.activeEpisodes must be an integer from 1 to 5000, got 5001/,
    );
  });

  it("exposes the effective step limits", () => {
    const stack = new Stack(new App({ context: { "aws:cdk:bundling-stacks": [] } }), "Props");
    const env = new CodingEnvironment(stack, "Env", { maxStepTimeoutSeconds: 12 });
    expect([env.defaultStepTimeoutSeconds, env.maxStepTimeoutSeconds]).toEqual([12, 12]);
    expect(env.executorFunction.timeout?.toSeconds()).toBe(12 + EXECUTOR_TIMEOUT_MARGIN_S);
  });
});
