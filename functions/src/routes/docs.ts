// Documentation and the way in: GET /openapi.json (generated from the routes' definitions),
// GET /docs (Swagger UI) and GET / (to the page).
import type { OpenAPIHono } from "@hono/zod-openapi";
import { Hono } from "hono";
import { methodNotAllowed } from "../http/errors.js";
import { SECURITY_SCHEMES } from "../http/openapi.js";
import type { AppEnv } from "../http/types.js";

const API_DESCRIPTION = `A hosted Python code-execution environment with OpenEnv coding_env's HTTP protocol.

Start with POST /reset (body \`{}\`): it starts an episode and sets a cookie, so POST /step with
\`{"action":{"code":"print(1)"}}\` runs code in it. Python state persists between steps. Episodes
can be named explicitly with \`episode_id\` (body or query) or the \`X-Episode-Id\` header.

When GET /health says \`auth_required\`, use Authorize with your API key (Bearer or X-API-Key).

Every error is \`{"error":{"code","message","details"?}}\`; a 422 also carries FastAPI's \`detail\` list.`;

/** The OpenAPI 3.1 document of `app` (every route mounted on it so far). */
export function openApiDocument(app: OpenAPIHono<AppEnv>, version: string): Record<string, unknown> {
  for (const [name, scheme] of Object.entries(SECURITY_SCHEMES)) {
    app.openAPIRegistry.registerComponent("securitySchemes", name, { ...scheme });
  }
  return app.getOpenAPI31Document({
    openapi: "3.1.0",
    info: { title: "coding-env", version, description: API_DESCRIPTION },
  }) as unknown as Record<string, unknown>;
}

function docsPage(): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>coding-env API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", persistAuthorization: true });</script>
</body></html>`;
}

/** /openapi.json, /docs and the redirect from /. `document` builds the whole app's document. */
export function docsRoutes(document: () => Record<string, unknown>) {
  const app = new Hono<AppEnv>();
  let cached: Record<string, unknown> | undefined;
  app.get("/openapi.json", (c) => {
    cached ??= document();
    return c.json(cached);
  });
  app.get("/docs", (c) => c.html(docsPage()));
  app.get("/", (c) => c.redirect("/web", 302));
  app.all("/openapi.json", methodNotAllowed);
  app.all("/docs", methodNotAllowed);
  return app;
}
