import { fileURLToPath } from "node:url";
import { Duration, RemovalPolicy, Stack, Validations } from "aws-cdk-lib";
import * as apigateway from "aws-cdk-lib/aws-apigateway";
import * as apigwv2 from "aws-cdk-lib/aws-apigatewayv2";
import { HttpLambdaIntegration } from "aws-cdk-lib/aws-apigatewayv2-integrations";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as cloudwatchActions from "aws-cdk-lib/aws-cloudwatch-actions";
import * as dynamodb from "aws-cdk-lib/aws-dynamodb";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import { Platform } from "aws-cdk-lib/aws-ecr-assets";
import * as iam from "aws-cdk-lib/aws-iam";
import type * as kms from "aws-cdk-lib/aws-kms";
import * as lambda from "aws-cdk-lib/aws-lambda";
import * as nodejs from "aws-cdk-lib/aws-lambda-nodejs";
import * as logs from "aws-cdk-lib/aws-logs";
import type * as sns from "aws-cdk-lib/aws-sns";
import { Construct } from "constructs";
import { MAX_ACTIVE_EPISODES_QUOTA } from "../../functions/src/tenancy/quotas.js";

/**
 * Seconds API Gateway waits for the API Lambda: HTTP APIs answer a synchronous request within 30 s
 * at most, and CDK accepts integration timeouts up to 29 s.
 */
export const API_INTEGRATION_TIMEOUT_S = 29;
/** The API Lambda stops one second before API Gateway gives up, so its own error reaches the client. */
export const API_FUNCTION_TIMEOUT_S = API_INTEGRATION_TIMEOUT_S - 1;
/** The API's work beside the executor: one GetItem before the step, one TransactWriteItems after. */
export const API_OVERHEAD_S = 1;
/**
 * Seconds the executor Lambda may run beyond the step limit: snapshot restore before user code and
 * snapshot pickling after it are not covered by the per-step timer (user code is killed at it).
 */
export const EXECUTOR_TIMEOUT_MARGIN_S = 2;
/**
 * Memory of the executor Lambda kept for the runtime itself (Python, the zygote, idle workers):
 * user code gets the rest as its address-space limit, so a greedy cell ends as a clean
 * `MemoryError` instead of Lambda killing the whole execution environment.
 */
export const EXECUTOR_RUNTIME_RESERVE_MB = 256;
/** The largest per-step timeout that fits API Gateway's limit with the margins above: 25 s. */
export const MAX_STEP_TIMEOUT_LIMIT_S = API_FUNCTION_TIMEOUT_S - API_OVERHEAD_S - EXECUTOR_TIMEOUT_MARGIN_S;

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));

/**
 * How the API Lambda is bundled (local esbuild, never Docker): one ES module with every dependency
 * inside (the AWS SDK too, so AWS runs the versions the local stack and the tests run), source maps.
 */
export const apiBundlingOptions: nodejs.BundlingOptions = {
  forceDockerBundling: false,
  format: nodejs.OutputFormat.ESM,
  target: "node22",
  mainFields: ["module", "main"],
  externalModules: [],
  minify: true,
  sourceMap: true,
  sourcesContent: false,
  // CommonJS dependencies bundled into an ES module still call require().
  banner:
    "import { createRequire as __cdkCreateRequire } from 'node:module'; const require = __cdkCreateRequire(import.meta.url);",
};

/** Throttling of the HTTP API's stage (all routes together). */
export interface ApiThrottleOpts {
  /** Steady-state requests per second. @default 50 */
  readonly rateLimit?: number;
  /** Burst bucket size in requests. @default 100 */
  readonly burstLimit?: number;
}

/** Per-tenant quota defaults of the deployment; an API key may override them (`npm run keys`). */
export interface DefaultQuotasOpts {
  /** Steps per tenant per UTC day. @default 10000 (the API's built-in default) */
  readonly stepsPerDay?: number;
  /**
   * Episodes alive at once per tenant, at most 5000 (the set of live ids is one DynamoDB item).
   * @default 50 (the API's built-in default)
   */
  readonly activeEpisodes?: number;
  /** Size of one episode's stored Python state, in bytes. @default 2097152 (the API's built-in default) */
  readonly maxStateBytes?: number;
}

/** Properties of {@link CodingEnvironment}. Every property is optional; the defaults deploy a secure stack. */
export interface CodingEnvironmentProps {
  /**
   * Memory of the Python executor Lambda in MB. Lambda gives CPU in proportion to memory
   * (1,769 MB = one vCPU). Also reported to the API as `CODING_ENV_EXECUTOR_MEMORY_MB` for metering.
   * User code may use this minus {@link EXECUTOR_RUNTIME_RESERVE_MB} (its address-space limit).
   * @default 1024
   */
  readonly executorMemoryMb?: number;
  /**
   * Reserved concurrency of the executor: caps the number of steps running at once (and so the
   * spend), and guarantees them that capacity. New accounts have only 10 concurrent executions in
   * total and Lambda keeps 10 unreserved, so reserving anything there fails the deployment.
   * @default - no reservation (the executor shares the account's unreserved pool)
   */
  readonly executorReservedConcurrency?: number;
  /**
   * Give user code outbound internet access (`pip download`, HTTP calls). When `false` the executor
   * runs in a VPC with only isolated subnets (no route out, no NAT gateway: nothing to pay); when
   * `true` it runs outside any VPC with Lambda's own internet egress (still no NAT gateway).
   * @default false
   */
  readonly executorInternetAccess?: boolean;
  /**
   * Per-step timeout used when a request does not ask for one, in seconds.
   * Must be at most `maxStepTimeoutSeconds`.
   * @default 25
   */
  readonly defaultStepTimeoutSeconds?: number;
  /**
   * Largest per-step timeout a request may ask for, in seconds. API Gateway answers within 30 s, so
   * this is at most {@link MAX_STEP_TIMEOUT_LIMIT_S} (25); the executor's Lambda timeout is this plus
   * {@link EXECUTOR_TIMEOUT_MARGIN_S}.
   * @default 25
   */
  readonly maxStepTimeoutSeconds?: number;
  /**
   * Memory of the API (Hono) Lambda in MB.
   * @default 512
   */
  readonly apiMemoryMb?: number;
  /**
   * Require API keys (`CODING_ENV_AUTH=on`). Turn off only for a private test deployment.
   * @default true
   */
  readonly authRequired?: boolean;
  /**
   * Per-tenant quota defaults (`CODING_ENV_QUOTA_*`). The per-tenant step-timeout quota is always
   * the deployment's `maxStepTimeoutSeconds`.
   * @default - the API's built-in defaults
   */
  readonly defaultQuotas?: DefaultQuotasOpts;
  /**
   * Throttling of the HTTP API stage.
   * @default { rateLimit: 50, burstLimit: 100 }
   */
  readonly apiThrottle?: ApiThrottleOpts;
  /**
   * How long CloudWatch keeps the Lambda and access logs.
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;
  /**
   * DynamoDB deletion protection on the table (a `DeleteTable` call fails while it is on).
   * @default true
   */
  readonly deletionProtection?: boolean;
  /**
   * What `cdk destroy` does with the table. `RETAIN` keeps the data after the stack is deleted.
   * @default RemovalPolicy.RETAIN
   */
  readonly tableRemovalPolicy?: RemovalPolicy;
  /**
   * Customer-managed KMS key for the table. The API function is granted use of it.
   * @default - encrypted with the AWS-managed key `aws/dynamodb`
   */
  readonly tableEncryptionKey?: kms.IKey;
  /**
   * Topic that the alarms notify (alarm and OK).
   * @default - alarms only change state (visible in the console and the dashboard)
   */
  readonly alarmTopic?: sns.ITopic;
  /**
   * The API 5xx alarm fires when this percentage of requests in 5 minutes are 5xx.
   * @default 5
   */
  readonly api5xxAlarmPercent?: number;
  /**
   * `LOG_LEVEL` of the API function (Powertools logger).
   * @default "INFO"
   */
  readonly logLevel?: "DEBUG" | "INFO" | "WARN" | "ERROR";
  /**
   * The API Lambda's entry file. @default `functions/src/lambda.ts` of this repository
   */
  readonly apiEntry?: string;
  /**
   * Docker build context of the executor image (holds its `Dockerfile`).
   * @default `python-runtime/` of this repository
   */
  readonly executorImageDirectory?: string;
}

/** A prop of {@link CodingEnvironment} that cannot work in AWS; the message names the construct and the prop. */
export class CodingEnvironmentPropsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CodingEnvironmentPropsError";
  }
}

function requireInteger(scope: Construct, name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new CodingEnvironmentPropsError(
      `${scope.node.path}: ${name} must be an integer from ${min} to ${max}, got ${value}`,
    );
  }
  return value;
}

/**
 * coding-env in one AWS account: an HTTP API in front of the TypeScript API Lambda, a DynamoDB
 * table, and the containerized Python executor Lambda without permissions or network.
 *
 * @example
 * const env = new CodingEnvironment(stack, "CodingEnv", { executorMemoryMb: 2048 });
 * new CfnOutput(stack, "ApiUrl", { value: env.apiUrl });
 */
export class CodingEnvironment extends Construct {
  /** The single table (pk/sk strings, TTL `expires_at`). */
  readonly table: dynamodb.Table;
  /** The TypeScript API Lambda (Hono). */
  readonly apiFunction: nodejs.NodejsFunction;
  /** The Python executor Lambda (container image). */
  readonly executorFunction: lambda.DockerImageFunction;
  /** The HTTP API. */
  readonly httpApi: apigwv2.HttpApi;
  /** The `$default` stage of the HTTP API. */
  readonly stage: apigwv2.HttpStage;
  /** The isolated VPC of the executor; `undefined` when `executorInternetAccess` is on. */
  readonly vpc?: ec2.Vpc;
  /** Base URL of the API, ending in `/`. */
  readonly apiUrl: string;
  /** URL of the HumanAgent web page. */
  readonly webUiUrl: string;
  /** The alarms: API 5xx rate, executor errors, executor throttles. */
  readonly alarms: cloudwatch.Alarm[];
  /** The dashboard: step latency, step count, executor duration. */
  readonly dashboard: cloudwatch.Dashboard;
  /** The effective per-step timeout when a request asks none, in seconds. */
  readonly defaultStepTimeoutSeconds: number;
  /** The effective largest per-step timeout, in seconds (the executor's Lambda timeout is this + 2). */
  readonly maxStepTimeoutSeconds: number;

  constructor(scope: Construct, id: string, props: CodingEnvironmentProps = {}) {
    super(scope, id);

    // Fail fast on settings that cannot work in AWS.
    const executorMemoryMb = requireInteger(
      this,
      "executorMemoryMb",
      props.executorMemoryMb ?? 1024,
      512,
      10240,
    );
    const apiMemoryMb = requireInteger(this, "apiMemoryMb", props.apiMemoryMb ?? 512, 128, 10240);
    const maxStep = requireInteger(
      this,
      "maxStepTimeoutSeconds",
      props.maxStepTimeoutSeconds ?? MAX_STEP_TIMEOUT_LIMIT_S,
      1,
      MAX_STEP_TIMEOUT_LIMIT_S,
    );
    const defaultStep = requireInteger(
      this,
      "defaultStepTimeoutSeconds",
      props.defaultStepTimeoutSeconds ?? maxStep,
      1,
      maxStep,
    );
    if (props.executorReservedConcurrency !== undefined) {
      requireInteger(this, "executorReservedConcurrency", props.executorReservedConcurrency, 1, 100_000);
    }
    const rateLimit = props.apiThrottle?.rateLimit ?? 50;
    const burstLimit = props.apiThrottle?.burstLimit ?? 100;
    requireInteger(this, "apiThrottle.rateLimit", rateLimit, 1, 1_000_000);
    requireInteger(this, "apiThrottle.burstLimit", burstLimit, 1, 1_000_000);
    const api5xxAlarmPercent = props.api5xxAlarmPercent ?? 5;
    if (!(api5xxAlarmPercent > 0 && api5xxAlarmPercent <= 100)) {
      throw new CodingEnvironmentPropsError(
        `${this.node.path}: api5xxAlarmPercent must be in (0, 100], got ${api5xxAlarmPercent}`,
      );
    }
    const quotaEnv: Record<string, string> = { CODING_ENV_QUOTA_MAX_STEP_TIMEOUT_S: String(maxStep) };
    const quotas = props.defaultQuotas ?? {};
    if (quotas.stepsPerDay !== undefined) {
      quotaEnv.CODING_ENV_QUOTA_STEPS_PER_DAY = String(
        requireInteger(this, "defaultQuotas.stepsPerDay", quotas.stepsPerDay, 1, 1e9),
      );
    }
    if (quotas.activeEpisodes !== undefined) {
      quotaEnv.CODING_ENV_QUOTA_ACTIVE_EPISODES = String(
        requireInteger(
          this,
          "defaultQuotas.activeEpisodes",
          quotas.activeEpisodes,
          1,
          MAX_ACTIVE_EPISODES_QUOTA,
        ),
      );
    }
    if (quotas.maxStateBytes !== undefined) {
      quotaEnv.CODING_ENV_QUOTA_MAX_STATE_BYTES = String(
        requireInteger(this, "defaultQuotas.maxStateBytes", quotas.maxStateBytes, 1024, 1e10),
      );
    }
    this.defaultStepTimeoutSeconds = defaultStep;
    this.maxStepTimeoutSeconds = maxStep;
    const logRetention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;
    const internet = props.executorInternetAccess ?? false;

    // ---- Data ----------------------------------------------------------------------------------
    this.table = new dynamodb.Table(this, "Table", {
      partitionKey: { name: "pk", type: dynamodb.AttributeType.STRING },
      sortKey: { name: "sk", type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      timeToLiveAttribute: "expires_at",
      ...(props.tableEncryptionKey
        ? { encryption: dynamodb.TableEncryption.CUSTOMER_MANAGED, encryptionKey: props.tableEncryptionKey }
        : { encryption: dynamodb.TableEncryption.AWS_MANAGED }),
      deletionProtection: props.deletionProtection ?? true,
      removalPolicy: props.tableRemovalPolicy ?? RemovalPolicy.RETAIN,
    });

    // ---- Executor: no permissions beyond its own log group, no network by default --------------
    const executorLogGroup = new logs.LogGroup(this, "ExecutorLogs", {
      retention: logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const executorRole = new iam.Role(this, "ExecutorRole", {
      assumedBy: new iam.ServicePrincipal("lambda.amazonaws.com"),
      description: "coding-env Python executor: writes its own logs, nothing else",
    });
    executorLogGroup.grantWrite(executorRole);

    let executorNetwork: Pick<lambda.FunctionProps, "vpc" | "vpcSubnets" | "securityGroups"> = {};
    if (!internet) {
      this.vpc = new ec2.Vpc(this, "ExecutorVpc", {
        maxAzs: 2,
        natGateways: 0,
        subnetConfiguration: [
          { name: "executor", subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 24 },
        ],
        // The default security group is unused; restricting it would add a custom-resource Lambda.
        restrictDefaultSecurityGroup: false,
      });
      const securityGroup = new ec2.SecurityGroup(this, "ExecutorSecurityGroup", {
        vpc: this.vpc,
        description: "coding-env executor: no inbound, no outbound",
        allowAllOutbound: false,
      });
      executorNetwork = {
        vpc: this.vpc,
        vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
        securityGroups: [securityGroup],
      };
      // Lambda itself uses the execution role to manage the function's network interfaces; these
      // actions only work on "*" (DescribeNetworkInterfaces) and are what AWSLambdaVPCAccessExecutionRole
      // grants, without its logs:* on "*".
      executorRole.addToPolicy(
        new iam.PolicyStatement({
          sid: "LambdaServiceManagesVpcNetworkInterfaces",
          actions: [
            "ec2:CreateNetworkInterface",
            "ec2:DescribeNetworkInterfaces",
            "ec2:DeleteNetworkInterface",
            "ec2:AssignPrivateIpAddresses",
            "ec2:UnassignPrivateIpAddresses",
          ],
          resources: ["*"],
        }),
      );
      // ...but the function's own code must not use them: requests made from inside the execution
      // environment carry lambda:SourceFunctionArn; Lambda's own ENI management does not.
      executorRole.addToPolicy(
        new iam.PolicyStatement({
          sid: "DenyNetworkInterfaceCallsFromFunctionCode",
          effect: iam.Effect.DENY,
          actions: ["ec2:*"],
          resources: ["*"],
          conditions: { Null: { "lambda:SourceFunctionArn": "false" } },
        }),
      );
    }

    this.executorFunction = new lambda.DockerImageFunction(this, "Executor", {
      description: "coding-env Python executor (one code cell per invocation)",
      code: lambda.DockerImageCode.fromImageAsset(
        props.executorImageDirectory ?? `${repoRoot}python-runtime`,
        {
          platform: Platform.LINUX_ARM64,
          // The handler of the executor contract (python-runtime/README.md), whatever the image's CMD.
          cmd: ["coding_env_runtime.handler.handler"],
          exclude: ["**/__pycache__", "**/*.pyc", ".venv", "**/.pytest_cache", "**/.mypy_cache"],
        },
      ),
      architecture: lambda.Architecture.ARM_64,
      memorySize: executorMemoryMb,
      timeout: Duration.seconds(maxStep + EXECUTOR_TIMEOUT_MARGIN_S),
      role: executorRole,
      logGroup: executorLogGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      reservedConcurrentExecutions: props.executorReservedConcurrency,
      environment: {
        // Per-deployment worker memory (python-runtime/coding_env_runtime/contract.py).
        CODING_ENV_WORKER_MEMORY_MB: String(executorMemoryMb - EXECUTOR_RUNTIME_RESERVE_MB),
        CODING_ENV_WORKER_MAX_MEMORY_MB: String(executorMemoryMb - EXECUTOR_RUNTIME_RESERVE_MB),
      },
      ...executorNetwork,
    });

    // ---- API function: reads/writes its table, invokes the executor, nothing else --------------
    const apiLogGroup = new logs.LogGroup(this, "ApiLogs", {
      retention: logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const apiRole = new iam.Role(this, "ApiRole", {
      assumedBy: new iam.ServicePrincipal("lambda.amazonaws.com"),
      description: "coding-env API: its table, invoking the executor, its own logs",
    });
    apiLogGroup.grantWrite(apiRole);
    this.table.grantReadWriteData(apiRole);
    // Exactly the function ARN (no versions/aliases wildcard, unlike grantInvoke).
    apiRole.addToPolicy(
      new iam.PolicyStatement({
        actions: ["lambda:InvokeFunction"],
        resources: [this.executorFunction.functionArn],
      }),
    );

    this.apiFunction = new nodejs.NodejsFunction(this, "Api", {
      description: "coding-env HTTP API (Hono)",
      entry: props.apiEntry ?? `${repoRoot}functions/src/lambda.ts`,
      handler: "handler",
      projectRoot: repoRoot,
      depsLockFilePath: `${repoRoot}package-lock.json`,
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize: apiMemoryMb,
      timeout: Duration.seconds(API_FUNCTION_TIMEOUT_S),
      role: apiRole,
      logGroup: apiLogGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      bundling: apiBundlingOptions,
      environment: {
        NODE_OPTIONS: "--enable-source-maps",
        LOG_LEVEL: props.logLevel ?? "INFO",
        POWERTOOLS_SERVICE_NAME: "coding-env-api",
        CODING_ENV_TABLE: this.table.tableName,
        CODING_ENV_EXECUTOR_FUNCTION: this.executorFunction.functionArn,
        CODING_ENV_EXECUTOR_MEMORY_MB: String(executorMemoryMb),
        CODING_ENV_AUTH: (props.authRequired ?? true) ? "on" : "off",
        CODING_ENV_DEFAULT_STEP_TIMEOUT_S: String(defaultStep),
        CODING_ENV_MAX_STEP_TIMEOUT_S: String(maxStep),
        ...quotaEnv,
      },
    });

    // ---- HTTP API -------------------------------------------------------------------------------
    this.httpApi = new apigwv2.HttpApi(this, "HttpApi", {
      description: "coding-env: OpenEnv endpoints, /web, /docs, episode resources",
      defaultIntegration: new HttpLambdaIntegration("ApiIntegration", this.apiFunction, {
        payloadFormatVersion: apigwv2.PayloadFormatVersion.VERSION_2_0,
        timeout: Duration.seconds(API_INTEGRATION_TIMEOUT_S),
      }),
      createDefaultStage: false,
    });
    const accessLogGroup = new logs.LogGroup(this, "AccessLogs", {
      retention: logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.stage = new apigwv2.HttpStage(this, "DefaultStage", {
      httpApi: this.httpApi,
      stageName: "$default",
      autoDeploy: true,
      throttle: { rateLimit, burstLimit },
      accessLogSettings: {
        destination: new apigwv2.LogGroupLogDestination(accessLogGroup),
        // Numbers unquoted so metric filters can read them; no headers, so keys never reach logs.
        format: apigateway.AccessLogFormat.custom(
          JSON.stringify({
            requestId: "$context.requestId",
            ip: "$context.identity.sourceIp",
            method: "$context.httpMethod",
            path: "$context.path",
            routeKey: "$context.routeKey",
            status: "$context.status",
            latencyMs: "$context.responseLatency",
            integrationLatency: "$context.integrationLatency",
            integrationError: "$context.integrationErrorMessage",
            responseLength: "$context.responseLength",
          })
            .replace('"$context.status"', "$context.status")
            .replace('"$context.responseLatency"', "$context.responseLatency"),
        ),
      },
    });
    this.apiUrl = `${this.httpApi.apiEndpoint}/`;
    this.webUiUrl = `${this.httpApi.apiEndpoint}/web`;

    // ---- Metrics, alarms, dashboard ----------------------------------------------------------
    // Step latency and count come from the access log (end-to-end as the client sees it), so they
    // do not depend on the API's own log format.
    const metricNamespace = `CodingEnv/${Stack.of(this).stackName}`;
    const stepFilter = logs.FilterPattern.all(
      logs.FilterPattern.stringValue("$.method", "=", "POST"),
      logs.FilterPattern.stringValue("$.path", "=", "/step"),
    );
    new logs.MetricFilter(this, "StepLatencyFilter", {
      logGroup: accessLogGroup,
      filterPattern: stepFilter,
      metricNamespace,
      metricName: "StepLatency",
      metricValue: "$.latencyMs",
      unit: cloudwatch.Unit.MILLISECONDS,
    });
    new logs.MetricFilter(this, "StepCountFilter", {
      logGroup: accessLogGroup,
      filterPattern: stepFilter,
      metricNamespace,
      metricName: "Steps",
      metricValue: "1",
      unit: cloudwatch.Unit.COUNT,
    });
    const stepLatency = (stat: string) =>
      new cloudwatch.Metric({
        namespace: metricNamespace,
        metricName: "StepLatency",
        statistic: stat,
        period: Duration.minutes(5),
        unit: cloudwatch.Unit.MILLISECONDS,
      });
    const stepCount = new cloudwatch.Metric({
      namespace: metricNamespace,
      metricName: "Steps",
      statistic: "Sum",
      period: Duration.minutes(5),
    });

    const apiId = { ApiId: this.httpApi.apiId };
    const requests = new cloudwatch.Metric({
      namespace: "AWS/ApiGateway",
      metricName: "Count",
      dimensionsMap: apiId,
      statistic: "Sum",
      period: Duration.minutes(5),
    });
    const serverErrors = new cloudwatch.Metric({
      namespace: "AWS/ApiGateway",
      metricName: "5xx",
      dimensionsMap: apiId,
      statistic: "Sum",
      period: Duration.minutes(5),
    });
    const api5xxRate = new cloudwatch.MathExpression({
      expression: "IF(requests > 0, 100 * errors / requests, 0)",
      usingMetrics: { errors: serverErrors, requests },
      label: "API 5xx rate (%)",
      period: Duration.minutes(5),
    });

    this.alarms = [
      new cloudwatch.Alarm(this, "Api5xxRateAlarm", {
        alarmDescription: `More than ${api5xxAlarmPercent}% of API requests answered 5xx in 5 minutes`,
        metric: api5xxRate,
        threshold: api5xxAlarmPercent,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
      // User-code failures are data, not Lambda errors: any executor error is a runtime fault.
      new cloudwatch.Alarm(this, "ExecutorErrorsAlarm", {
        alarmDescription: "The Python executor reported function errors (runtime faults, timeouts)",
        metric: this.executorFunction.metricErrors({ period: Duration.minutes(5), statistic: "Sum" }),
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
      new cloudwatch.Alarm(this, "ExecutorThrottlesAlarm", {
        alarmDescription: "The Python executor was throttled (concurrency limit reached)",
        metric: this.executorFunction.metricThrottles({ period: Duration.minutes(5), statistic: "Sum" }),
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
    ];
    if (props.alarmTopic) {
      const action = new cloudwatchActions.SnsAction(props.alarmTopic);
      for (const alarm of this.alarms) {
        alarm.addAlarmAction(action);
        alarm.addOkAction(action);
      }
    }

    this.dashboard = new cloudwatch.Dashboard(this, "Dashboard", {
      defaultInterval: Duration.hours(3),
      widgets: [
        [
          new cloudwatch.GraphWidget({
            title: "Step latency (POST /step, ms)",
            left: [stepLatency("p50"), stepLatency("p90"), stepLatency("p99")],
            width: 12,
          }),
          new cloudwatch.GraphWidget({ title: "Steps (per 5 minutes)", left: [stepCount], width: 12 }),
        ],
        [
          new cloudwatch.GraphWidget({
            title: "Executor duration (ms)",
            left: [
              this.executorFunction.metricDuration({ statistic: "p50" }),
              this.executorFunction.metricDuration({ statistic: "p99" }),
              this.executorFunction.metricDuration({ statistic: "Maximum" }),
            ],
            width: 12,
          }),
          new cloudwatch.GraphWidget({
            title: "Executor errors, throttles, concurrency",
            left: [this.executorFunction.metricErrors(), this.executorFunction.metricThrottles()],
            right: [this.executorFunction.metric("ConcurrentExecutions", { statistic: "Maximum" })],
            width: 12,
          }),
        ],
        [
          new cloudwatch.GraphWidget({ title: "API 5xx rate (%)", left: [api5xxRate], width: 12 }),
          new cloudwatch.AlarmStatusWidget({ title: "Alarms", alarms: this.alarms, width: 12 }),
        ],
      ],
    });

    this.acknowledgeNagFindings(executorRole);
  }

  /**
   * cdk-nag AwsSolutions findings that are deliberate, acknowledged finding by finding (cdk-nag v3
   * uses CDK's `Validations`), each with its reason. The tests fail on any finding not listed here.
   */
  private acknowledgeNagFindings(executorRole: iam.Role): void {
    Validations.of(this.apiFunction).acknowledge({
      id: "AwsSolutions-L1",
      reason:
        "Node.js 22 is the runtime this project targets and tests (esbuild target node22, CI on Node 20/22); moving to a newer runtime is a deliberate upgrade, not a default.",
    });
    if (this.vpc) {
      Validations.of(executorRole).acknowledge({
        id: "AwsSolutions-IAM5[Resource::*]",
        reason:
          "The ENI actions Lambda needs to attach a VPC function (AWSLambdaVPCAccessExecutionRole's, without its logs on '*'); ec2:DescribeNetworkInterfaces works only on '*'. The function's own code is denied every ec2 action (lambda:SourceFunctionArn condition).",
      });
      Validations.of(this.vpc).acknowledge({
        id: "AwsSolutions-VPC7",
        reason:
          "Isolated subnets with no route out and a security group with no rules: the executor's network interfaces can neither send nor receive, so flow logs would record nothing.",
      });
    }
    Validations.of(this.httpApi).acknowledge({
      id: "AwsSolutions-APIG4",
      reason:
        "Authorization is done by the API Lambda with hashed API keys (CODING_ENV_AUTH=on), the same check for HTTP and OpenEnv clients; /health, /web, /docs, /schema, /metadata are public by contract (docs/API.md).",
    });
  }
}
