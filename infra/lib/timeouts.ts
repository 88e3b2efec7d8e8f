// Timeouts that hold cold: the template's side of the budget that functions/src/config.ts derives
// for the API (docs/DEPLOY.md, "Timeouts: what is counted where").
import { AWS_TIMEOUTS, COLD_START_ALLOWANCE_S, EXECUTOR_MARGIN_S } from "../../functions/src/config.js";

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
