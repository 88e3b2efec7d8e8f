// Settings of the API, read once from environment variables (names in docs/LOCAL-STACK.md).

/** Deployment settings the core needs. Times in seconds as in the HTTP API. */
export interface ApiConfig {
  /** DynamoDB table. @default "coding-env" */
  readonly tableName: string;
  /** Executor function name or ARN. @default "coding-env-executor" */
  readonly executorFunction: string;
  /** Executor memory, for GB-seconds metering. @default 1024 */
  readonly executorMemoryMb: number;
  /** Whether API keys are required. @default false */
  readonly authRequired: boolean;
  /** Per-step limit when the episode sets none. @default 30 */
  readonly defaultStepTimeoutS: number;
  /** Largest per-step limit an episode may ask for. @default 300 */
  readonly maxStepTimeoutS: number;
  /** Idle seconds before an episode expires, when reset sets none. @default 86400 */
  readonly defaultTtlS: number;
  /** Largest `ttl_s`. @default 2592000 (30 days) */
  readonly maxTtlS: number;
  /** Largest accepted request body. @default 2 MiB */
  readonly maxBodyBytes: number;
  /** Largest `action.code`. @default 1 MiB */
  readonly maxCodeBytes: number;
  /**
   * Largest Python state (the executor's snapshot) the store keeps. @default 256 MiB with a state
   * bucket (`CODING_ENV_STATE_BUCKET`: large states in S3), else 3 MiB; env `CODING_ENV_MAX_STATE_BYTES`.
   */
  readonly maxStateBytes: number;
  /**
   * Seconds the API waits for the executor beyond the step's own limit: the executor's margin
   * (restore before the user code, save after it, worker waits: {@link EXECUTOR_MARGIN_S}) plus a
   * cold start ({@link COLD_START_ALLOWANCE_S}). Env `CODING_ENV_EXECUTOR_GRACE_S`. @default 6
   */
  readonly executorGraceS: number;
  /**
   * Seconds from a request's arrival by which the API answers (its own 504 when the executor is
   * still running), or 0 for none (the local stack). In AWS: {@link AWS_TIMEOUTS}.requestDeadlineS.
   * Env `CODING_ENV_REQUEST_DEADLINE_S`. @default 0
   */
  readonly requestDeadlineS: number;
  /**
   * Executor calls this API process makes at once, all tenants together; the Lambda client's
   * connection pool holds this many plus {@link EXECUTOR_POOL_HEADROOM}, so it never queues.
   * Env `CODING_ENV_EXECUTOR_MAX_CONCURRENCY`. @default 64
   */
  readonly executorMaxConcurrency: number;
  /**
   * Executor calls one tenant may have running at once in this process (the rest wait their turn,
   * tenants served in rotation). Env `CODING_ENV_TENANT_MAX_RUNNING_STEPS`. @default 8
   */
  readonly tenantMaxRunningSteps: number;
  /**
   * Steps of one tenant that may wait for an executor slot in this process; beyond it a step is
   * answered 429 `too_many_concurrent_steps` (Retry-After) without running.
   * Env `CODING_ENV_TENANT_MAX_WAITING_STEPS`. @default 64
   */
  readonly tenantMaxWaitingSteps: number;
  /**
   * Steps admitted at once in this API process, all tenants (a step is admitted before its first
   * store read; functions/src/admission/). Env `CODING_ENV_MAX_STEPS_IN_FLIGHT`. @default 64
   */
  readonly maxStepsInFlight?: number;
  /**
   * API processes sharing the per-tenant step caps (the local stack's `CODING_ENV_API_INSTANCES`):
   * each takes 1/N of them, rounded up. @default 1
   */
  readonly apiInstances?: number;
  /**
   * Whether the per-tenant step cap follows how busy the API process is (admission/load-governor.ts).
   * Env `CODING_ENV_ADMISSION_GOVERNOR` (`on` | `off`). @default true
   */
  readonly admissionGovernor?: boolean;
  /**
   * Whether steps take a per-tenant slot shared by every API instance while the executor is
   * contended (admission/executor-governor.ts). Env {@link EXECUTOR_GOVERNOR_ENV}`.governor`
   * (`on` | `off` | `always`). @default on when keys are required (with keys off there is one tenant)
   */
  readonly executorGovernor?: boolean;
  /**
   * Every step takes its slot, contended or not (env value `always`): `concurrent_steps` then
   * holds across API instances at all times, for two more writes per step. @default false
   */
  readonly executorGovernorAlways?: boolean;
  /** How long an instance trusts one read of the contention flag (ms). @default 2000 */
  readonly executorGovernorCheckMs?: number;
  /** How long a throttle keeps the executor governed (s). @default 30 */
  readonly executorGovernorTtlS?: number;
  /**
   * The executor's reserved concurrency, when set: a tenant holds at most half of it while
   * governed. Locally also the executor's emulated limit (local/stack.ts). @default none
   */
  readonly executorReservedConcurrency?: number;
  /**
   * Origins (`scheme://host[:port]`) whose cross-origin requests are served (CORS); every other
   * cross-origin request is refused 403. Env `CODING_ENV_ALLOWED_ORIGINS`, comma-separated.
   * @default [] (same-origin only)
   */
  readonly allowedOrigins: readonly string[];
  /**
   * Host names the `Host` header may name besides the local stack's own (its bound address,
   * localhost); `null` turns the Host check off (AWS, where API Gateway picks the host).
   * Env `CODING_ENV_ALLOWED_HOSTS`, comma-separated. @default null
   */
  readonly allowedHosts: readonly string[] | null;
}

/**
 * Timeouts that hold cold (issue 11), from the outside in, in seconds:
 *
 *   API Gateway integration timeout     G = 29   (HTTP APIs answer within 30 s; CDK allows 29)
 *   API Lambda timeout                  A = G - 1 = 28  (the API's own 504 still reaches the client)
 *   request deadline (API answers)      D = A - 1 = 27  (1 s to write the metering and answer)
 *   read before the invoke              R = 1
 *   executor grace                      X = EXECUTOR_MARGIN_S + COLD_START_ALLOWANCE_S = 2 + 4 = 6
 *   invoke abort                        step + X, and never after D (whichever comes first)
 *   largest step limit                  S = D - R - X = 20
 *   executor Lambda timeout             step limit + X = 26: the runtime starts its zygote and
 *                                       first worker inside the first invocation, and an init
 *                                       past Lambda's 10 s limit is re-run inside it, so the cold
 *                                       start counts against the function's timeout too
 *
 * So a cold step that uses its whole limit is answered by the executor before the API gives up,
 * and a hung executor is answered 504 by the API at D, before its own Lambda timeout and before
 * API Gateway's. `configFromEnv` refuses settings that break `maxStepTimeoutS + X + R <= D`.
 */
export const EXECUTOR_MARGIN_S = 2;
/**
 * Executor init on a cold start (container image, zygote, preloaded numpy/pandas): the runtime's
 * part is measured by bench/runtime/cold_start.py (about 0.65 s of CPU), the rest is Lambda's own
 * init of the image (docs/DEPLOY.md, "The cold-start allowance").
 */
export const COLD_START_ALLOWANCE_S = 4;
/** DynamoDB read before the invoke. */
export const READ_BEFORE_INVOKE_S = 1;
/** Connections of the executor client beyond `executorMaxConcurrency` (discards, headroom). */
export const EXECUTOR_POOL_HEADROOM = 16;
export const AWS_TIMEOUTS = Object.freeze({
  apiGatewayIntegrationS: 29,
  apiFunctionS: 28,
  requestDeadlineS: 27,
  executorGraceS: EXECUTOR_MARGIN_S + COLD_START_ALLOWANCE_S,
  maxStepTimeoutS: 27 - READ_BEFORE_INVOKE_S - (EXECUTOR_MARGIN_S + COLD_START_ALLOWANCE_S),
  /** The executor Lambda's timeout for a deployment's largest step limit. */
  executorFunctionS: (maxStepTimeoutS: number) =>
    maxStepTimeoutS + EXECUTOR_MARGIN_S + COLD_START_ALLOWANCE_S,
});

/** Environment variables of the executor governor's settings (infra sets them by these names). */
export const EXECUTOR_GOVERNOR_ENV = Object.freeze({
  governor: "CODING_ENV_EXECUTOR_GOVERNOR",
  checkMs: "CODING_ENV_EXECUTOR_GOVERNOR_CHECK_MS",
  ttlS: "CODING_ENV_EXECUTOR_GOVERNOR_TTL_S",
  reservedConcurrency: "CODING_ENV_EXECUTOR_RESERVED_CONCURRENCY",
});

/**
 * Every environment variable the Node side reads, by setting: the one list of names. `configFromEnv`,
 * the Lambda entry points, deps.ts, tenancy/ and the local stack read them by these names, and
 * infra/lib sets them by these names (infra/test/settings-names.test.ts checks both).
 */
export const API_ENV = Object.freeze({
  // Read by configFromEnv (the ApiConfig field of the same name, unless said otherwise).
  table: "CODING_ENV_TABLE",
  executorFunction: "CODING_ENV_EXECUTOR_FUNCTION",
  executorMemoryMb: "CODING_ENV_EXECUTOR_MEMORY_MB",
  /** `authRequired` */
  auth: "CODING_ENV_AUTH",
  defaultStepTimeoutS: "CODING_ENV_DEFAULT_STEP_TIMEOUT_S",
  maxStepTimeoutS: "CODING_ENV_MAX_STEP_TIMEOUT_S",
  maxStateBytes: "CODING_ENV_MAX_STATE_BYTES",
  /** Large states in S3 (deps.ts); also raises the default `maxStateBytes`. */
  stateBucket: "CODING_ENV_STATE_BUCKET",
  executorGraceS: "CODING_ENV_EXECUTOR_GRACE_S",
  requestDeadlineS: "CODING_ENV_REQUEST_DEADLINE_S",
  executorMaxConcurrency: "CODING_ENV_EXECUTOR_MAX_CONCURRENCY",
  tenantMaxRunningSteps: "CODING_ENV_TENANT_MAX_RUNNING_STEPS",
  tenantMaxWaitingSteps: "CODING_ENV_TENANT_MAX_WAITING_STEPS",
  maxStepsInFlight: "CODING_ENV_MAX_STEPS_IN_FLIGHT",
  apiInstances: "CODING_ENV_API_INSTANCES",
  admissionGovernor: "CODING_ENV_ADMISSION_GOVERNOR",
  executorGovernor: EXECUTOR_GOVERNOR_ENV.governor,
  executorGovernorCheckMs: EXECUTOR_GOVERNOR_ENV.checkMs,
  executorGovernorTtlS: EXECUTOR_GOVERNOR_ENV.ttlS,
  executorReservedConcurrency: EXECUTOR_GOVERNOR_ENV.reservedConcurrency,
  allowedOrigins: "CODING_ENV_ALLOWED_ORIGINS",
  allowedHosts: "CODING_ENV_ALLOWED_HOSTS",
  // Per-tenant quota defaults (tenancy/quotas.ts).
  quotaStepsPerDay: "CODING_ENV_QUOTA_STEPS_PER_DAY",
  quotaActiveEpisodes: "CODING_ENV_QUOTA_ACTIVE_EPISODES",
  quotaMaxStateBytes: "CODING_ENV_QUOTA_MAX_STATE_BYTES",
  quotaMaxStepTimeoutS: "CODING_ENV_QUOTA_MAX_STEP_TIMEOUT_S",
  quotaConcurrentSteps: "CODING_ENV_QUOTA_CONCURRENT_STEPS",
  // Read by the entry points, deps.ts, tenancy/ and metering/.
  dynamodbEndpoint: "CODING_ENV_DYNAMODB_ENDPOINT",
  executorEndpoint: "CODING_ENV_EXECUTOR_ENDPOINT",
  s3Endpoint: "CODING_ENV_S3_ENDPOINT",
  localAccessKeyId: "CODING_ENV_LOCAL_ACCESS_KEY_ID",
  localSecretAccessKey: "CODING_ENV_LOCAL_SECRET_ACCESS_KEY",
  wsManagementEndpoint: "CODING_ENV_WS_MANAGEMENT_ENDPOINT",
  authCacheTtlMs: "CODING_ENV_AUTH_CACHE_TTL_MS",
  metering: "CODING_ENV_METERING",
  // The local stack (local/, scripts/start-local.ts, scripts/keys.ts).
  logRequests: "CODING_ENV_LOG_REQUESTS",
  executorMode: "CODING_ENV_EXECUTOR_MODE",
  dataDir: "CODING_ENV_DATA_DIR",
  dynamodbThread: "CODING_ENV_DYNAMODB_THREAD",
  /** The executor's interpreter (scripts/python.mjs reads it; the local stack keys its choice by it). */
  python: "CODING_ENV_PYTHON",
});

/** Largest state with a state bucket (S3): the executor's worker cap (RuntimeOpts.max_snapshot_bytes) plus its envelope. */
export const MAX_STATE_BYTES_IN_S3 = 256 * 1024 * 1024 + 4096;

export const defaultConfig: ApiConfig = {
  tableName: "coding-env",
  executorFunction: "coding-env-executor",
  executorMemoryMb: 1024,
  authRequired: false,
  defaultStepTimeoutS: 30,
  maxStepTimeoutS: 300,
  defaultTtlS: 86_400,
  maxTtlS: 30 * 86_400,
  maxBodyBytes: 2 * 1024 * 1024,
  maxCodeBytes: 1024 * 1024,
  maxStateBytes: 3 * 1024 * 1024,
  executorGraceS: EXECUTOR_MARGIN_S + COLD_START_ALLOWANCE_S,
  requestDeadlineS: 0,
  executorMaxConcurrency: 64,
  tenantMaxRunningSteps: 8,
  tenantMaxWaitingSteps: 64,
  allowedOrigins: [],
  allowedHosts: null,
};

function commaList(raw: string | undefined): string[] {
  return (raw ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

function origins(raw: string | undefined): string[] {
  return commaList(raw).map((o) => {
    if (o === "null") return o;
    let url: URL;
    try {
      url = new URL(o);
    } catch {
      throw new Error(`${API_ENV.allowedOrigins}: '${o}' is not an origin (scheme://host[:port])`);
    }
    return url.origin;
  });
}

function positiveNumber(env: Record<string, string | undefined>, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got '${raw}'`);
  return n;
}

function executorGovernorFromEnv(
  env: Record<string, string | undefined>,
  authRequired: boolean,
): Pick<
  ApiConfig,
  | "executorGovernor"
  | "executorGovernorAlways"
  | "executorGovernorCheckMs"
  | "executorGovernorTtlS"
  | "executorReservedConcurrency"
> {
  const names = EXECUTOR_GOVERNOR_ENV;
  const raw = (env[names.governor] ?? (authRequired ? "on" : "off")).toLowerCase();
  if (raw !== "on" && raw !== "off" && raw !== "always") {
    throw new Error(`${names.governor} must be 'on', 'off' or 'always', got '${raw}'`);
  }
  const reserved = env[names.reservedConcurrency];
  return {
    executorGovernor: raw !== "off",
    executorGovernorAlways: raw === "always",
    executorGovernorCheckMs: positiveNumber(env, names.checkMs, 2_000),
    executorGovernorTtlS: positiveNumber(env, names.ttlS, 30),
    ...(reserved !== undefined && reserved !== ""
      ? { executorReservedConcurrency: Math.floor(positiveNumber(env, names.reservedConcurrency, 1)) }
      : {}),
  };
}

/** Reads the configuration from environment variables; throws on a malformed value (fail fast). */
export function configFromEnv(env: Record<string, string | undefined> = process.env): ApiConfig {
  const E = API_ENV;
  const auth = (env[E.auth] ?? "off").toLowerCase();
  if (!["on", "off", "true", "false", "1", "0"].includes(auth)) {
    throw new Error(`${E.auth} must be 'on' or 'off', got '${env[E.auth]}'`);
  }
  const defaultStepTimeoutS = positiveNumber(env, E.defaultStepTimeoutS, defaultConfig.defaultStepTimeoutS);
  const maxStepTimeoutS = positiveNumber(env, E.maxStepTimeoutS, defaultConfig.maxStepTimeoutS);
  if (defaultStepTimeoutS > maxStepTimeoutS) {
    throw new Error(`${E.defaultStepTimeoutS} must not exceed ${E.maxStepTimeoutS}`);
  }
  const executorGraceS = positiveNumber(env, E.executorGraceS, defaultConfig.executorGraceS);
  const requestDeadlineS =
    env[E.requestDeadlineS] === "0"
      ? 0
      : positiveNumber(env, E.requestDeadlineS, defaultConfig.requestDeadlineS);
  if (requestDeadlineS > 0 && maxStepTimeoutS + executorGraceS + READ_BEFORE_INVOKE_S > requestDeadlineS) {
    throw new Error(
      `${E.maxStepTimeoutS} (${maxStepTimeoutS}) + ${E.executorGraceS} (${executorGraceS}) + ${READ_BEFORE_INVOKE_S} s must not exceed ${E.requestDeadlineS} (${requestDeadlineS})`,
    );
  }
  const allowedHosts = env[E.allowedHosts];
  return {
    ...defaultConfig,
    executorGraceS,
    requestDeadlineS,
    maxStateBytes: Math.floor(
      positiveNumber(
        env,
        E.maxStateBytes,
        env[E.stateBucket] ? MAX_STATE_BYTES_IN_S3 : defaultConfig.maxStateBytes,
      ),
    ),
    executorMaxConcurrency: Math.floor(
      positiveNumber(env, E.executorMaxConcurrency, defaultConfig.executorMaxConcurrency),
    ),
    tenantMaxRunningSteps: Math.floor(
      positiveNumber(env, E.tenantMaxRunningSteps, defaultConfig.tenantMaxRunningSteps),
    ),
    tenantMaxWaitingSteps: Math.floor(
      positiveNumber(env, E.tenantMaxWaitingSteps, defaultConfig.tenantMaxWaitingSteps),
    ),
    maxStepsInFlight: Math.floor(positiveNumber(env, E.maxStepsInFlight, 64)),
    apiInstances: Math.floor(positiveNumber(env, E.apiInstances, 1)),
    admissionGovernor: (env[E.admissionGovernor] ?? "on").toLowerCase() !== "off",
    ...executorGovernorFromEnv(env, ["on", "true", "1"].includes(auth)),
    allowedOrigins: origins(env[E.allowedOrigins]),
    allowedHosts: allowedHosts === undefined ? null : commaList(allowedHosts).map((h) => h.toLowerCase()),
    tableName: env[E.table] || defaultConfig.tableName,
    executorFunction: env[E.executorFunction] || defaultConfig.executorFunction,
    executorMemoryMb: positiveNumber(env, E.executorMemoryMb, defaultConfig.executorMemoryMb),
    authRequired: ["on", "true", "1"].includes(auth),
    defaultStepTimeoutS,
    maxStepTimeoutS,
  };
}
