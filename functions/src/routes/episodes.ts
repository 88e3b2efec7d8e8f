// Episode resources: an episode's state, its history (paged, or all of it as JSON Lines), fork and
// delete.
import { createRoute, z } from "@hono/zod-openapi";
import { HISTORY_MAX_LIMIT } from "../core/episodes.js";
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
  cursor: z.string().min(1).max(512).optional().describe("A previous page's `next_cursor`."),
  format: z
    .enum(["json", "jsonl"])
    .optional()
    .describe("`jsonl`: the whole history streamed as JSON Lines (also with Accept: application/x-ndjson)."),
});

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
  description: "Paged (`limit`, `cursor` → `next_cursor`); all of it as JSON Lines with `format=jsonl`.",
  security: KEY_REQUIRED,
  request: { params: EpisodeParamsSchema, query: HistoryQuerySchema },
  responses: {
    200: {
      description:
        "A page of steps (JSON), or every step, one JSON object per line with `episode_id` (JSON Lines)",
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
    ...errorResponses({ extra: [404, 415] }),
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
      // The whole trajectory, one page of records in memory at a time.
      const { episode_id, steps } = await episodes.historyStream(c.get("tenantId"), id);
      const iterator = steps[Symbol.asyncIterator]();
      const encoder = new TextEncoder();
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          const next = await iterator.next();
          if (next.done) controller.close();
          else controller.enqueue(encoder.encode(`${toWireJson({ episode_id, ...next.value })}\n`));
        },
        async cancel() {
          await iterator.return?.();
        },
      });
      return c.body(body, 200, { "Content-Type": "application/x-ndjson" }) as never;
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
