// Reading a request: the JSON body (malformed JSON is a 400, a wrong shape a 422 with FastAPI's
// `detail`), the validation hook every OpenAPI route uses, and which episode a request is about.
import type { Context, MiddlewareHandler } from "hono";
import { getCookie } from "hono/cookie";
import type { z } from "zod";
import {
  EpisodeNotFoundError,
  EpisodeRequiredError,
  InvalidJsonError,
  ValidationError,
  type ValidationIssue,
} from "../core/errors.js";
import { EPISODE_ID_PATTERN } from "./schemas.js";

export const EPISODE_COOKIE = "coding_env_episode";

const LOC_ROOT: Record<string, string> = { json: "body", query: "query", param: "path", header: "header" };

export function zodIssues(error: z.ZodError, root: string): ValidationIssue[] {
  return error.issues.map((i) => ({
    loc: [root, ...i.path.map((p) => (typeof p === "number" ? p : String(p)))],
    msg: i.message,
    type: i.code,
  }));
}

/** The `defaultHook` of every route app: a failed validation is our 422. */
export function validationHook(result: { success: boolean; error?: unknown; target: string }): void {
  if (!result.success) {
    throw new ValidationError(
      zodIssues(result.error as z.ZodError, LOC_ROOT[result.target] ?? result.target),
    );
  }
}

/**
 * Route middleware before the body validator: a malformed body is 400 `invalid_json`; an empty one
 * is `{}` when `allowEmpty` (reset) and a 422 "Field required" otherwise.
 */
export function jsonBody(allowEmpty: boolean): MiddlewareHandler {
  return async (c, next) => {
    const text = await c.req.text();
    if (text.trim() === "") {
      if (!allowEmpty) throw new ValidationError([{ loc: ["body"], msg: "Field required", type: "missing" }]);
      // Without a Content-Type the validator takes an optional body as `{}` by itself.
      (c.req.bodyCache as { text?: Promise<string> }).text = Promise.resolve("{}");
    } else {
      try {
        JSON.parse(text);
      } catch {
        throw new InvalidJsonError();
      }
    }
    await next();
  };
}

export function checkEpisodeId(id: string): string {
  // Ids that cannot exist (too long, odd characters) are simply not found.
  if (!EPISODE_ID_PATTERN.test(id))
    throw new EpisodeNotFoundError(id.length > 64 ? `${id.slice(0, 64)}…` : id);
  return id;
}

/** The episode a request names: body `episode_id`, query `episode_id`, `X-Episode-Id`, then the cookie. */
export function requestedEpisodeId(c: Context, bodyId: string | null | undefined): string | undefined {
  const id =
    bodyId ?? c.req.query("episode_id") ?? c.req.header("x-episode-id") ?? getCookie(c, EPISODE_COOKIE);
  return id === undefined || id === "" ? undefined : checkEpisodeId(id);
}

/** {@link requestedEpisodeId}, 400 `episode_required` when none is named. */
export function resolveEpisodeId(c: Context, bodyId: string | null | undefined): string {
  const id = requestedEpisodeId(c, bodyId);
  if (id === undefined) throw new EpisodeRequiredError();
  return id;
}
