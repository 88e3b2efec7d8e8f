// The props of the CodingEnvironment construct: what each one means, and the checks that refuse,
// at synth time, settings that cannot work in AWS.
import type { RemovalPolicy } from "aws-cdk-lib";
import type * as acm from "aws-cdk-lib/aws-certificatemanager";
import type * as kms from "aws-cdk-lib/aws-kms";
import * as logs from "aws-cdk-lib/aws-logs";
import type * as sns from "aws-cdk-lib/aws-sns";
import type { Construct } from "constructs";
import { API_ENV } from "../../functions/src/config.js";
import { MAX_ACTIVE_EPISODES_QUOTA } from "../../functions/src/tenancy/quotas.js";
import type { EXECUTOR_RUNTIME_RESERVE_MB } from "./executor.js";
import type { LogLevel } from "./function-defaults.js";
import type { EXECUTOR_TIMEOUT_MARGIN_S } from "./timeouts.js";
import { MAX_STEP_TIMEOUT_LIMIT_S } from "./timeouts.js";

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
   * When each tenant's `concurrent_steps` quota holds across the API's Lambda instances:
   * `"contended"` while the executor is throttled (each step then takes a slot; nothing extra per
   * step otherwise), `"always"` at all times (two more DynamoDB writes per step, about $1.25 per
   * million steps), `"off"` never (the per-instance limits only). docs/DEPLOY.md, "Fair sharing".
   * @default "contended" (with keys required; with keys off there is one tenant and it is off)
   */
  readonly tenantConcurrencyLimit?: "contended" | "always" | "off";
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
   * A Lambda function URL on the API function (auth type NONE: the API checks its own API keys;
   * buffered responses), beside the HTTP API: the cheapest door for SDK clients (no API Gateway
   * charge per request). It has no stage throttling, so the API function then always has a
   * reserved concurrency ({@link apiReservedConcurrency}). HTTP only: `/ws` stays on the base URL.
   * docs/DEPLOY.md, "Two doors for HTTP".
   * @default true
   */
  readonly apiFunctionUrl?: boolean;
  /**
   * Reserved concurrency of the API function: caps the API invocations running at once through
   * both doors, and with them the rate (Lambda serves at most 10 requests per second per unit of a
   * function's concurrency) and spend of the function URL, which has no throttling of its own.
   * Every step holds an API invocation while its executor runs, so keep it above
   * `executorReservedConcurrency`. Reserving fails in an account whose concurrency quota is too
   * small (new accounts have 10 and Lambda keeps 10 unreserved): raise the quota, or turn
   * `apiFunctionUrl` off.
   * @default - with `apiFunctionUrl`: 100, or `executorReservedConcurrency` + 50 when that is larger;
   * without it: no reservation (the HTTP API's stage throttling bounds the API)
   */
  readonly apiReservedConcurrency?: number;
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

/**
 * The API function's reserved concurrency when its function URL is on and none is given: 100
 * invocations at once hold the HTTP API's default stage rate (50 requests/s) for answers averaging
 * up to 2 s, and bound the function URL to 1,000 requests/s.
 */
export const DEFAULT_API_RESERVED_CONCURRENCY = 100;

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

/** The props of {@link CodingEnvironment}, checked, with their defaults applied. */
export interface ResolvedProps {
  readonly executorMemoryMb: number;
  readonly apiMemoryMb: number;
  readonly apiFunctionUrl: boolean;
  /** The API function's reserved concurrency, `undefined` for none. */
  readonly apiReservedConcurrency: number | undefined;
  readonly maxStep: number;
  readonly defaultStep: number;
  readonly rateLimit: number;
  readonly burstLimit: number;
  readonly api5xxAlarmPercent: number;
  readonly allowedOrigins: string[];
  readonly zones: string[] | undefined;
  /** `CODING_ENV_QUOTA_*` of the API functions. */
  readonly quotaEnv: Record<string, string>;
  readonly logRetention: logs.RetentionDays;
  readonly logLevel: LogLevel;
}

/** Checks `props` (failing fast, naming `scope`, on settings that cannot work in AWS) and applies defaults. */
export function resolveProps(scope: Construct, props: CodingEnvironmentProps): ResolvedProps {
  const executorMemoryMb = requireInteger(
    scope,
    "executorMemoryMb",
    props.executorMemoryMb ?? 1024,
    512,
    10240,
  );
  const apiMemoryMb = requireInteger(scope, "apiMemoryMb", props.apiMemoryMb ?? 512, 128, 10240);
  const maxStep = requireInteger(
    scope,
    "maxStepTimeoutSeconds",
    props.maxStepTimeoutSeconds ?? MAX_STEP_TIMEOUT_LIMIT_S,
    1,
    MAX_STEP_TIMEOUT_LIMIT_S,
  );
  const defaultStep = requireInteger(
    scope,
    "defaultStepTimeoutSeconds",
    props.defaultStepTimeoutSeconds ?? maxStep,
    1,
    maxStep,
  );
  if (props.executorReservedConcurrency !== undefined) {
    requireInteger(scope, "executorReservedConcurrency", props.executorReservedConcurrency, 1, 100_000);
  }
  const apiFunctionUrl = props.apiFunctionUrl ?? true;
  if (typeof apiFunctionUrl !== "boolean") {
    throw new CodingEnvironmentPropsError(
      `${scope.node.path}: apiFunctionUrl must be true or false, got ${JSON.stringify(apiFunctionUrl)}`,
    );
  }
  // The function URL's only throttle: with it on there is always a reservation.
  const apiReservedConcurrency =
    props.apiReservedConcurrency !== undefined
      ? requireInteger(scope, "apiReservedConcurrency", props.apiReservedConcurrency, 1, 100_000)
      : apiFunctionUrl
        ? Math.max(DEFAULT_API_RESERVED_CONCURRENCY, (props.executorReservedConcurrency ?? 0) + 50)
        : undefined;
  if (
    props.tenantConcurrencyLimit !== undefined &&
    !["contended", "always", "off"].includes(props.tenantConcurrencyLimit)
  ) {
    throw new CodingEnvironmentPropsError(
      `${scope.node.path}: tenantConcurrencyLimit must be "contended", "always" or "off", got ${JSON.stringify(props.tenantConcurrencyLimit)}`,
    );
  }
  const rateLimit = props.apiThrottle?.rateLimit ?? 50;
  const burstLimit = props.apiThrottle?.burstLimit ?? 100;
  requireInteger(scope, "apiThrottle.rateLimit", rateLimit, 1, 1_000_000);
  requireInteger(scope, "apiThrottle.burstLimit", burstLimit, 1, 1_000_000);
  const api5xxAlarmPercent = props.api5xxAlarmPercent ?? 5;
  if (!(api5xxAlarmPercent > 0 && api5xxAlarmPercent <= 100)) {
    throw new CodingEnvironmentPropsError(
      `${scope.node.path}: api5xxAlarmPercent must be in (0, 100], got ${api5xxAlarmPercent}`,
    );
  }
  const allowedOrigins = requireOrigins(scope, props.allowedOrigins ?? []);
  if ((props.domainName === undefined) !== (props.certificate === undefined)) {
    throw new CodingEnvironmentPropsError(
      `${scope.node.path}: domainName and certificate go together (a custom domain needs its certificate)`,
    );
  }
  if (
    props.domainName !== undefined &&
    !/^(?=.{1,253}$)([a-z0-9-]{1,63}\.)+[a-z]{2,63}$/.test(props.domainName)
  ) {
    throw new CodingEnvironmentPropsError(
      `${scope.node.path}: domainName '${props.domainName}' is not a lowercase host name like env.example.com`,
    );
  }
  const zones =
    props.executorAvailabilityZones === undefined
      ? undefined
      : requireZones(scope, props.executorAvailabilityZones);
  const quotaEnv: Record<string, string> = { [API_ENV.quotaMaxStepTimeoutS]: String(maxStep) };
  const quotas = props.defaultQuotas ?? {};
  if (quotas.stepsPerDay !== undefined) {
    quotaEnv[API_ENV.quotaStepsPerDay] = String(
      requireInteger(scope, "defaultQuotas.stepsPerDay", quotas.stepsPerDay, 1, 1e9),
    );
  }
  if (quotas.activeEpisodes !== undefined) {
    quotaEnv[API_ENV.quotaActiveEpisodes] = String(
      requireInteger(
        scope,
        "defaultQuotas.activeEpisodes",
        quotas.activeEpisodes,
        1,
        MAX_ACTIVE_EPISODES_QUOTA,
      ),
    );
  }
  if (quotas.maxStateBytes !== undefined) {
    quotaEnv[API_ENV.quotaMaxStateBytes] = String(
      requireInteger(scope, "defaultQuotas.maxStateBytes", quotas.maxStateBytes, 1024, 1e10),
    );
  }
  const logRetention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;
  const logLevel = props.logLevel ?? "INFO";
  return {
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
  };
}
