// Settings of the API, read once from environment variables (names in docs/ARCHITECTURE.md).

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
  /** Largest compressed Python state the store keeps. @default 3 MiB */
  readonly maxStateBytes: number;
}

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
};

function positiveNumber(env: Record<string, string | undefined>, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got '${raw}'`);
  return n;
}

/** Reads the configuration from environment variables; throws on a malformed value (fail fast). */
export function configFromEnv(env: Record<string, string | undefined> = process.env): ApiConfig {
  const auth = (env.CODING_ENV_AUTH ?? "off").toLowerCase();
  if (!["on", "off", "true", "false", "1", "0"].includes(auth)) {
    throw new Error(`CODING_ENV_AUTH must be 'on' or 'off', got '${env.CODING_ENV_AUTH}'`);
  }
  const defaultStepTimeoutS = positiveNumber(
    env,
    "CODING_ENV_DEFAULT_STEP_TIMEOUT_S",
    defaultConfig.defaultStepTimeoutS,
  );
  const maxStepTimeoutS = positiveNumber(env, "CODING_ENV_MAX_STEP_TIMEOUT_S", defaultConfig.maxStepTimeoutS);
  if (defaultStepTimeoutS > maxStepTimeoutS) {
    throw new Error("CODING_ENV_DEFAULT_STEP_TIMEOUT_S must not exceed CODING_ENV_MAX_STEP_TIMEOUT_S");
  }
  return {
    ...defaultConfig,
    tableName: env.CODING_ENV_TABLE || defaultConfig.tableName,
    executorFunction: env.CODING_ENV_EXECUTOR_FUNCTION || defaultConfig.executorFunction,
    executorMemoryMb: positiveNumber(env, "CODING_ENV_EXECUTOR_MEMORY_MB", defaultConfig.executorMemoryMb),
    authRequired: ["on", "true", "1"].includes(auth),
    defaultStepTimeoutS,
    maxStepTimeoutS,
  };
}
