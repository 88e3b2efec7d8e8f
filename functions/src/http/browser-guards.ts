// Guards for an API that a browser can reach (issue 10 point 10). Any web page the developer visits
// can send requests to the local stack: "simple" cross-site POSTs (`text/plain`, no preflight), and
// DNS rebinding (a name of the attacker's that resolves to 127.0.0.1 makes its page same-origin with
// us, so the browser lets it read our answers). So:
//   - `Host` must name this server (the local stack's bound address, localhost, or a configured
//     name): 421 `host_not_allowed` otherwise. Off in AWS unless configured (API Gateway's host and
//     custom domains are not known here).
//   - A request whose `Origin` is another site is refused (403 `origin_not_allowed`) unless that
//     origin is on the allow-list, which also gets CORS answers (preflights included).
//   - Request bodies must be `application/json` (415 `unsupported_media_type`): a browser cannot
//     send that cross-site without a preflight, which the origin check answers.
import type { MiddlewareHandler } from "hono";
import { HostNotAllowedError, OriginNotAllowedError, UnsupportedMediaTypeError } from "../core/errors.js";

/** Hosts the Host check accepts. */
export interface HostAllowList {
  /** Lower-case host names or IP literals (IPv6 in brackets), without port. */
  readonly names: ReadonlySet<string>;
  /** Accept any IP literal (the server listens on every address; an IP cannot be rebound). */
  readonly anyIpLiteral: boolean;
}

const LOOPBACK_NAMES = ["localhost", "127.0.0.1", "[::1]"];
const WILDCARD_ADDRESSES = new Set(["0.0.0.0", "::", "[::]", ""]);

function bracketed(host: string): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host.toLowerCase()}]` : host.toLowerCase();
}

/**
 * The hosts of a local stack bound to `bindAddress`: it, localhost, and `extra` (the
 * `CODING_ENV_ALLOWED_HOSTS` setting); a wildcard bind address accepts any IP literal.
 */
export function localHostAllowList(bindAddress: string, extra: readonly string[] = []): HostAllowList {
  const wildcard = WILDCARD_ADDRESSES.has(bindAddress);
  const names = new Set([...LOOPBACK_NAMES, ...extra.map(bracketed)]);
  if (!wildcard) names.add(bracketed(bindAddress));
  return { names, anyIpLiteral: wildcard };
}

/**
 * The Host allow-list of an app: a local stack's own hosts plus `configured`; elsewhere exactly
 * `configured`, or `null` (no Host check) when that is not set.
 */
export function hostAllowList(
  configured: readonly string[] | null,
  localBindAddress: string | undefined,
): HostAllowList | null {
  if (localBindAddress !== undefined) return localHostAllowList(localBindAddress, configured ?? []);
  if (configured === null) return null;
  return { names: new Set(configured.map(bracketed)), anyIpLiteral: false };
}

/** The host part of a `Host` header ("name:port", "[v6]:port"), lower case; `null` if malformed. */
function hostName(header: string): string | null {
  try {
    const url = new URL(`http://${header}`);
    if (url.username || url.password || url.pathname !== "/" || url.search || url.hash) return null;
    return url.hostname.toLowerCase();
  } catch {
    return null;
  }
}

function isIpLiteral(name: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(name) || (name.startsWith("[") && name.endsWith("]"));
}

/** 421 unless `Host` names an allowed host. */
export function hostCheck(allowed: HostAllowList): MiddlewareHandler {
  return async (c, next) => {
    const header = c.req.header("host");
    const name = header === undefined ? null : hostName(header);
    if (name === null || !(allowed.names.has(name) || (allowed.anyIpLiteral && isIpLiteral(name)))) {
      throw new HostNotAllowedError();
    }
    await next();
  };
}

const CORS_METHODS = "GET, POST, DELETE, OPTIONS";
const CORS_HEADERS = new Set(["content-type", "authorization", "x-api-key", "x-episode-id"]);
const CORS_EXPOSED = "Retry-After, Idempotent-Replayed, X-Next-Cursor, Link";

/**
 * Same-origin requests and requests without `Origin` (non-browser clients) pass; a cross-origin
 * request passes only from an allowed origin, and gets CORS headers. Preflights (`OPTIONS` with
 * `Access-Control-Request-Method`) from allowed origins are answered 204 here.
 */
export function originCheck(allowedOrigins: readonly string[]): MiddlewareHandler {
  const allowed = new Set(allowedOrigins);
  return async (c, next) => {
    const origin = c.req.header("origin");
    if (origin === undefined) {
      await next();
      return;
    }
    const host = (c.req.header("host") ?? "").toLowerCase();
    let sameOrigin = false;
    try {
      sameOrigin = origin !== "null" && new URL(origin).host.toLowerCase() === host && host !== "";
    } catch {
      sameOrigin = false;
    }
    if (sameOrigin) {
      await next();
      return;
    }
    if (!allowed.has(origin)) throw new OriginNotAllowedError();
    const preflightMethod = c.req.header("access-control-request-method");
    if (c.req.method === "OPTIONS" && preflightMethod !== undefined) {
      const requested = (c.req.header("access-control-request-headers") ?? "")
        .split(",")
        .map((h) => h.trim().toLowerCase())
        .filter((h) => h !== "");
      if (requested.some((h) => !CORS_HEADERS.has(h))) throw new OriginNotAllowedError();
      return c.body(null, 204, {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": CORS_METHODS,
        "Access-Control-Allow-Headers": [...CORS_HEADERS].join(", "),
        "Access-Control-Max-Age": "600",
        Vary: "Origin",
      });
    }
    await next();
    c.res.headers.set("Access-Control-Allow-Origin", origin);
    c.res.headers.set("Access-Control-Expose-Headers", CORS_EXPOSED);
    c.res.headers.append("Vary", "Origin");
  };
}

const BODY_METHODS = new Set(["POST", "PUT", "PATCH", "DELETE"]);

/**
 * 415 for a body that is not `application/json`: a `Content-Type` of another type (even with an
 * empty body), or a body without one. Bodiless requests (`POST /episodes/{id}/fork`) need none.
 */
export function jsonBodiesOnly(): MiddlewareHandler {
  return async (c, next) => {
    if (BODY_METHODS.has(c.req.method)) {
      const contentType = c.req.header("content-type");
      if (contentType !== undefined) {
        const mediaType = (contentType.split(";")[0] ?? "").trim().toLowerCase();
        if (mediaType !== "application/json") throw new UnsupportedMediaTypeError();
      } else {
        const length = c.req.header("content-length");
        const hasBody =
          (length !== undefined && length.trim() !== "0") || c.req.header("transfer-encoding") !== undefined;
        if (hasBody) throw new UnsupportedMediaTypeError();
      }
    }
    await next();
  };
}
