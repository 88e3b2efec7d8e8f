import { App, CfnOutput, Stack, type StackProps, Validations } from "aws-cdk-lib";
import { AwsSolutionsChecks } from "cdk-nag";
import type { Construct } from "constructs";
import { CodingEnvironment, type CodingEnvironmentProps } from "./coding-environment.js";
import { importAlarmTopic, importCertificate, readAppConfig } from "./config.js";

/** Properties of {@link CodingEnvStack}. */
export interface CodingEnvStackProps extends StackProps {
  /** Passed to the {@link CodingEnvironment} construct. @default - its defaults */
  readonly environment?: Omit<CodingEnvironmentProps, "alarmTopic" | "certificate">;
  /** SNS topic ARN the alarms notify. @default - none */
  readonly alarmTopicArn?: string;
  /** ACM certificate ARN (us-east-1) of `environment.domainName`. @default - none */
  readonly certificateArn?: string;
}

/** The deployable stack: one {@link CodingEnvironment} and its URLs as outputs. */
export class CodingEnvStack extends Stack {
  readonly codingEnvironment: CodingEnvironment;

  constructor(scope: Construct, id: string, props: CodingEnvStackProps = {}) {
    super(scope, id, props);
    this.codingEnvironment = new CodingEnvironment(this, "CodingEnv", {
      ...props.environment,
      alarmTopic: importAlarmTopic(this, props.alarmTopicArn),
      certificate: importCertificate(this, props.certificateArn),
    });
    const env = this.codingEnvironment;
    new CfnOutput(this, "BaseUrl", {
      value: env.baseUrl,
      description: "The one URL for the SDKs, OpenEnv's client (<base>/ws) and the page (<base>/web)",
    });
    new CfnOutput(this, "WebSocketUrl", {
      value: env.webSocketUrl,
      description: "OpenEnv's WebSocket protocol (<base>/ws)",
    });
    new CfnOutput(this, "WebUiUrl", { value: env.webUiUrl, description: "HumanAgent page" });
    new CfnOutput(this, "HttpApiUrl", {
      value: env.apiUrl,
      description: "The HTTP API without CloudFront (HTTP only, no /ws)",
    });
    if (env.apiFunctionUrl) {
      new CfnOutput(this, "ApiFunctionUrl", {
        value: env.apiFunctionUrl.url,
        description: "The API function's own URL, the cheapest for SDK clients (HTTP only, no /ws)",
      });
    }
    new CfnOutput(this, "TableName", {
      value: env.table.tableName,
      description: "DynamoDB table (for `npm run keys`)",
    });
    new CfnOutput(this, "ExecutorFunctionName", { value: env.executorFunction.functionName });
    new CfnOutput(this, "DashboardName", { value: env.dashboard.dashboardName });
  }
}

/** Options of {@link createApp}: what `cdk` would pass, for tests. */
export interface CreateAppOpts {
  /** Extra context, as `-c` flags would give. @default {} */
  readonly context?: Record<string, unknown>;
  /** Cloud assembly directory. @default - the CLI's (`CDK_OUTDIR`) or a temporary directory */
  readonly outdir?: string;
}

/**
 * The app exactly as `cdk synth`/`cdk deploy` build it (infra/bin/app.ts calls this), with
 * `coding-env:*` context applied and, unless `coding-env:nag=false`, the cdk-nag AwsSolutions
 * checks: an unsuppressed finding is an error annotation, which fails `cdk synth`.
 */
export function createApp(opts: CreateAppOpts = {}): { app: App; stack: CodingEnvStack } {
  const app = new App({ context: opts.context, outdir: opts.outdir });
  const config = readAppConfig(app);
  const stack = new CodingEnvStack(app, config.stackName, {
    description: "coding-env: hosted Python code execution for agents (OpenEnv coding_env compatible)",
    environment: config.environment,
    alarmTopicArn: config.alarmTopicArn,
    certificateArn: config.certificateArn,
  });
  if (config.nag) Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
  return { app, stack };
}
