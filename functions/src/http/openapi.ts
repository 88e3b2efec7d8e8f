// Pieces every route definition shares: the route app (our validation hook), the security schemes,
// and the documented error responses (one shape, every status a route can answer).
import { OpenAPIHono, type z } from "@hono/zod-openapi";
import { validationHook } from "./request.js";
import { ErrorResponseSchema } from "./schemas.js";
import type { AppEnv } from "./types.js";

/** A sub-app whose `app.openapi` routes validate with our 422. */
export function newRouteApp(): OpenAPIHono<AppEnv> {
  return new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
}

export const BEARER_SCHEME = "bearerAuth";
export const API_KEY_SCHEME = "apiKeyHeader";

/** Security schemes of /openapi.json (Swagger UI's Authorize button). */
export const SECURITY_SCHEMES = {
  [BEARER_SCHEME]: {
    type: "http",
    scheme: "bearer",
    description: "An API key as `Authorization: Bearer <key>` (needed when /health says auth_required).",
  },
  [API_KEY_SCHEME]: {
    type: "apiKey",
    in: "header",
    name: "X-API-Key",
    description: "An API key as the `X-API-Key` header.",
  },
} as const;

/** Either scheme authorizes a route. */
export const KEY_REQUIRED: Record<string, string[]>[] = [{ [BEARER_SCHEME]: [] }, { [API_KEY_SCHEME]: [] }];
/** Public routes. */
export const NO_KEY: Record<string, string[]>[] = [];

export function jsonContent<T extends z.ZodType>(schema: T, description: string) {
  return { description, content: { "application/json": { schema } } };
}

const ERROR_DESCRIPTIONS = {
  400: "`invalid_json` (malformed JSON), `episode_required` (no episode named), `bad_request`.",
  401: "`unauthorized`: no, wrong or revoked API key (when the server requires keys).",
  403: "`origin_not_allowed`: a browser request from an origin not on the allow-list.",
  404: "`episode_not_found` (unknown, expired, deleted or another tenant's episode) or `not_found`.",
  405: "`method_not_allowed`.",
  409: "`step_in_progress` (a step of the episode is running; this one did not run; `details.same_request` when it is this request_id's first attempt: send the same request again after Retry-After, within `details.retry_within_s`, for its result) or `conflict` (a concurrent step committed first); Retry-After.",
  413: "`payload_too_large` (body over 2 MiB, code over 1 MiB) or `state_too_large` (the Python state over the limit; not committed).",
  415: "`unsupported_media_type`: a body that is not application/json.",
  421: "`host_not_allowed`: the Host header does not name this server.",
  422: "`validation_error`: a body, query or path of the wrong shape, with FastAPI's `detail` list.",
  429: "`quota_exceeded`, `rate_limited`, `too_many_concurrent_steps`, `executor_throttled`; Retry-After when it resets.",
  500: "`internal_error` (no internals in the message).",
  502: "`executor_error`: the executor failed; the episode is unchanged.",
  504: "`executor_timeout`: no answer from the executor in time; the episode is unchanged.",
} as const;
export type ErrorStatus = keyof typeof ERROR_DESCRIPTIONS;

/** The statuses any route can answer (guards, auth, limits, internal). */
const COMMON: readonly ErrorStatus[] = [401, 403, 421, 429, 500];
/** And those of a route with a JSON body. */
const BODY: readonly ErrorStatus[] = [400, 413, 415, 422];

function errorResponse(status: ErrorStatus, description?: string) {
  return jsonContent(ErrorResponseSchema, description ?? ERROR_DESCRIPTIONS[status]);
}

/**
 * The documented error responses of a route: the common ones, a body route's (`body: true`) and
 * `extra`. Public routes pass `common: false`. `describe` replaces the text of a status whose
 * codes or causes are the route's own (a file route's 400 `invalid_path`).
 */
export function errorResponses(opts: {
  body?: boolean;
  common?: boolean;
  extra?: readonly ErrorStatus[];
  describe?: Partial<Record<ErrorStatus, string>>;
}) {
  const statuses = new Set<ErrorStatus>([
    ...(opts.common === false ? [403, 421, 500] : COMMON),
    ...(opts.body ? BODY : []),
    ...(opts.extra ?? []),
  ] as ErrorStatus[]);
  for (const s of Object.keys(opts.describe ?? {})) statuses.add(Number(s) as ErrorStatus);
  return Object.fromEntries(
    [...statuses].sort().map((s) => [s, errorResponse(s, opts.describe?.[s])]),
  ) as Record<ErrorStatus, ReturnType<typeof errorResponse>>;
}
