// Episode resources: an episode's state, its history (paged, or all of it as JSON Lines), fork and
// delete.
import { createRoute, z } from "@hono/zod-openapi";
import { HISTORY_MAX_LIMIT } from "../core/episodes.js";
import { envelopeBytes, PAGED_RESPONSE_BYTES } from "../core/response-size.js";
import { methodNotAllowed } from "../http/errors.js";
import { errorResponses, jsonContent, KEY_REQUIRED, newRouteApp } from "../http/openapi.js";
import { checkEpisodeId } from "../http/request.js";
import {
  CodeStateSchema,
  defined,
  EpisodeParamsSchema,
  HistoryLineSchema,
  HistoryPageSchema,
  StepResponseSchema,
} from "../http/schemas.js";
import type { AppDeps } from "../http/types.js";
import { toWireJson } from "../http/wire-json.js";
import { wireJson } from "./openenv.js";

const HistoryQuerySchema = z.object({
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(HISTORY_MAX_LIMIT)
    .optional()
    .describe(`Steps per page, 1..${HISTORY_MAX_LIMIT}; default 100 (fewer when a page passes a few MB).`),
  cursor: z
    .string()
    .min(1)
    .max(512)
    .optional()
    .describe("A previous page's `next_cursor` (JSON), or a previous part's `X-Next-Cursor` (JSON Lines)."),
  format: z
    .enum(["json", "jsonl"])
    .optional()
    .describe(
      "`jsonl`: the history as JSON Lines (also with Accept: application/x-ndjson), in parts of at most 5 MiB: a part with more after it has an `X-Next-Cursor` header (and `Link`, rel=next) to pass as `cursor`.",
    ),
});

/**
 * Largest JSON Lines part of an export, as Lambda's response counts it (core/response-size.ts: the
 * lines escaped once more, each newline 2 bytes): a part is served as text, and always fits.
 */
export const EXPORT_PART_BYTES = PAGED_RESPONSE_BYTES;

const stateRoute = createRoute({
  method: "get",
  path: "/episodes/{id}",
  summary: "An episode's state",
  security: KEY_REQUIRED,
  request: { params: EpisodeParamsSchema },
  responses: { 200: jsonContent(CodeStateSchema, "Episode state"), ...errorResponses({ extra: [404] }) },
});

const historyRoute = createRoute({
  method: "get",
  path: "/episodes/{id}/history",
  summary: "An episode's trajectory, oldest first",
  description:
    "Paged (`limit`, `cursor` → `next_cursor`); as JSON Lines with `format=jsonl`, in parts of at most 5 MiB (`X-Next-Cursor` → `cursor`).",
  security: KEY_REQUIRED,
  request: { params: EpisodeParamsSchema, query: HistoryQuerySchema },
  responses: {
    200: {
      description:
        "A page of steps (JSON), or a part of the history, one JSON object per line with `episode_id` (JSON Lines)",
      headers: z.object({
        "X-Next-Cursor": z
          .string()
          .optional()
          .describe("JSON Lines only: more steps follow; pass this as `cursor` for the next part."),
        Link: z.string().optional().describe('JSON Lines only: the next part\'s URL, rel="next".'),
      }),
      content: {
        "application/json": { schema: HistoryPageSchema },
        "application/x-ndjson": {
          schema: z
            .string()
            .describe("One HistoryLine (a HistoryStep with `episode_id`) per line, oldest first."),
        },
      },
    },
    ...errorResponses({ extra: [404, 422] }),
  },
});

const forkRoute = createRoute({
  method: "post",
  path: "/episodes/{id}/fork",
  summary: "A new episode with a copy of this one's Python state, settings and history",
  security: KEY_REQUIRED,
  request: { params: EpisodeParamsSchema },
  responses: {
    201: jsonContent(StepResponseSchema, "The new episode (`forked_from` set); the cookie is not changed"),
    ...errorResponses({
      extra: [404, 415],
      describe: {
        413: "`fork_too_large`: the history could not be copied within the request's time; no fork was created.",
      },
    }),
  },
});

const deleteRoute = createRoute({
  method: "delete",
  path: "/episodes/{id}",
  summary: "Delete an episode",
  security: KEY_REQUIRED,
  request: { params: EpisodeParamsSchema },
  responses: { 204: { description: "Deleted" }, ...errorResponses({ extra: [404, 415] }) },
});

/** The episode resources. */
export function episodeRoutes(deps: AppDeps) {
  const { episodes } = deps;
  const app = newRouteApp();
  // The JSON Lines export's line: a schema of its own, so clients have its type.
  app.openAPIRegistry.register("HistoryLine", HistoryLineSchema);

  app.openapi(stateRoute, async (c) =>
    c.json(await episodes.state(c.get("tenantId"), checkEpisodeId(c.req.valid("param").id)), 200),
  );

  app.openapi(historyRoute, async (c) => {
    const id = checkEpisodeId(c.req.valid("param").id);
    const query = c.req.valid("query");
    const wantsJsonl =
      query.format === "jsonl" || (c.req.header("accept") ?? "").includes("application/x-ndjson");
    if (wantsJsonl) {
      // The trajectory in parts of at most EXPORT_PART_BYTES (a Lambda response is at most 6 MB and
      // is not streamed), one page of records in memory at a time; a part that is not the last names
      // the next in X-Next-Cursor and Link.
      const { episode_id, steps, cursorAfter } = await episodes.historyStream(
        c.get("tenantId"),
        id,
        defined({ cursor: query.cursor }),
      );
      const encoder = new TextEncoder();
      const lines: Uint8Array[] = [];
      let bytes = 0;
      let lastStep = 0;
      let more = false;
      for await (const step of steps) {
        const text = `${toWireJson({ episode_id, ...step })}\n`;
        const size = envelopeBytes(text);
        if (lines.length > 0 && bytes + size > EXPORT_PART_BYTES) {
          more = true;
          break;
        }
        lines.push(encoder.encode(text));
        bytes += size;
        lastStep = step.step;
      }
      const headers: Record<string, string> = { "Content-Type": "application/x-ndjson" };
      if (more) {
        const next = cursorAfter(lastStep);
        headers["X-Next-Cursor"] = next;
        headers.Link = `</episodes/${encodeURIComponent(id)}/history?format=jsonl&cursor=${next}>; rel="next"`;
      }
      return c.body(Buffer.concat(lines), 200, headers) as never;
    }
    const { limit, cursor } = query;
    return wireJson(c, await episodes.history(c.get("tenantId"), id, defined({ limit, cursor }))) as never;
  });

  app.openapi(
    forkRoute,
    async (c) =>
      wireJson(
        c,
        await episodes.fork(c.get("tenantId"), checkEpisodeId(c.req.valid("param").id)),
        201,
      ) as never,
  );

  app.openapi(deleteRoute, async (c) => {
    await episodes.delete(c.get("tenantId"), checkEpisodeId(c.req.valid("param").id));
    return c.body(null, 204);
  });

  app.all("/episodes/:id/history", methodNotAllowed);
  app.all("/episodes/:id/fork", methodNotAllowed);
  app.all("/episodes/:id", methodNotAllowed);
  return app;
}
