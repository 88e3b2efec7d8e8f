// OpenEnv's WebSocket protocol in AWS: an API Gateway WebSocket API ($connect, $disconnect,
// $default) served by functions/src/ws-lambda.ts, on the same core, table and executor as HTTP.
// The stage is named `ws`, so the front door's `/ws` path reaches it without a rewrite.
import { type CfnElement, Duration, RemovalPolicy, Stack, Validations } from "aws-cdk-lib";
import * as apigwv2 from "aws-cdk-lib/aws-apigatewayv2";
import { WebSocketLambdaIntegration } from "aws-cdk-lib/aws-apigatewayv2-integrations";
import type * as dynamodb from "aws-cdk-lib/aws-dynamodb";
import * as iam from "aws-cdk-lib/aws-iam";
import type * as lambda from "aws-cdk-lib/aws-lambda";
import * as nodejs from "aws-cdk-lib/aws-lambda-nodejs";
import * as logs from "aws-cdk-lib/aws-logs";
import { Construct } from "constructs";
import { API_ENV } from "../../functions/src/config.js";
import { type LogLevel, loggingOptions, nodeFunctionDefaults, repoRoot } from "./function-defaults.js";

/** The WebSocket API's stage: also the path of the base URL that reaches it (`<base>/ws`). */
export const WEBSOCKET_STAGE = "ws";

export interface WebSocketEndpointProps {
  readonly table: dynamodb.Table;
  readonly executor: lambda.IFunction;
  /** The API function's settings (table, executor, auth, step limits, quotas, deadline). */
  readonly environment: Readonly<Record<string, string>>;
  readonly memoryMb: number;
  readonly functionTimeoutS: number;
  readonly integrationTimeoutS: number;
  readonly throttle: { readonly rateLimit: number; readonly burstLimit: number };
  readonly logRetention: logs.RetentionDays;
  readonly logLevel: LogLevel;
  /** @default `functions/src/ws-lambda.ts` of this repository */
  readonly entry?: string;
}

/** The WebSocket API, its stage and its Lambda. */
export class WebSocketEndpoint extends Construct {
  readonly api: apigwv2.WebSocketApi;
  readonly stage: apigwv2.WebSocketStage;
  readonly fn: nodejs.NodejsFunction;
  /** `wss://<id>.execute-api.<region>.amazonaws.com/ws` (the front door's `<base>/ws` is the same). */
  readonly url: string;

  constructor(scope: Construct, id: string, props: WebSocketEndpointProps) {
    super(scope, id);
    const logGroup = new logs.LogGroup(this, "Logs", {
      retention: props.logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const role = new iam.Role(this, "Role", {
      assumedBy: new iam.ServicePrincipal("lambda.amazonaws.com"),
      description:
        "coding-env WebSocket API: its table, invoking the executor, closing its own connections, its own logs",
    });
    logGroup.grantWrite(role);
    props.table.grantReadWriteData(role);
    role.addToPolicy(
      new iam.PolicyStatement({
        actions: ["lambda:InvokeFunction"],
        resources: [props.executor.functionArn],
      }),
    );

    this.fn = new nodejs.NodejsFunction(this, "Function", {
      ...nodeFunctionDefaults(props.entry ?? `${repoRoot}functions/src/ws-lambda.ts`),
      description: "coding-env OpenEnv WebSocket API ($connect, $disconnect, $default)",
      memorySize: props.memoryMb,
      timeout: Duration.seconds(props.functionTimeoutS),
      role,
      logGroup,
      ...loggingOptions(props.logLevel),
      environment: { ...props.environment, POWERTOOLS_SERVICE_NAME: "coding-env-ws" },
    });

    const integration = (name: string) =>
      new WebSocketLambdaIntegration(name, this.fn, { timeout: Duration.seconds(props.integrationTimeoutS) });
    this.api = new apigwv2.WebSocketApi(this, "Api", {
      description: "coding-env: OpenEnv's WebSocket protocol (<base>/ws)",
      connectRouteOptions: { integration: integration("ConnectIntegration") },
      disconnectRouteOptions: { integration: integration("DisconnectIntegration") },
      // Every message is answered through the route response (no extra management API call).
      defaultRouteOptions: { integration: integration("MessageIntegration"), returnResponse: true },
    });
    this.stage = new apigwv2.WebSocketStage(this, "Stage", {
      webSocketApi: this.api,
      stageName: WEBSOCKET_STAGE,
      autoDeploy: true,
      throttle: props.throttle,
    });
    // `{"type":"close"}`, a revoked key and a gone connection close the connection (DELETE), the
    // last two after sending their error (POST): this stage's connections only. Replies to
    // messages go through the route response, not the management API.
    role.addToPolicy(
      new iam.PolicyStatement({
        actions: ["execute-api:ManageConnections"],
        resources: ["POST", "DELETE"].map((method) =>
          Stack.of(this).formatArn({
            service: "execute-api",
            resource: this.api.apiId,
            resourceName: `${WEBSOCKET_STAGE}/${method}/@connections/*`,
          }),
        ),
      }),
    );
    this.url = this.stage.url;
    // The management API of this stage, named rather than taken from each event's domain name.
    this.fn.addEnvironment(API_ENV.wsManagementEndpoint, this.stage.callbackUrl);

    const apiLogicalId = Stack.of(this).resolve(
      (this.api.node.defaultChild as CfnElement).logicalId,
    ) as string;
    Validations.of(this.fn).acknowledge({
      id: "AwsSolutions-L1",
      reason:
        "Node.js 22 is the runtime this project targets and tests (esbuild target node22, CI on Node 20/22); moving to a newer runtime is a deliberate upgrade, not a default.",
    });
    for (const method of ["POST", "DELETE"]) {
      Validations.of(role).acknowledge({
        id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:<${apiLogicalId}>/${WEBSOCKET_STAGE}/${method}/@connections/*]`,
        reason:
          "Connection ids are made by API Gateway at $connect: the function may send to and close any connection of this API's ws stage (to end a session with its reason), and nothing else.",
      });
    }
    Validations.of(this.api).acknowledge({
      id: "AwsSolutions-APIG4",
      reason:
        "$connect is authorized by the WebSocket Lambda with hashed API keys (header or api_key query parameter), the same keys and check as HTTP; a refused key is the handshake's 401.",
    });
    Validations.of(this.stage).acknowledge({
      id: "AwsSolutions-APIG1",
      reason:
        "WebSocket access logging needs an account-wide API Gateway CloudWatch role that this stack must not take over; the WebSocket Lambda logs refused handshakes and failures, and every connect, message and disconnect at DEBUG.",
    });
  }
}
