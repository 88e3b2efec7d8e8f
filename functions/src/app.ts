// The HTTP API: one Hono app, served by @hono/node-server locally and hono/aws-lambda in AWS.
// Thin handlers over the episode service (core/). Bodies are parsed and validated here (so that
// malformed JSON is a 400 and a wrong shape a 422 with FastAPI's `detail`), the routes are
// registered in the OpenAPI document from the same zod schemas, and one `onError` turns every
// error into `{"error":{"code","message","details"?}}` without internals.
import { OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { getCookie, setCookie } from "hono/cookie";
import { HTTPException } from "hono/http-exception";
import type { UpgradeWebSocket } from "hono/ws";
import type { ApiConfig } from "./config.js";
import { type EpisodeService, HISTORY_MAX_LIMIT } from "./core/episodes.js";
import {
  ApiError,
  EpisodeNotFoundError,
  EpisodeRequiredError,
  InternalError,
  InvalidJsonError,
  MethodNotAllowedError,
  NotFoundError,
  PayloadTooLargeError,
  UnauthorizedError,
  ValidationError,
  type ValidationIssue,
} from "./core/errors.js";
import { hostAllowList, hostCheck, jsonBodiesOnly, originCheck } from "./http/browser-guards.js";
import { requestDeadline } from "./http/deadline.js";
import {
  defined,
  EPISODE_ID_PATTERN,
  EpisodeIdSchema,
  ResetRequestSchema,
  wellFormed,
} from "./http/schemas.js";
import { nodeWsSession } from "./ws/node.js";

export { ResetRequestSchema };

export const EPISODE_COOKIE = "coding_env_episode";

// ---- Schemas (wire names) -------------------------------------------------------------------

export const CodeActionSchema = z
  .object({
    code: z.string().describe("Python source to run in the episode."),
    metadata: z.record(z.string(), z.unknown()).optional(),
  })
  .openapi("CodeAction");

export const CodeObservationSchema = z
  .object({
    stdout: z.string().default(""),
    stderr: z.string().default(""),
    exit_code: z.number().int().default(0),
  })
  .openapi("CodeObservation");

export const CodeStateSchema = z
  .object({
    episode_id: z.string().nullable(),
    step_count: z.number().int().min(0),
    last_exit_code: z.number().int(),
    policy: z.enum(["openenv", "full"]).optional(),
    additional_imports: z.array(z.string()).optional(),
    step_timeout_s: z.number().optional(),
    ttl_s: z.number().optional(),
    seed: z.number().int().optional(),
    forked_from: z.string().optional(),
    created_at: z.string().optional(),
    updated_at: z.string().optional(),
    expires_at: z.string().optional(),
  })
  .openapi("CodeState");

export const StepRequestSchema = z
  .object({
    action: CodeActionSchema,
    timeout_s: z.number().positive().nullish(),
    request_id: z.string().min(1).max(255).nullish(),
    episode_id: z.string().nullish(),
  })
  .openapi("StepRequest");

export const StepResponseSchema = z
  .object({
    observation: CodeObservationSchema,
    reward: z.number().nullable(),
    done: z.boolean(),
    metadata: z.record(z.string(), z.unknown()).optional(),
    episode_id: z.string(),
    step_count: z.number().int(),
    info: z.record(z.string(), z.unknown()).optional(),
    forked_from: z.string().optional(),
  })
  .openapi("StepResponse");

/** Paging of `GET /episodes/{id}/history`: `limit` steps after `cursor` (a previous `next_cursor`). */
const HistoryQuerySchema = z.object({
  limit: z.coerce.number().int().min(1).max(HISTORY_MAX_LIMIT).optional(),
  cursor: z.string().min(1).max(512).optional(),
});

export const ErrorResponseSchema = z
  .object({
    error: z.object({
      code: z.string(),
      message: z.string(),
      details: z.record(z.string(), z.unknown()).optional(),
    }),
    detail: z
      .array(z.object({ loc: z.array(z.union([z.string(), z.number()])), msg: z.string(), type: z.string() }))
      .optional(),
  })
  .openapi("Error");

// ---- App ------------------------------------------------------------------------------------

export interface WebAsset {
  readonly contentType: string;
  readonly body: string;
}

/** Dependencies of {@link createApp}. */
export interface AppDeps {
  readonly episodes: EpisodeService;
  readonly config: ApiConfig;
  /**
   * Hosted mode (`functions/src/tenancy/`, `HostedTenancy`): who is calling (401 when auth is on and
   * the key is bad), the request's tenant scope, and `GET /usage`. Without it every request is the
   * `local` tenant, and a server with `config.authRequired` refuses every non-public request.
   */
  readonly tenancy?: AppTenancy;
  /** The HumanAgent page and Swagger UI assets, keyed by URL path. @default {} */
  readonly webAssets?: Readonly<Record<string, WebAsset>>;
  /**
   * The server's WebSocket upgrade (e.g. `@hono/node-server`'s), which enables OpenEnv's `/ws`.
   * @default none: `/ws` is not served (AWS: API Gateway HTTP APIs carry no WebSockets)
   */
  readonly upgradeWebSocket?: UpgradeWebSocket;
  /**
   * The address the local stack listens on: turns on the `Host` check for it, localhost and
   * `config.allowedHosts` (DNS rebinding). Without it the check runs only when
   * `config.allowedHosts` is set (AWS: API Gateway's host or a custom domain).
   * @default none
   */
  readonly localBindAddress?: string;
  /** Version reported by `/metadata`. @default "0.1.0" */
  readonly version?: string;
  /**
   * Structured logs: one line per request, and unhandled errors with their stack (logs only,
   * never responses). Powertools' `Logger` fits (`functions/src/lambda.ts`).
   * @default unhandled errors as JSON lines on stderr, no request lines
   */
  readonly logger?: AppLogger;
}

/** The part of a structured logger the app uses (Powertools' `Logger` has it). */
export interface AppLogger {
  info(message: string, attributes: Record<string, unknown>): void;
  error(message: string, attributes: Record<string, unknown>): void;
  debug?(message: string, attributes: Record<string, unknown>): void;
}

const stderrLogger: AppLogger = {
  info: () => {},
  error: (message, attributes) => console.error(JSON.stringify({ level: "ERROR", message, ...attributes })),
};

/** What the app needs of the tenancy layer. */
export interface AppTenancy {
  authenticate(headers: Headers): Promise<TenantScope>;
  runAs<T>(tenant: TenantScope, fn: () => Promise<T>): Promise<T>;
  usage(tenantId: string, from: string | undefined, to: string | undefined): Promise<unknown>;
}
export interface TenantScope {
  readonly tenantId: string;
}

type Env = { Variables: { tenantId: string; tenant: TenantScope } };

const PUBLIC_GET_PATHS = new Set(["/health", "/docs", "/openapi.json", "/schema", "/metadata"]);

function zodIssues(error: z.ZodError, root: string): ValidationIssue[] {
  return error.issues.map((i) => ({
    loc: [root, ...i.path.map((p) => (typeof p === "number" ? p : String(p)))],
    msg: i.message,
    type: i.code,
  }));
}

function parseWith<T extends z.ZodType>(schema: T, value: unknown): z.infer<T> {
  const out = schema.safeParse(value);
  if (!out.success) throw new ValidationError(zodIssues(out.error, "body"));
  return out.data;
}

async function readJsonBody(c: Context, allowEmpty: boolean): Promise<unknown> {
  const text = await c.req.text();
  if (text.trim() === "") {
    if (allowEmpty) return {};
    throw new ValidationError([{ loc: ["body"], msg: "Field required", type: "missing" }]);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new InvalidJsonError();
  }
}

function checkEpisodeId(id: string): string {
  // Ids that cannot exist (too long, odd characters) are simply not found.
  if (!EPISODE_ID_PATTERN.test(id))
    throw new EpisodeNotFoundError(id.length > 64 ? `${id.slice(0, 64)}…` : id);
  return id;
}

/** The episode of a request: body `episode_id`, query `episode_id`, `X-Episode-Id`, then the cookie. */
function resolveEpisodeId(c: Context, bodyId: string | null | undefined): string {
  const id =
    bodyId ?? c.req.query("episode_id") ?? c.req.header("x-episode-id") ?? getCookie(c, EPISODE_COOKIE);
  if (id === undefined || id === "") throw new EpisodeRequiredError();
  return checkEpisodeId(id);
}

function errorBody(err: ApiError): Record<string, unknown> {
  const body: Record<string, unknown> = {
    error: { code: err.code, message: err.message, ...(err.details ? { details: err.details } : {}) },
  };
  if (err instanceof ValidationError) body.detail = err.issues;
  return body;
}

function docsPage(): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>coding-env API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui" });</script>
</body></html>`;
}

/**
 * Builds the API.
 *
 * @example
 * const app = createApp({ episodes, config });
 * serve({ fetch: app.fetch, port: 8000 });
 */
export function createApp(deps: AppDeps): OpenAPIHono<Env> {
  const { episodes, config } = deps;
  const logger = deps.logger ?? stderrLogger;
  const app = new OpenAPIHono<Env>();

  app.onError((err, c) => {
    let apiErr: ApiError;
    if (err instanceof ApiError) apiErr = err;
    else if ((err as { status?: number }).status === 413)
      apiErr = new PayloadTooLargeError("Request body too large.");
    else if (err instanceof HTTPException && err.status < 500) {
      // Hono's own refusals (e.g. a request it cannot parse), in our shape.
      const code =
        err.status === 404 ? "not_found" : err.status === 405 ? "method_not_allowed" : "bad_request";
      apiErr = new ApiError(err.status, code, "The request could not be processed.");
    } else {
      logger.error("unhandled error", { error: String(err), stack: err.stack, path: c.req.path });
      apiErr = new InternalError();
    }
    for (const [k, v] of Object.entries(apiErr.headers ?? {})) c.header(k, v);
    return c.json(errorBody(apiErr), apiErr.status as 400);
  });
  app.notFound(() => {
    throw new NotFoundError("No such route.");
  });

  if (deps.logger) {
    app.use("*", async (c, next) => {
      const startMs = performance.now();
      await next();
      const line = {
        method: c.req.method,
        path: c.req.path,
        status: c.res.status,
        duration_ms: Math.round((performance.now() - startMs) * 100) / 100,
        tenant_id: c.get("tenantId"),
      };
      // A successful request is already one line of API Gateway's access log; a second line per
      // step would cost ~$0.15 per million steps (docs/DEPLOY.md), so it is DEBUG (LOG_LEVEL).
      if (c.res.status >= 400) logger.info("request", line);
      else logger.debug?.("request", line);
    });
  }

  // A browser can reach this API (issue 10): Host, Origin and JSON bodies are checked before
  // anything reads the body; then every request gets the deadline the executor call respects.
  const hosts = hostAllowList(config.allowedHosts, deps.localBindAddress);
  if (hosts) app.use("*", hostCheck(hosts));
  app.use("*", originCheck(config.allowedOrigins));
  app.use("*", jsonBodiesOnly());
  app.use("*", requestDeadline(config.requestDeadlineS));

  const tooLarge = () =>
    new PayloadTooLargeError(`Request body over ${config.maxBodyBytes} bytes.`, {
      limit_bytes: config.maxBodyBytes,
    });
  app.use("*", async (c, next) => {
    const declared = Number(c.req.header("content-length") ?? Number.NaN);
    if (declared > config.maxBodyBytes) {
      // Read (and drop) a moderately oversized body first, so the client, still sending it,
      // gets our 413 instead of a reset connection.
      if (declared <= 8 * config.maxBodyBytes && c.req.raw.body) {
        const reader = c.req.raw.body.getReader();
        while (!(await reader.read()).done) {
          /* discard */
        }
      }
      throw tooLarge();
    }
    await next();
  });
  // Bodies without a length (chunked) are counted as they stream.
  app.use(
    "*",
    bodyLimit({
      maxSize: config.maxBodyBytes,
      onError: () => {
        throw tooLarge();
      },
    }),
  );

  // resolveTenant: the one place that decides whose request this is.
  app.use("*", async (c, next) => {
    const path = c.req.path;
    const isPublic =
      c.req.method === "GET" &&
      (PUBLIC_GET_PATHS.has(path) ||
        path === "/web" ||
        path.startsWith("/web/") ||
        path.startsWith("/docs/"));
    if (isPublic) {
      c.set("tenantId", "local");
      await next();
      return;
    }
    if (!deps.tenancy) {
      if (config.authRequired) throw new UnauthorizedError();
      c.set("tenantId", "local");
      await next();
      return;
    }
    const tenant = await deps.tenancy.authenticate(c.req.raw.headers);
    c.set("tenantId", tenant.tenantId);
    c.set("tenant", tenant);
    await deps.tenancy.runAs(tenant, async () => {
      await next();
    });
  });

  // ---- OpenEnv endpoints ----
  app.get("/health", (c) => c.json({ status: "healthy", auth_required: config.authRequired }));

  app.get("/schema", (c) =>
    c.json({
      action: z.toJSONSchema(CodeActionSchema),
      observation: z.toJSONSchema(CodeObservationSchema),
      state: z.toJSONSchema(CodeStateSchema),
    }),
  );

  app.get("/metadata", (c) =>
    c.json({
      name: "coding_env",
      description:
        "A Python code execution environment that runs arbitrary Python code and returns results (OpenEnv coding_env compatible; many episodes, durable state).",
      version: deps.version ?? "0.1.0",
      author: "coding-env",
      documentation_url: "/docs",
    }),
  );

  app.post("/reset", async (c) => {
    const body = parseWith(ResetRequestSchema, await readJsonBody(c, true));
    const opts = defined(body);
    const res = await episodes.reset(c.get("tenantId"), {
      ...opts,
      ...(opts.additional_imports ? { additional_imports: opts.additional_imports } : {}),
    });
    setCookie(c, EPISODE_COOKIE, res.episode_id, { path: "/", httpOnly: true, sameSite: "Lax" });
    return c.json(res);
  });

  app.post("/step", async (c) => {
    const raw = await readJsonBody(c, false);
    const body = parseWith(StepRequestSchema, raw);
    const episodeId = resolveEpisodeId(c, body.episode_id);
    const { body: res, replayed } = await episodes.step(c.get("tenantId"), episodeId, {
      code: wellFormed(body.action.code),
      ...(body.timeout_s != null ? { timeout_s: body.timeout_s } : {}),
      ...(body.request_id != null ? { request_id: wellFormed(body.request_id) } : {}),
    });
    if (replayed) c.header("Idempotent-Replayed", "true");
    return c.json(res);
  });

  app.get("/state", async (c) => {
    const id = resolveEpisodeId(c, undefined);
    return c.json(await episodes.state(c.get("tenantId"), id));
  });

  if (deps.upgradeWebSocket) {
    const tenancy = deps.tenancy;
    app.get(
      "/ws",
      deps.upgradeWebSocket((c) => {
        const tenant = c.get("tenant") as TenantScope | undefined;
        return nodeWsSession({
          service: episodes,
          tenantId: c.get("tenantId") as string,
          maxMessageBytes: config.maxBodyBytes,
          ...(tenancy && tenant ? { runAs: <T>(fn: () => Promise<T>) => tenancy.runAs(tenant, fn) } : {}),
        });
      }),
    );
  }

  // ---- Episode resources ----
  app.get("/episodes/:id", async (c) =>
    c.json(await episodes.state(c.get("tenantId"), checkEpisodeId(c.req.param("id")))),
  );

  app.get("/episodes/:id/history", async (c) => {
    const id = checkEpisodeId(c.req.param("id"));
    const wantsJsonl =
      c.req.query("format") === "jsonl" || (c.req.header("accept") ?? "").includes("application/x-ndjson");
    if (wantsJsonl) {
      // The whole trajectory, one page of records in memory at a time.
      const { episode_id, steps } = await episodes.historyStream(c.get("tenantId"), id);
      const iterator = steps[Symbol.asyncIterator]();
      const encoder = new TextEncoder();
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          const next = await iterator.next();
          if (next.done) controller.close();
          else controller.enqueue(encoder.encode(`${JSON.stringify({ episode_id, ...next.value })}\n`));
        },
        async cancel() {
          await iterator.return?.();
        },
      });
      return c.body(body, 200, { "Content-Type": "application/x-ndjson" });
    }
    const page = HistoryQuerySchema.safeParse({ limit: c.req.query("limit"), cursor: c.req.query("cursor") });
    if (!page.success) throw new ValidationError(zodIssues(page.error, "query"));
    return c.json(await episodes.history(c.get("tenantId"), id, defined(page.data)));
  });

  app.post("/episodes/:id/fork", async (c) =>
    c.json(await episodes.fork(c.get("tenantId"), checkEpisodeId(c.req.param("id"))), 201),
  );

  app.delete("/episodes/:id", async (c) => {
    await episodes.delete(c.get("tenantId"), checkEpisodeId(c.req.param("id")));
    return c.body(null, 204);
  });

  app.get("/usage", async (c) => {
    if (!deps.tenancy) throw new NotFoundError("Usage is not metered on this server.");
    return c.json(await deps.tenancy.usage(c.get("tenantId"), c.req.query("from"), c.req.query("to")));
  });

  // ---- Documentation and the page ----
  registerOpenApi(app);
  app.get("/openapi.json", (c) =>
    c.json(
      app.getOpenAPI31Document({
        openapi: "3.1.0",
        info: {
          title: "coding-env",
          version: deps.version ?? "0.1.0",
          description: "OpenEnv coding_env compatible Python execution API (see docs/API.md).",
        },
      }),
    ),
  );
  app.get("/docs", (c) => c.html(docsPage()));

  const assets = deps.webAssets ?? {};
  for (const [path, asset] of Object.entries(assets)) {
    const serveAsset = (c: Context) =>
      c.body(asset.body, 200, { "Content-Type": asset.contentType, "Cache-Control": "no-cache" });
    app.get(path, serveAsset);
    if (path === "/web") app.get("/web/", serveAsset);
  }

  // Known paths with another method: 405 in the same shape.
  const known = [
    "/reset",
    "/step",
    "/state",
    "/usage",
    "/health",
    "/schema",
    "/metadata",
    "/openapi.json",
    "/docs",
  ];
  app.all("/episodes/:id/history", methodNotAllowed);
  app.all("/episodes/:id/fork", methodNotAllowed);
  app.all("/episodes/:id", methodNotAllowed);
  for (const p of known) app.all(p, methodNotAllowed);
  return app;
}

function methodNotAllowed(): never {
  throw new MethodNotAllowedError();
}

function registerOpenApi(app: OpenAPIHono<Env>): void {
  const r = app.openAPIRegistry;
  const json = <T extends z.ZodType>(schema: T, description: string) => ({
    description,
    content: { "application/json": { schema } },
  });
  const errors = {
    400: json(ErrorResponseSchema, "Malformed JSON or no episode"),
    404: json(ErrorResponseSchema, "Unknown episode"),
    422: json(ErrorResponseSchema, "Body of the wrong shape (with FastAPI's `detail`)"),
  };
  const episodeParam = z.object({ id: EpisodeIdSchema });
  r.registerPath({
    method: "post",
    path: "/reset",
    summary: "Start a new episode (sets the coding_env_episode cookie)",
    request: { body: { content: { "application/json": { schema: ResetRequestSchema } }, required: false } },
    responses: { 200: json(StepResponseSchema, "The new episode"), 400: errors[400], 422: errors[422] },
  });
  r.registerPath({
    method: "post",
    path: "/step",
    summary: "Run Python code in the episode",
    request: { body: { content: { "application/json": { schema: StepRequestSchema } }, required: true } },
    responses: {
      200: json(StepResponseSchema, "The step's observation and reward"),
      ...errors,
      409: json(ErrorResponseSchema, "Concurrent step on the same episode (Retry-After)"),
      413: json(ErrorResponseSchema, "Code, body or Python state too large"),
      502: json(ErrorResponseSchema, "Executor failure"),
      504: json(ErrorResponseSchema, "Executor timeout"),
    },
  });
  r.registerPath({
    method: "get",
    path: "/state",
    summary: "The current episode's state",
    responses: { 200: json(CodeStateSchema, "Episode state"), 400: errors[400], 404: errors[404] },
  });
  r.registerPath({
    method: "get",
    path: "/health",
    summary: "Health",
    responses: {
      200: json(z.object({ status: z.literal("healthy"), auth_required: z.boolean() }), "Healthy"),
    },
  });
  r.registerPath({
    method: "get",
    path: "/schema",
    summary: "JSON Schemas of CodeAction, CodeObservation, CodeState",
    responses: { 200: { description: "Schemas" } },
  });
  r.registerPath({
    method: "get",
    path: "/metadata",
    summary: "Environment metadata",
    responses: { 200: { description: "Metadata" } },
  });
  r.registerPath({
    method: "get",
    path: "/usage",
    summary: "The caller's metered usage per UTC day (hosted mode)",
    request: { query: z.object({ from: z.string().optional(), to: z.string().optional() }) },
    responses: { 200: { description: "Usage per day and totals" }, 400: errors[400] },
  });
  r.registerPath({
    method: "get",
    path: "/episodes/{id}",
    summary: "An episode's state",
    request: { params: episodeParam },
    responses: { 200: json(CodeStateSchema, "Episode state"), 404: errors[404] },
  });
  r.registerPath({
    method: "get",
    path: "/episodes/{id}/history",
    summary: "The trajectory, paged (limit, cursor -> next_cursor); all of it as JSONL with ?format=jsonl",
    request: {
      params: episodeParam,
      query: HistoryQuerySchema.extend({ format: z.enum(["json", "jsonl"]).optional() }),
    },
    responses: {
      200: { description: "Steps, oldest first, and next_cursor" },
      404: errors[404],
      422: errors[422],
    },
  });
  r.registerPath({
    method: "post",
    path: "/episodes/{id}/fork",
    summary: "A new episode with a copy of the Python state and history",
    request: { params: episodeParam },
    responses: { 201: json(StepResponseSchema, "The new episode"), 404: errors[404] },
  });
  r.registerPath({
    method: "delete",
    path: "/episodes/{id}",
    summary: "Delete an episode",
    request: { params: episodeParam },
    responses: { 204: { description: "Deleted" }, 404: errors[404] },
  });
}
