// The app-wide middleware, in the order createApp installs it: the request log line, the body size
// limits, and resolveTenant (whose request this is). The browser guards are in browser-guards.ts
// and the deadline in deadline.ts.
import type { Context, MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { getCookie } from "hono/cookie";
import { PayloadTooLargeError, UnauthorizedError } from "../core/errors.js";
import { EPISODE_COOKIE } from "./request.js";
import type { AppEnv, AppLogger, AppTenancy } from "./types.js";

/**
 * The episode a finished request was about, for its log line: the path's, the query's, the
 * header's, a body the route already read, the cookie a reset set, then the request's cookie.
 */
async function loggedEpisodeId(c: Context): Promise<string | undefined> {
  const fromPath = /^\/episodes\/([^/]+)/.exec(c.req.path)?.[1];
  if (fromPath) return fromPath;
  const direct = c.req.query("episode_id") ?? c.req.header("x-episode-id");
  if (direct) return direct;
  // Only a body the route has read already (Hono caches it): never read one just to log it.
  const cached = (c.req as unknown as { bodyCache: { text?: Promise<string> } }).bodyCache.text;
  if (cached) {
    try {
      const id = (JSON.parse(await cached) as { episode_id?: unknown }).episode_id;
      if (typeof id === "string") return id;
    } catch {
      /* not JSON: no episode in it */
    }
  }
  const setCookie = c.res.headers.get("set-cookie") ?? "";
  const set = new RegExp(`(?:^|[;,]\\s*)${EPISODE_COOKIE}=([^;,]+)`).exec(setCookie)?.[1];
  return set ?? getCookie(c, EPISODE_COOKIE);
}

/** One line per request: failures at INFO, successes at DEBUG. */
export function requestLog(logger: AppLogger): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const startMs = performance.now();
    await next();
    const line = {
      method: c.req.method,
      path: c.req.path,
      status: c.res.status,
      duration_ms: Math.round((performance.now() - startMs) * 100) / 100,
      tenant_id: c.get("tenantId"),
      episode_id: await loggedEpisodeId(c),
    };
    // A successful request is already one line of API Gateway's access log; a second line per
    // step would cost ~$0.15 per million steps (docs/DEPLOY.md), so it is DEBUG (LOG_LEVEL).
    if (c.res.status >= 400) logger.info("request", line);
    else logger.debug?.("request", line);
  };
}

/**
 * 413 for a body over `maxBodyBytes`, declared (Content-Length) or counted as it streams. One
 * middleware (each layer is an awaited call per request): a body with a length is checked by its
 * header (the HTTP parser never reads past it); only one without (chunked) goes through Hono's
 * bodyLimit. Hono's bodyLimit would skip the former too, but only after touching `c.req.raw.body`,
 * which makes @hono/node-server build a whole web Request and stream for every request instead of
 * reading the body straight from the socket.
 */
export function bodySizeLimits(maxBodyBytes: number): MiddlewareHandler<AppEnv>[] {
  const tooLarge = () =>
    new PayloadTooLargeError(`Request body over ${maxBodyBytes} bytes.`, { limit_bytes: maxBodyBytes });
  const counted = bodyLimit({
    maxSize: maxBodyBytes,
    onError: () => {
      throw tooLarge();
    },
  });
  const limit: MiddlewareHandler<AppEnv> = async (c, next) => {
    const length = c.req.header("content-length");
    const declared = Number(length ?? Number.NaN);
    if (declared > maxBodyBytes) {
      // Read (and drop) a moderately oversized body first, so the client, still sending it,
      // gets our 413 instead of a reset connection.
      if (declared <= 8 * maxBodyBytes && c.req.raw.body) {
        const reader = c.req.raw.body.getReader();
        while (!(await reader.read()).done) {
          /* discard */
        }
      }
      throw tooLarge();
    }
    if (length === undefined || c.req.header("transfer-encoding") !== undefined) {
      await counted(c, next);
      return;
    }
    await next();
  };
  return [limit];
}

/** GET paths anyone may read, also with auth on. */
export function isPublicRequest(method: string, path: string): boolean {
  if (method !== "GET") return false;
  return (
    PUBLIC_GET_PATHS.has(path) || path === "/web" || path.startsWith("/web/") || path.startsWith("/docs/")
  );
}
const PUBLIC_GET_PATHS = new Set(["/", "/health", "/docs", "/openapi.json", "/schema", "/metadata"]);

/** resolveTenant: the one place that decides whose request this is (401 when auth is on and no key). */
export function resolveTenant(
  tenancy: AppTenancy | undefined,
  authRequired: boolean,
): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (isPublicRequest(c.req.method, c.req.path)) {
      c.set("tenantId", "local");
      await next();
      return;
    }
    if (!tenancy) {
      if (authRequired) throw new UnauthorizedError();
      c.set("tenantId", "local");
      await next();
      return;
    }
    const tenant = await tenancy.authenticate(c.req.raw.headers);
    c.set("tenantId", tenant.tenantId);
    c.set("tenant", tenant);
    await tenancy.runAs(tenant, async () => {
      await next();
    });
  };
}
