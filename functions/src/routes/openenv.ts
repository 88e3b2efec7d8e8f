// OpenEnv's endpoints: /health, /schema, /metadata, /reset, /step, /state and the /ws WebSocket.
import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { setCookie } from "hono/cookie";
import { methodNotAllowed } from "../http/errors.js";
import { errorResponses, jsonContent, KEY_REQUIRED, NO_KEY, newRouteApp } from "../http/openapi.js";
import { EPISODE_COOKIE, jsonBody, requestedEpisodeId, resolveEpisodeId } from "../http/request.js";
import {
  CodeActionSchema,
  CodeObservationSchema,
  CodeStateSchema,
  defined,
  HealthSchema,
  jsonSchemaOf,
  MetadataResponseSchema,
  ResetRequestSchema,
  SchemaResponseSchema,
  StepRequestSchema,
  StepResponseSchema,
  wellFormed,
} from "../http/schemas.js";
import type { AppDeps, TenantScope } from "../http/types.js";
import { toWireJson } from "../http/wire-json.js";
import { checkResumedEpisodeId, readWsHandshake } from "../ws/handshake.js";
import { nodeWsSession } from "../ws/node.js";

/** A JSON response written as OpenEnv writes it (float rewards). */
export function wireJson(c: Context, body: unknown, status: 200 | 201 = 200): Response {
  return c.body(toWireJson(body), status, { "Content-Type": "application/json" });
}

const healthRoute = createRoute({
  method: "get",
  path: "/health",
  summary: "Health, and whether requests need an API key",
  security: NO_KEY,
  responses: { 200: jsonContent(HealthSchema, "Healthy"), ...errorResponses({ common: false }) },
});

const schemaRoute = createRoute({
  method: "get",
  path: "/schema",
  summary: "JSON Schemas of CodeAction, CodeObservation and CodeState",
  security: NO_KEY,
  responses: { 200: jsonContent(SchemaResponseSchema, "The schemas"), ...errorResponses({ common: false }) },
});

const metadataRoute = createRoute({
  method: "get",
  path: "/metadata",
  summary: "The environment's metadata",
  security: NO_KEY,
  responses: { 200: jsonContent(MetadataResponseSchema, "Metadata"), ...errorResponses({ common: false }) },
});

const resetRoute = createRoute({
  method: "post",
  path: "/reset",
  summary: "Start a new episode",
  description:
    "Starts an episode and sets the `coding_env_episode` cookie (so /step and /state find it). The body is optional: `{}` starts a default episode.",
  security: KEY_REQUIRED,
  middleware: [jsonBody(true)] as const,
  request: {
    body: { content: { "application/json": { schema: ResetRequestSchema, example: {} } }, required: false },
  },
  responses: { 200: jsonContent(StepResponseSchema, "The new episode"), ...errorResponses({ body: true }) },
});

const stepRoute = createRoute({
  method: "post",
  path: "/step",
  summary: "Run Python code in the episode",
  description:
    "Runs `action.code` in the episode named by `episode_id` (body or query), the X-Episode-Id header or the cookie /reset sets. Errors of the code are data (`exit_code` 1, a traceback in `stderr`), never an HTTP error.",
  security: KEY_REQUIRED,
  middleware: [jsonBody(false)] as const,
  request: {
    body: {
      content: {
        "application/json": { schema: StepRequestSchema, example: { action: { code: "print(1)" } } },
      },
      required: true,
    },
  },
  responses: {
    200: jsonContent(StepResponseSchema, "The step's observation and reward"),
    ...errorResponses({ body: true, extra: [404, 409, 502, 504] }),
  },
});

const stateQuery = z.object({
  episode_id: z
    .string()
    .optional()
    .describe("The episode; default the X-Episode-Id header, then the cookie."),
});

const stateRoute = createRoute({
  method: "get",
  path: "/state",
  summary: "The current episode's state",
  description:
    "The state of the episode named by `episode_id`, the X-Episode-Id header or the cookie. With none named, the reference's empty state (`episode_id: null`).",
  security: KEY_REQUIRED,
  request: { query: stateQuery },
  responses: { 200: jsonContent(CodeStateSchema, "Episode state"), ...errorResponses({ extra: [404, 422] }) },
});

/** The OpenEnv endpoints. */
export function openEnvRoutes(deps: AppDeps) {
  const { episodes, config } = deps;
  const app = newRouteApp();

  app.openapi(healthRoute, (c) =>
    c.json({ status: "healthy" as const, auth_required: config.authRequired }, 200),
  );

  app.openapi(schemaRoute, (c) =>
    c.json(
      {
        action: jsonSchemaOf(CodeActionSchema),
        observation: jsonSchemaOf(CodeObservationSchema),
        state: jsonSchemaOf(CodeStateSchema),
      },
      200,
    ),
  );

  app.openapi(metadataRoute, async (c) => {
    const packages = await deps.packages?.();
    return c.json(
      {
        name: "coding_env",
        description:
          "A Python code execution environment that runs arbitrary Python code and returns results (OpenEnv coding_env compatible; many episodes, durable state).",
        version: deps.version ?? "0.1.0",
        author: "coding-env",
        documentation_url: "/docs",
        ...(packages ? { packages } : {}),
      },
      200,
    );
  });

  app.openapi(resetRoute, async (c) => {
    const opts = defined(c.req.valid("json"));
    const res = await episodes.reset(c.get("tenantId"), {
      ...opts,
      ...(opts.additional_imports ? { additional_imports: opts.additional_imports } : {}),
    });
    setCookie(c, EPISODE_COOKIE, res.episode_id, { path: "/", httpOnly: true, sameSite: "Lax" });
    return wireJson(c, res) as never;
  });

  app.openapi(stepRoute, async (c) => {
    const body = c.req.valid("json");
    const episodeId = resolveEpisodeId(c, body.episode_id);
    const { body: res, replayed } = await episodes.step(c.get("tenantId"), episodeId, {
      code: wellFormed(body.action.code),
      ...(body.timeout_s != null ? { timeout_s: body.timeout_s } : {}),
      ...(body.request_id != null ? { request_id: wellFormed(body.request_id) } : {}),
    });
    if (replayed) c.header("Idempotent-Replayed", "true");
    return wireJson(c, res) as never;
  });

  app.openapi(stateRoute, async (c) => {
    const id = requestedEpisodeId(c, undefined);
    // OpenEnv's server answers a fresh environment's state: no episode yet.
    if (id === undefined) return c.json({ episode_id: null, step_count: 0, last_exit_code: 0 }, 200);
    return c.json(await episodes.state(c.get("tenantId"), id), 200);
  });

  if (deps.upgradeWebSocket) {
    const tenancy = deps.tenancy;
    // The episode a handshake names (as AWS's $connect reads it: ws/handshake.ts): refused before
    // the upgrade unless it is the caller's own (another tenant's id is simply not found).
    const resumed = (c: Context) =>
      readWsHandshake(Object.fromEntries(c.req.raw.headers.entries()), c.req.query()).episodeId;
    app.get(
      "/ws",
      async (c, next) => {
        const episodeId = resumed(c);
        if (episodeId !== undefined) {
          checkResumedEpisodeId(episodeId);
          await episodes.state(c.get("tenantId"), episodeId);
        }
        await next();
      },
      deps.upgradeWebSocket((c) => {
        const tenant = c.get("tenant") as TenantScope | undefined;
        const episodeId = resumed(c);
        return nodeWsSession({
          service: episodes,
          tenantId: c.get("tenantId") as string,
          ...(episodeId !== undefined ? { episodeId } : {}),
          maxMessageBytes: config.maxBodyBytes,
          ...(tenancy && tenant ? { runAs: <T>(fn: () => Promise<T>) => tenancy.runAs(tenant, fn) } : {}),
        });
      }),
    );
  }

  for (const path of ["/reset", "/step", "/state", "/health", "/schema", "/metadata"]) {
    app.all(path, methodNotAllowed);
  }
  return app;
}
