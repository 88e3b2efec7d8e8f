import { Duration, RemovalPolicy, Validations } from "aws-cdk-lib";
import * as apigateway from "aws-cdk-lib/aws-apigateway";
import * as apigwv2 from "aws-cdk-lib/aws-apigatewayv2";
import { HttpLambdaIntegration } from "aws-cdk-lib/aws-apigatewayv2-integrations";
import type * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as dynamodb from "aws-cdk-lib/aws-dynamodb";
import type * as ec2 from "aws-cdk-lib/aws-ec2";
import * as iam from "aws-cdk-lib/aws-iam";
import * as lambda from "aws-cdk-lib/aws-lambda";
import * as nodejs from "aws-cdk-lib/aws-lambda-nodejs";
import * as logs from "aws-cdk-lib/aws-logs";
import type * as s3 from "aws-cdk-lib/aws-s3";
import { Construct } from "constructs";
import { API_ENV } from "../../functions/src/config.js";
import { createExecutor } from "./executor.js";
import { FrontDoor } from "./front-door.js";
import { loggingOptions, nodeFunctionDefaults, repoRoot } from "./function-defaults.js";
import { createMonitoring } from "./monitoring.js";
import { type CodingEnvironmentProps, resolveProps } from "./props.js";
import { createStateBucket } from "./state-bucket.js";
import {
  API_FUNCTION_TIMEOUT_S,
  API_INTEGRATION_TIMEOUT_S,
  EXECUTOR_TIMEOUT_MARGIN_S,
  REQUEST_DEADLINE_S,
} from "./timeouts.js";
import { UsageAggregator } from "./usage-aggregator.js";
import { WEBSOCKET_STAGE, WebSocketEndpoint } from "./websocket-api.js";

export { EXECUTOR_RUNTIME_RESERVE_MB } from "./executor.js";
export { apiBundlingOptions } from "./function-defaults.js";
export {
  type ApiThrottleOpts,
  type CodingEnvironmentProps,
  CodingEnvironmentPropsError,
  DEFAULT_API_RESERVED_CONCURRENCY,
  type DefaultQuotasOpts,
} from "./props.js";

export * from "./timeouts.js";
export { WEBSOCKET_STAGE } from "./websocket-api.js";

/**
 * coding-env in one AWS account: an HTTP API in front of the TypeScript API Lambda (which also has a
 * function URL of its own for SDK clients, bounded by its reserved concurrency), a DynamoDB
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
  /**
   * The API function's own URL (auth type NONE, buffered): the HTTP API without API Gateway, for
   * SDK clients; `undefined` when `apiFunctionUrl` is off.
   */
  readonly apiFunctionUrl?: lambda.FunctionUrl;
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
  /** Large Python state: one object per episode version over the inline size (state-bucket.ts). */
  readonly stateBucket: s3.Bucket;
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

    const {
      executorMemoryMb,
      apiMemoryMb,
      apiFunctionUrl,
      apiReservedConcurrency,
      maxStep,
      defaultStep,
      rateLimit,
      burstLimit,
      api5xxAlarmPercent,
      allowedOrigins,
      zones,
      quotaEnv,
      logRetention,
      logLevel,
    } = resolveProps(this, props);
    this.defaultStepTimeoutSeconds = defaultStep;
    this.maxStepTimeoutSeconds = maxStep;

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

    // ---- Large state: S3 objects the executor reads and writes with the API's pre-signed URLs ----
    const state = createStateBucket(this, {
      ...(executor.vpc ? { vpc: executor.vpc } : {}),
      ...(executor.securityGroup ? { executorSecurityGroup: executor.securityGroup } : {}),
      apiRole,
      ...(props.tableRemovalPolicy ? { removalPolicy: props.tableRemovalPolicy } : {}),
    });
    this.stateBucket = state.bucket;

    // The API's settings, shared by the HTTP and the WebSocket functions (one core, one behaviour).
    const apiEnvironment: Record<string, string> = {
      NODE_OPTIONS: "--enable-source-maps",
      LOG_LEVEL: logLevel,
      POWERTOOLS_SERVICE_NAME: "coding-env-api",
      [API_ENV.table]: this.table.tableName,
      [API_ENV.executorFunction]: this.executorFunction.functionArn,
      [API_ENV.executorMemoryMb]: String(executorMemoryMb),
      [API_ENV.stateBucket]: this.stateBucket.bucketName,
      [API_ENV.auth]: (props.authRequired ?? true) ? "on" : "off",
      [API_ENV.defaultStepTimeoutS]: String(defaultStep),
      [API_ENV.maxStepTimeoutS]: String(maxStep),
      [API_ENV.executorGraceS]: String(EXECUTOR_TIMEOUT_MARGIN_S),
      [API_ENV.requestDeadlineS]: String(REQUEST_DEADLINE_S),
      ...(allowedOrigins.length > 0 ? { [API_ENV.allowedOrigins]: allowedOrigins.join(",") } : {}),
      ...quotaEnv,
      // While the executor is throttled, a tenant holds at most half of it (admission/executor-governor.ts).
      ...(props.executorReservedConcurrency !== undefined
        ? { [API_ENV.executorReservedConcurrency]: String(props.executorReservedConcurrency) }
        : {}),
      ...(props.tenantConcurrencyLimit !== undefined
        ? {
            [API_ENV.executorGovernor]: { contended: "on", always: "always", off: "off" }[
              props.tenantConcurrencyLimit
            ],
          }
        : {}),
    };
    this.apiFunction = new nodejs.NodejsFunction(this, "Api", {
      ...nodeFunctionDefaults(props.apiEntry ?? `${repoRoot}functions/src/lambda.ts`),
      description: "coding-env HTTP API (Hono)",
      memorySize: apiMemoryMb,
      timeout: Duration.seconds(API_FUNCTION_TIMEOUT_S),
      // Caps both doors; the function URL has no other throttle (props.ts, apiReservedConcurrency).
      ...(apiReservedConcurrency !== undefined
        ? { reservedConcurrentExecutions: apiReservedConcurrency }
        : {}),
      role: apiRole,
      logGroup: apiLogGroup,
      ...loggingOptions(logLevel),
      environment: apiEnvironment,
    });

    // The cheapest door for SDK clients: no API Gateway item per request. Auth NONE because the API
    // checks its own keys (as behind the HTTP API, which has no authorizer either); no CORS config,
    // because the API answers CORS itself (browser-guards.ts) and Lambda's would replace its
    // headers; buffered, so Lambda's 6 MB response limit and fitLambdaResult hold as behind API
    // Gateway. The API's own deadline (27 s) ends a request before the function's 28 s timeout.
    if (apiFunctionUrl) {
      this.apiFunctionUrl = this.apiFunction.addFunctionUrl({
        authType: lambda.FunctionUrlAuthType.NONE,
        invokeMode: lambda.InvokeMode.BUFFERED,
      });
    }

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
      apiFunction: this.apiFunction,
      apiLogGroup,
      apiFunctionUrl,
      apiReservedConcurrency: apiReservedConcurrency !== undefined,
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
          "Isolated subnets whose only route is the S3 gateway endpoint's, and a security group with no inbound rule and HTTPS egress only: the executor's network interfaces reach only the state bucket through the endpoint (whose policy allows only its state objects), so flow logs would record nothing else.",
      });
    }
    Validations.of(this.httpApi).acknowledge({
      id: "AwsSolutions-APIG4",
      reason:
        "Authorization is done by the API Lambda with hashed API keys (CODING_ENV_AUTH=on), the same check for HTTP and OpenEnv clients; /health, /web, /docs, /schema, /metadata are public by contract (docs/API.md).",
    });
  }
}
