// GET /usage: the caller's metered usage per UTC day (hosted mode).
import { createRoute } from "@hono/zod-openapi";
import { NotFoundError } from "../core/errors.js";
import { methodNotAllowed } from "../http/errors.js";
import { errorResponses, jsonContent, KEY_REQUIRED, newRouteApp } from "../http/openapi.js";
import { UsageQuerySchema, UsageReportSchema } from "../http/schemas.js";
import type { AppDeps } from "../http/types.js";

const usageRoute = createRoute({
  method: "get",
  path: "/usage",
  summary: "Your metered usage per UTC day",
  description: "Rolled up from the store's change stream: a step appears a few seconds after it ran.",
  security: KEY_REQUIRED,
  request: { query: UsageQuerySchema },
  responses: {
    200: jsonContent(UsageReportSchema, "Usage per day and totals"),
    ...errorResponses({
      extra: [404, 422],
      describe: {
        422: "`validation_error`: `from` or `to` is not a date YYYY-MM-DD, `from` is after `to`, or the range is over 366 days; FastAPI's `detail` names the parameter.",
      },
    }),
  },
});

export function usageRoutes(deps: AppDeps) {
  const app = newRouteApp();
  app.openapi(usageRoute, async (c) => {
    if (!deps.tenancy) throw new NotFoundError("Usage is not metered on this server.");
    const { from, to } = c.req.valid("query");
    return c.json(await deps.tenancy.usage(c.get("tenantId"), from, to), 200) as never;
  });
  app.all("/usage", methodNotAllowed);
  return app;
}
