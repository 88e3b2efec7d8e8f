// The HTTP side of admission (issue 10 point 7): a request refused with "retry soon" (409 or 429
// with a Retry-After) gets the Retry-After of its tenant's refusal pacer, so a tenant's retries
// come back spread out at a bounded rate however many clients it runs (admission/refusal-pacer.ts).
// A longer Retry-After already given (a daily quota's reset) is kept.
import type { MiddlewareHandler } from "hono";
import type { RefusalPacer } from "../admission/refusal-pacer.js";
import type { AppEnv } from "./types.js";

/** Paces the Retry-After of refused requests per tenant; installed after `resolveTenant`. */
export function paceRefusals(pacer: RefusalPacer): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    await next();
    const status = c.res.status;
    if (status !== 409 && status !== 429) return;
    const given = Number(c.res.headers.get("retry-after"));
    const tenantId = c.get("tenantId");
    if (!Number.isFinite(given) || given <= 0 || typeof tenantId !== "string") return;
    const paced = pacer.retryAfterS(tenantId);
    if (paced > given) c.res.headers.set("Retry-After", String(paced));
  };
}
