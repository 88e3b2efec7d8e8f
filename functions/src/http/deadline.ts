// Every request gets the time by which the API must answer (config.ts, "Timeouts that hold cold"):
// `requestDeadlineS` after arrival, and in Lambda never later than one second before the API
// function's own timeout. The executor client stops waiting at it, so the client gets our 504
// instead of API Gateway's.
import type { MiddlewareHandler } from "hono";
import { withDeadline } from "../executor/deadline.js";

/** Time kept to answer after the deadline's wait ends (write the metering, send the 504). */
const ANSWER_MARGIN_MS = 1000;

interface LambdaBindings {
  readonly lambdaContext?: { getRemainingTimeInMillis?: () => number };
}

/** Sets the request's deadline; `requestDeadlineS` 0 and no Lambda context means none. */
export function requestDeadline(requestDeadlineS: number): MiddlewareHandler {
  return async (c, next) => {
    const now = Date.now();
    let deadline = requestDeadlineS > 0 ? now + requestDeadlineS * 1000 : Number.POSITIVE_INFINITY;
    const remaining = (c.env as LambdaBindings | undefined)?.lambdaContext?.getRemainingTimeInMillis?.();
    if (typeof remaining === "number") deadline = Math.min(deadline, now + remaining - ANSWER_MARGIN_MS);
    if (deadline === Number.POSITIVE_INFINITY) {
      await next();
      return;
    }
    await withDeadline(deadline, () => next());
  };
}
