import { Duration, RemovalPolicy, Validations } from "aws-cdk-lib";
import * as apigateway from "aws-cdk-lib/aws-apigateway";
import * as apigwv2 from "aws-cdk-lib/aws-apigatewayv2";
import { HttpLambdaIntegration } from "aws-cdk-lib/aws-apigatewayv2-integrations";
import type * as acm from "aws-cdk-lib/aws-certificatemanager";
import type * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as dynamodb from "aws-cdk-lib/aws-dynamodb";
import type * as ec2 from "aws-cdk-lib/aws-ec2";
import * as iam from "aws-cdk-lib/aws-iam";
import type * as kms from "aws-cdk-lib/aws-kms";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import * as nodejs from "aws-cdk-lib/aws-lambda-nodejs";
import * as logs from "aws-cdk-lib/aws-logs";
import type * as sns from "aws-cdk-lib/aws-sns";
import { Construct } from "constructs";
import { AWS_TIMEOUTS, COLD_START_ALLOWANCE_S, EXECUTOR_MARGIN_S } from "../../functions/src/config.js";
import { MAX_ACTIVE_EPISODES_QUOTA } from "../../functions/src/tenancy/quotas.js";
import { createExecutor, EXECUTOR_RUNTIME_RESERVE_MB } from "./executor.js";
import { FrontDoor } from "./front-door.js";
import { type LogLevel, loggingOptions, nodeFunctionDefaults, repoRoot } from "./function-defaults.js";
import { createMonitoring } from "./monitoring.js";
import { UsageAggregator } from "./usage-aggregator.js";
import { WEBSOCKET_STAGE, WebSocketEndpoint } from "./websocket-api.js";

export { EXECUTOR_RUNTIME_RESERVE_MB } from "./executor.js";
export { apiBundlingOptions } from "./function-defaults.js";
export { WEBSOCKET_STAGE } from "./websocket-api.js";

// ---- Timeouts that hold cold (functions/src/config.ts derives the API's side of the same budget) --
/**
 * Seconds API Gateway waits for the API Lambda: HTTP and WebSocket APIs answer a synchronous
 * request within 30 s at most, and CDK accepts integration timeouts up to 29 s.
 */
export const API_INTEGRATION_TIMEOUT_S = AWS_TIMEOUTS.apiGatewayIntegrationS;
/** The API Lambda's timeout: above the API's own 504 deadline, so that answer reaches the client. */
export const API_FUNCTION_TIMEOUT_S = AWS_TIMEOUTS.apiFunctionS;
/** Seconds from a request's arrival by which the API answers (its own 504 if the executor is late). */
export const REQUEST_DEADLINE_S = AWS_TIMEOUTS.requestDeadlineS;
/**
 * Seconds the executor may need beyond the step limit: snapshot restore before user code and
 * snapshot save after it ({@link EXECUTOR_MARGIN_S}), plus a cold start ({@link COLD_START_ALLOWANCE_S}:
 * image init past Lambda's 10 s init limit is re-run inside the invocation, and the runtime starts
 * its zygote and first worker lazily). The API waits the same grace.
 */
export const EXECUTOR_TIMEOUT_MARGIN_S = AWS_TIMEOUTS.executorGraceS;
/** The largest per-step timeout that fits API Gateway's limit with the margins above: 20 s. */
export const MAX_STEP_TIMEOUT_LIMIT_S = AWS_TIMEOUTS.maxStepTimeoutS;
export { COLD_START_ALLOWANCE_S, EXECUTOR_MARGIN_S };

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
   * spend), and guarantees them that capacity. With tenant isolation it also caps the tenant
   * environments that may exist at once (2,500 per 1,000 concurrency). New accounts have only 10
   * concurrent executions in total and Lambda keeps 10 unreserved, so reserving anything there
   * fails the deployment.
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
   * Availability zones (names, e.g. `us-east-1a`) of the executor's isolated subnets. Lambda cannot
   * attach functions in every zone (for example `use1-az3`), so an account whose first two zones
   * include such a zone names others here. The stack's region must own them. Ignored when
   * `executorInternetAccess` is on (no VPC).
   * @default - the region's first two zones
   */
  readonly executorAvailabilityZones?: readonly string[];
  /**
   * Per-step timeout used when a request does not ask for one, in seconds.
   * Must be at most `maxStepTimeoutSeconds`.
   * @default 20
   */
  readonly defaultStepTimeoutSeconds?: number;
  /**
   * Largest per-step timeout a request may ask for, in seconds. API Gateway answers within 30 s and
   * a cold start must fit too, so this is at most {@link MAX_STEP_TIMEOUT_LIMIT_S} (20); the
   * executor's Lambda timeout is this plus {@link EXECUTOR_TIMEOUT_MARGIN_S}.
   * @default 20
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
   * Origins (`https://app.example.com`) whose pages may call the API from a browser (CORS,
   * `CODING_ENV_ALLOWED_ORIGINS`); every other cross-origin request is refused. The deployment's own
   * page (`/web`) is same-origin and needs no entry.
   * @default [] (no cross-origin access)
   */
  readonly allowedOrigins?: readonly string[];
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
   * Customer-managed KMS key for the table. The functions that use the table are granted use of it.
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
   * Application log level of every function (Lambda's JSON log filtering and `LOG_LEVEL` of the
   * Powertools logger). Lambda's own platform lines are kept at WARN whatever this says.
   * @default "INFO"
   */
  readonly logLevel?: LogLevel;
  /**
   * The API Lambda's entry file. @default `functions/src/lambda.ts` of this repository
   */
  readonly apiEntry?: string;
  /**
   * Custom domain of the base URL (e.g. `env.example.com`), served by the CloudFront distribution;
   * point a CNAME (or a Route 53 alias) at the distribution's domain. Needs `certificate`.
   * @default - the distribution's own `*.cloudfront.net` domain
   */
  readonly domainName?: string;
  /** ACM certificate for `domainName`, issued in us-east-1 (CloudFront's requirement). */
  readonly certificate?: acm.ICertificate;
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

/** `scheme://host[:port]` exactly, as a browser sends it in `Origin` (no path, no trailing slash). */
function requireOrigins(scope: Construct, origins: readonly string[]): string[] {
  for (const origin of origins) {
    let parsed: URL | undefined;
    try {
      parsed = new URL(origin);
    } catch {
      parsed = undefined;
    }
    if (!parsed || parsed.origin !== origin || !/^https?:$/.test(parsed.protocol)) {
      throw new CodingEnvironmentPropsError(
        `${scope.node.path}: allowedOrigins: '${origin}' is not an origin like https://app.example.com`,
      );
    }
  }
  return [...origins];
}

function requireZones(scope: Construct, zones: readonly string[]): string[] {
  if (zones.length === 0 || new Set(zones).size !== zones.length) {
    throw new CodingEnvironmentPropsError(
      `${scope.node.path}: executorAvailabilityZones must name one or more distinct zones`,
    );
  }
  for (const zone of zones) {
    if (!/^[a-z]{2}(-[a-z0-9]+)+[a-z]$/.test(zone)) {
      throw new CodingEnvironmentPropsError(
        `${scope.node.path}: executorAvailabilityZones: '${zone}' is not a zone name like us-east-1b`,
      );
    }
  }
  return [...zones];
}

/**
 * coding-env in one AWS account: an HTTP API in front of the TypeScript API Lambda, a DynamoDB
 * table whose stream feeds the usage roll-up, and the containerized Python executor Lambda, one
 * tenant per execution environment, without permissions or network.
 *
 * @example
 * const env = new CodingEnvironment(stack, "CodingEnv", { executorMemoryMb: 2048 });
 * new CfnOutput(stack, "ApiUrl", { value: env.apiUrl });
 */
export class CodingEnvironment extends Construct {
  /** The single table (pk/sk strings, TTL `expires_at`, stream of new and old images). */
  readonly table: dynamodb.Table;
  /** The TypeScript API Lambda (Hono). */
  readonly apiFunction: nodejs.NodejsFunction;
  /** The Python executor Lambda (container image, tenant isolation). */
  readonly executorFunction: lambda.DockerImageFunction;
  /** The table's stream consumer that rolls step records up into usage. */
  readonly usageAggregator: UsageAggregator;
  /** The WebSocket API (OpenEnv's `/ws`) and its Lambda. */
  readonly webSocket: WebSocketEndpoint;
  /** The CloudFront distribution in front of both APIs. */
  readonly frontDoor: FrontDoor;
  /** The HTTP API. */
  readonly httpApi: apigwv2.HttpApi;
  /** The `$default` stage of the HTTP API. */
  readonly stage: apigwv2.HttpStage;
  /** The isolated VPC of the executor; `undefined` when `executorInternetAccess` is on. */
  readonly vpc?: ec2.Vpc;
  /**
   * The deployment's one base URL, ending in `/`: `<base>/ws` is OpenEnv's WebSocket protocol,
   * every other path the HTTP API and the page (`<base>/web`).
   */
  readonly baseUrl: string;
  /** `wss://` URL of OpenEnv's WebSocket protocol (`<base>/ws`). */
  readonly webSocketUrl: string;
  /** The HTTP API's own URL, ending in `/` (HTTP only, without CloudFront). */
  readonly apiUrl: string;
  /** URL of the HumanAgent web page. */
  readonly webUiUrl: string;
  /** The alarms: API 5xx rate, executor errors and throttles, usage dead letters. */
  readonly alarms: cloudwatch.Alarm[];
  /** The dashboard: step latency, step count, executor duration, usage roll-up. */
  readonly dashboard: cloudwatch.Dashboard;
  /** The effective per-step timeout when a request asks none, in seconds. */
  readonly defaultStepTimeoutSeconds: number;
  /** The effective largest per-step timeout, in seconds. */
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
    const allowedOrigins = requireOrigins(this, props.allowedOrigins ?? []);
    if ((props.domainName === undefined) !== (props.certificate === undefined)) {
      throw new CodingEnvironmentPropsError(
        `${this.node.path}: domainName and certificate go together (a custom domain needs its certificate)`,
      );
    }
    if (
      props.domainName !== undefined &&
      !/^(?=.{1,253}$)([a-z0-9-]{1,63}\.)+[a-z]{2,63}$/.test(props.domainName)
    ) {
      throw new CodingEnvironmentPropsError(
        `${this.node.path}: domainName '${props.domainName}' is not a lowercase host name like env.example.com`,
      );
    }
    const zones =
      props.executorAvailabilityZones === undefined
        ? undefined
        : requireZones(this, props.executorAvailabilityZones);
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
    const logLevel = props.logLevel ?? "INFO";

    // ---- Data ----------------------------------------------------------------------------------
    this.table = new dynamodb.Table(this, "Table", {
      partitionKey: { name: "pk", type: dynamodb.AttributeType.STRING },
      sortKey: { name: "sk", type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      timeToLiveAttribute: "expires_at",
      // Step records and TTL removals feed the usage roll-up (old images: what a removal removed).
      stream: dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
      ...(props.tableEncryptionKey
        ? { encryption: dynamodb.TableEncryption.CUSTOMER_MANAGED, encryptionKey: props.tableEncryptionKey }
        : { encryption: dynamodb.TableEncryption.AWS_MANAGED }),
      deletionProtection: props.deletionProtection ?? true,
      removalPolicy: props.tableRemovalPolicy ?? RemovalPolicy.RETAIN,
    });

    // ---- Executor: no permissions beyond its own log group, no network by default --------------
    const executor = createExecutor(this, {
      memoryMb: executorMemoryMb,
      timeoutS: maxStep + EXECUTOR_TIMEOUT_MARGIN_S,
      reservedConcurrency: props.executorReservedConcurrency,
      internetAccess: props.executorInternetAccess ?? false,
      availabilityZones: zones,
      logRetention,
      logLevel,
      imageDirectory: props.executorImageDirectory ?? `${repoRoot}python-runtime`,
    });
    this.executorFunction = executor.fn;
    this.vpc = executor.vpc;

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
    // Exactly the function ARN (no versions/aliases wildcard, unlike grantInvoke). Invoking with a
    // TenantId needs no other action: tenant isolation routes on the Invoke's tenant id.
    apiRole.addToPolicy(
      new iam.PolicyStatement({
        actions: ["lambda:InvokeFunction"],
        resources: [this.executorFunction.functionArn],
      }),
    );

    // The API's settings, shared by the HTTP and the WebSocket functions (one core, one behaviour).
    const apiEnvironment: Record<string, string> = {
      NODE_OPTIONS: "--enable-source-maps",
      LOG_LEVEL: logLevel,
      POWERTOOLS_SERVICE_NAME: "coding-env-api",
      CODING_ENV_TABLE: this.table.tableName,
      CODING_ENV_EXECUTOR_FUNCTION: this.executorFunction.functionArn,
      CODING_ENV_EXECUTOR_MEMORY_MB: String(executorMemoryMb),
      CODING_ENV_AUTH: (props.authRequired ?? true) ? "on" : "off",
      CODING_ENV_DEFAULT_STEP_TIMEOUT_S: String(defaultStep),
      CODING_ENV_MAX_STEP_TIMEOUT_S: String(maxStep),
      CODING_ENV_EXECUTOR_GRACE_S: String(EXECUTOR_TIMEOUT_MARGIN_S),
      CODING_ENV_REQUEST_DEADLINE_S: String(REQUEST_DEADLINE_S),
      ...(allowedOrigins.length > 0 ? { CODING_ENV_ALLOWED_ORIGINS: allowedOrigins.join(",") } : {}),
      ...quotaEnv,
    };
    this.apiFunction = new nodejs.NodejsFunction(this, "Api", {
      ...nodeFunctionDefaults(props.apiEntry ?? `${repoRoot}functions/src/lambda.ts`),
      description: "coding-env HTTP API (Hono)",
      memorySize: apiMemoryMb,
      timeout: Duration.seconds(API_FUNCTION_TIMEOUT_S),
      role: apiRole,
      logGroup: apiLogGroup,
      ...loggingOptions(logLevel),
      environment: apiEnvironment,
    });

    // ---- Usage roll-up from the table's stream -------------------------------------------------
    this.usageAggregator = new UsageAggregator(this, "UsageAggregator", {
      table: this.table,
      logRetention,
      logLevel,
      executorMemoryMb,
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

    // ---- OpenEnv's WebSocket protocol, and one base URL for both APIs --------------------------
    this.webSocket = new WebSocketEndpoint(this, "WebSocket", {
      table: this.table,
      executor: this.executorFunction,
      environment: apiEnvironment,
      memoryMb: apiMemoryMb,
      functionTimeoutS: API_FUNCTION_TIMEOUT_S,
      integrationTimeoutS: API_INTEGRATION_TIMEOUT_S,
      throttle: { rateLimit, burstLimit },
      logRetention,
      logLevel,
    });
    this.frontDoor = new FrontDoor(this, "FrontDoor", {
      httpApi: this.httpApi,
      webSocketApi: this.webSocket.api,
      domainName: props.domainName,
      certificate: props.certificate,
      originReadTimeoutS: API_INTEGRATION_TIMEOUT_S + 1,
    });
    this.baseUrl = this.frontDoor.baseUrl;
    this.webSocketUrl = `${this.baseUrl.replace(/^https:/, "wss:")}${WEBSOCKET_STAGE}`;
    this.webUiUrl = `${this.baseUrl}web`;

    // ---- Metrics, alarms, dashboard ----------------------------------------------------------
    const monitoring = createMonitoring(this, {
      httpApi: this.httpApi,
      webSocketApi: this.webSocket.api,
      webSocketFunction: this.webSocket.fn,
      accessLogGroup,
      executor: this.executorFunction,
      aggregator: this.usageAggregator.fn,
      aggregatorDeadLetters: this.usageAggregator.deadLetterQueue,
      api5xxAlarmPercent,
      alarmTopic: props.alarmTopic,
    });
    this.alarms = monitoring.alarms;
    this.dashboard = monitoring.dashboard;

    this.acknowledgeNagFindings(executor.role);
  }

  /**
   * cdk-nag AwsSolutions findings that are deliberate, acknowledged finding by finding (cdk-nag v3
   * uses CDK's `Validations`), each with its reason. The tests fail on any finding not listed here.
   */
  private acknowledgeNagFindings(executorRole: iam.Role): void {
    for (const fn of [this.apiFunction, this.usageAggregator.fn]) {
      Validations.of(fn).acknowledge({
        id: "AwsSolutions-L1",
        reason:
          "Node.js 22 is the runtime this project targets and tests (esbuild target node22, CI on Node 20/22); moving to a newer runtime is a deliberate upgrade, not a default.",
      });
    }
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
