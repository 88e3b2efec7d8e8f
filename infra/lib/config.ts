import { RemovalPolicy } from "aws-cdk-lib";
import * as acm from "aws-cdk-lib/aws-certificatemanager";
import * as logs from "aws-cdk-lib/aws-logs";
import * as sns from "aws-cdk-lib/aws-sns";
import type { Construct } from "constructs";
import type { CodingEnvironmentProps } from "./coding-environment.js";

/** Prefix of every CDK context key this app reads (`cdk deploy -c coding-env:executorMemoryMb=2048`). */
export const CONTEXT_PREFIX = "coding-env:";

/**
 * The context keys the app understands, and what each sets. Values given with `-c` arrive as
 * strings; values in `cdk.json` may be JSON numbers or booleans. Both are accepted.
 */
export const CONTEXT_KEYS = {
  stackName: "CloudFormation stack name (default CodingEnv)",
  executorMemoryMb: "executor memory in MB (default 1024)",
  executorReservedConcurrency: "executor reserved concurrency (default none)",
  tenantConcurrencyLimit:
    "when concurrent_steps holds across API instances: contended|always|off (default contended)",
  executorInternetAccess: "true gives user code internet access (default false: isolated VPC)",
  executorAvailabilityZones:
    "comma-separated zone names of the executor's isolated subnets (default the region's first two)",
  defaultStepTimeoutSeconds: "per-step timeout when a request asks none (default 20)",
  maxStepTimeoutSeconds: "largest per-step timeout, at most 20 (default 20)",
  apiMemoryMb: "API function memory in MB (default 512)",
  apiFunctionUrl:
    "false removes the API function's function URL, the cheapest door for SDK clients (default true)",
  apiReservedConcurrency:
    "API function reserved concurrency, the function URL's throttle (default 100 with the function URL, none without)",
  authRequired: "false turns API keys off (default true)",
  allowedOrigins: "comma-separated origins whose pages may call the API cross-origin (default none)",
  apiRateLimit: "HTTP API steady requests per second (default 50)",
  apiBurstLimit: "HTTP API burst (default 100)",
  logRetentionDays: "CloudWatch log retention in days, one of CloudWatch's values (default 30)",
  deletionProtection: "DynamoDB deletion protection (default true)",
  retainTable: "keep the table when the stack is deleted (default true)",
  alarmTopicArn: "SNS topic ARN the alarms notify (default none)",
  domainName: "custom domain of the base URL, e.g. env.example.com (default the CloudFront domain)",
  certificateArn: "ACM certificate ARN in us-east-1 for domainName (required with it)",
  api5xxAlarmPercent: "API 5xx percentage that raises the alarm (default 5)",
  quotaStepsPerDay: "default steps per tenant per UTC day (default 10000)",
  quotaActiveEpisodes: "default episodes alive at once per tenant (default 50)",
  quotaMaxStateBytes: "default largest stored Python state per episode, bytes (default 2097152)",
  logLevel: "application log level of every function DEBUG|INFO|WARN|ERROR (default INFO)",
  nag: "false skips the cdk-nag AwsSolutions checks during synth (default true)",
} as const;

export type ContextKey = keyof typeof CONTEXT_KEYS;

/** A context value that cannot be used, named after the `-c` key that carried it. */
export class ContextValueError extends Error {
  constructor(key: string, message: string) {
    super(`context ${CONTEXT_PREFIX}${key}: ${message}`);
    this.name = "ContextValueError";
  }
}

/** What the app reads from context: the stack's name, the construct's props, whether to run cdk-nag. */
export interface AppConfig {
  readonly stackName: string;
  readonly nag: boolean;
  /** Everything except the alarm topic and the certificate (constructs, imported inside the stack). */
  readonly environment: Omit<CodingEnvironmentProps, "alarmTopic" | "certificate">;
  readonly alarmTopicArn?: string;
  readonly certificateArn?: string;
}

function parseNumber(key: string, raw: unknown): number {
  const value =
    typeof raw === "number" ? raw : typeof raw === "string" && raw.trim() !== "" ? Number(raw) : Number.NaN;
  if (!Number.isFinite(value))
    throw new ContextValueError(key, `expected a number, got ${JSON.stringify(raw)}`);
  return value;
}

function parseBoolean(key: string, raw: unknown): boolean {
  if (raw === true || raw === "true") return true;
  if (raw === false || raw === "false") return false;
  throw new ContextValueError(key, `expected true or false, got ${JSON.stringify(raw)}`);
}

/** A list as `-c key=a,b` gives it, or a JSON array from cdk.json. */
function parseList(key: string, raw: unknown): string[] {
  const items = Array.isArray(raw) ? raw : typeof raw === "string" ? raw.split(",") : undefined;
  if (!items || items.some((item) => typeof item !== "string")) {
    throw new ContextValueError(key, `expected a comma-separated list, got ${JSON.stringify(raw)}`);
  }
  return (items as string[]).map((item) => item.trim()).filter((item) => item !== "");
}

function parseString(key: string, raw: unknown): string {
  if (typeof raw !== "string" || raw === "")
    throw new ContextValueError(key, `expected a string, got ${JSON.stringify(raw)}`);
  return raw;
}

/**
 * Reads the `coding-env:*` context of `scope` (cdk.json `context`, `-c` flags). Unknown
 * `coding-env:` keys are refused, so a typo fails the synth instead of being silently ignored.
 */
export function readAppConfig(scope: Construct): AppConfig {
  const all = scope.node.getAllContext() as Record<string, unknown>;
  for (const fullKey of Object.keys(all)) {
    if (!fullKey.startsWith(CONTEXT_PREFIX)) continue;
    const key = fullKey.slice(CONTEXT_PREFIX.length);
    if (!Object.hasOwn(CONTEXT_KEYS, key)) {
      throw new ContextValueError(key, `unknown key; known keys: ${Object.keys(CONTEXT_KEYS).join(", ")}`);
    }
  }
  const get = (key: ContextKey): unknown => all[CONTEXT_PREFIX + key];
  const num = (key: ContextKey) => (get(key) === undefined ? undefined : parseNumber(key, get(key)));
  const bool = (key: ContextKey) => (get(key) === undefined ? undefined : parseBoolean(key, get(key)));
  const str = (key: ContextKey) => (get(key) === undefined ? undefined : parseString(key, get(key)));
  const list = (key: ContextKey) => (get(key) === undefined ? undefined : parseList(key, get(key)));

  let logRetention: logs.RetentionDays | undefined;
  const retentionDays = num("logRetentionDays");
  if (retentionDays !== undefined) {
    const allowed = Object.values(logs.RetentionDays).filter((v): v is number => typeof v === "number");
    if (!allowed.includes(retentionDays)) {
      throw new ContextValueError(
        "logRetentionDays",
        `${retentionDays} is not a CloudWatch retention; use one of ${allowed.join(", ")}`,
      );
    }
    logRetention = retentionDays as logs.RetentionDays;
  }
  const logLevel = str("logLevel");
  if (logLevel !== undefined && !["DEBUG", "INFO", "WARN", "ERROR"].includes(logLevel)) {
    throw new ContextValueError(
      "logLevel",
      `expected DEBUG, INFO, WARN or ERROR, got ${JSON.stringify(logLevel)}`,
    );
  }
  const tenantConcurrencyLimit = str("tenantConcurrencyLimit");
  if (
    tenantConcurrencyLimit !== undefined &&
    !["contended", "always", "off"].includes(tenantConcurrencyLimit)
  ) {
    throw new ContextValueError(
      "tenantConcurrencyLimit",
      `expected contended, always or off, got ${JSON.stringify(tenantConcurrencyLimit)}`,
    );
  }
  const retainTable = bool("retainTable");
  const rateLimit = num("apiRateLimit");
  const burstLimit = num("apiBurstLimit");
  const alarmTopicArn = str("alarmTopicArn");
  if (alarmTopicArn !== undefined && !/^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[\w-]+$/.test(alarmTopicArn)) {
    throw new ContextValueError("alarmTopicArn", `not an SNS topic ARN: ${JSON.stringify(alarmTopicArn)}`);
  }

  const domainName = str("domainName");
  const certificateArn = str("certificateArn");
  if ((domainName === undefined) !== (certificateArn === undefined)) {
    throw new ContextValueError(
      domainName === undefined ? "certificateArn" : "domainName",
      "domainName and certificateArn go together",
    );
  }
  if (
    certificateArn !== undefined &&
    !/^arn:aws[a-z-]*:acm:us-east-1:\d{12}:certificate\/[\w-]+$/.test(certificateArn)
  ) {
    throw new ContextValueError(
      "certificateArn",
      `not an ACM certificate ARN in us-east-1 (CloudFront needs one there): ${JSON.stringify(certificateArn)}`,
    );
  }

  const environment: Omit<CodingEnvironmentProps, "alarmTopic" | "certificate"> = {
    executorMemoryMb: num("executorMemoryMb"),
    executorReservedConcurrency: num("executorReservedConcurrency"),
    tenantConcurrencyLimit: tenantConcurrencyLimit as CodingEnvironmentProps["tenantConcurrencyLimit"],
    executorInternetAccess: bool("executorInternetAccess"),
    executorAvailabilityZones: list("executorAvailabilityZones"),
    defaultStepTimeoutSeconds: num("defaultStepTimeoutSeconds"),
    maxStepTimeoutSeconds: num("maxStepTimeoutSeconds"),
    apiMemoryMb: num("apiMemoryMb"),
    apiFunctionUrl: bool("apiFunctionUrl"),
    apiReservedConcurrency: num("apiReservedConcurrency"),
    authRequired: bool("authRequired"),
    allowedOrigins: list("allowedOrigins"),
    apiThrottle: rateLimit === undefined && burstLimit === undefined ? undefined : { rateLimit, burstLimit },
    logRetention,
    deletionProtection: bool("deletionProtection"),
    tableRemovalPolicy:
      retainTable === undefined ? undefined : retainTable ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
    api5xxAlarmPercent: num("api5xxAlarmPercent"),
    logLevel: logLevel as CodingEnvironmentProps["logLevel"],
    domainName,
    defaultQuotas: {
      stepsPerDay: num("quotaStepsPerDay"),
      activeEpisodes: num("quotaActiveEpisodes"),
      maxStateBytes: num("quotaMaxStateBytes"),
    },
  };
  return {
    stackName: str("stackName") ?? "CodingEnv",
    nag: bool("nag") ?? true,
    environment,
    alarmTopicArn,
    certificateArn,
  };
}

/** The ACM certificate of `certificateArn`, imported (not created) in `scope`. */
export function importCertificate(scope: Construct, arn: string | undefined): acm.ICertificate | undefined {
  return arn === undefined ? undefined : acm.Certificate.fromCertificateArn(scope, "Certificate", arn);
}

/** The SNS topic of `alarmTopicArn`, imported (not created) in `scope`. */
export function importAlarmTopic(scope: Construct, arn: string | undefined): sns.ITopic | undefined {
  return arn === undefined ? undefined : sns.Topic.fromTopicArn(scope, "AlarmTopic", arn);
}
