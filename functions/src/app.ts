// The HTTP API: one Hono app, served by @hono/node-server locally and hono/aws-lambda in AWS.
// It is composed here: the app-wide middleware (http/), then sub-apps mounted with `app.route()`
// (routes/), each route defined once with @hono/zod-openapi so that its validation and its part
// of /openapi.json come from the same schemas (http/schemas.ts). One `onError` (http/errors.ts)
// turns every error into `{"error":{"code","message","details"?}}` without internals.
// To add routes: a file in routes/ exporting a sub-app, mounted below with one `app.route()` line.
import { OpenAPIHono } from "@hono/zod-openapi";
import { RefusalPacer } from "./admission/refusal-pacer.js";
import { paceRefusals } from "./http/admission.js";
import { hostAllowList, hostCheck, jsonBodiesOnly, originCheck } from "./http/browser-guards.js";
import { requestDeadline } from "./http/deadline.js";
import { errorHandler, routeNotFound } from "./http/errors.js";
import { bodySizeLimits, requestLog, resolveTenant } from "./http/middleware.js";
import { validationHook } from "./http/request.js";
import type { AppDeps, AppEnv, AppLogger } from "./http/types.js";
import { docsRoutes, openApiDocument } from "./routes/docs.js";
import { episodeRoutes } from "./routes/episodes.js";
import { episodesListRoutes } from "./routes/episodes-list.js";
import { filesRoutes } from "./routes/files.js";
import { openEnvRoutes } from "./routes/openenv.js";
import { usageRoutes } from "./routes/usage.js";
import { webRoutes } from "./routes/web.js";

export { EPISODE_COOKIE } from "./http/request.js";
export {
  CodeActionSchema,
  CodeObservationSchema,
  CodeStateSchema,
  ErrorResponseSchema,
  ResetRequestSchema,
  StepRequestSchema,
  StepResponseSchema,
} from "./http/schemas.js";
export type { AppDeps, AppLogger, AppTenancy, TenantScope, WebAsset } from "./http/types.js";

const stderrLogger: AppLogger = {
  info: () => {},
  error: (message, attributes) => console.error(JSON.stringify({ level: "ERROR", message, ...attributes })),
};

/**
 * Builds the API.
 *
 * @example
 * const app = createApp({ episodes, config });
 * serve({ fetch: app.fetch, port: 8000 });
 */
export function createApp(deps: AppDeps): OpenAPIHono<AppEnv> {
  const { config } = deps;
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.onError(errorHandler(deps.logger ?? stderrLogger));
  app.notFound(routeNotFound);

  if (deps.logger) app.use("*", requestLog(deps.logger));
  // A browser can reach this API (issue 10): Host, Origin and JSON bodies are checked before
  // anything reads the body; then every request gets the deadline the executor call respects.
  const hosts = hostAllowList(config.allowedHosts, deps.localBindAddress);
  if (hosts) app.use("*", hostCheck(hosts));
  app.use("*", originCheck(config.allowedOrigins));
  app.use("*", jsonBodiesOnly());
  app.use("*", requestDeadline(config.requestDeadlineS));
  for (const limit of bodySizeLimits(config.maxBodyBytes)) app.use("*", limit);
  app.use("*", resolveTenant(deps.tenancy, config.authRequired));
  // A tenant refused "retry soon" is told when, so its retries come back spread out (issue 10).
  // Keys off there is one tenant, nobody to be fair to: "1 s" as the error says.
  if (config.authRequired) app.use("*", paceRefusals(new RefusalPacer()));

  app.route("/", openEnvRoutes(deps));
  app.route("/", episodesListRoutes(deps.episodes));
  app.route("/", episodeRoutes(deps));
  app.route("/", filesRoutes(deps));
  app.route("/", usageRoutes(deps));
  app.route(
    "/",
    docsRoutes(() => openApiDocument(app, deps.version ?? "0.1.0")),
  );
  app.route("/", webRoutes(deps.webAssets ?? {}));
  return app;
}
