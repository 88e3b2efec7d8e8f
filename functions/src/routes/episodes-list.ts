// `GET /episodes`: one page of the calling tenant's live episodes, so a person (the /web page) or a
// script can see what holds its active-episode quota and delete what it no longer needs.
// Auth and tenant scoping come from the app's middleware (`tenantId`), as for every episode route.
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { EpisodeService } from "../core/episodes.js";
import { errorResponses, jsonContent, KEY_REQUIRED, newRouteApp } from "../http/openapi.js";
import { EpisodesListSchema } from "../http/schemas.js";
import type { AppEnv } from "../http/types.js";

/** Page size of `GET /episodes`. */
export const EPISODES_LIST_DEFAULT_LIMIT = 20;
export const EPISODES_LIST_MAX_LIMIT = 100;

const EpisodesListQuerySchema = z.object({
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(EPISODES_LIST_MAX_LIMIT)
    .optional()
    .openapi({ description: `Episodes per page (default ${EPISODES_LIST_DEFAULT_LIMIT}).`, example: 20 }),
  cursor: z
    .string()
    .min(1)
    .max(64)
    .optional()
    .openapi({ description: "The previous page's `next_cursor`; omit for the first page." }),
});

const listRoute = createRoute({
  method: "get",
  path: "/episodes",
  summary: "The caller's live episodes, in pages (id order)",
  description:
    "Episodes that hold a slot of the active-episode quota. A page may hold fewer than `limit` episodes " +
    "when some listed ones have just expired; keep following `next_cursor` until it is null.",
  security: KEY_REQUIRED,
  request: { query: EpisodesListQuerySchema },
  responses: {
    200: jsonContent(EpisodesListSchema, "One page."),
    ...errorResponses({ extra: [422] }),
  },
});

/** The sub-app; mount it with `app.route("/", episodesListRoutes(episodes))` after the auth middleware. */
export function episodesListRoutes(episodes: EpisodeService): OpenAPIHono<AppEnv> {
  const app = newRouteApp();
  app.openapi(listRoute, async (c) => {
    const { limit, cursor } = c.req.valid("query");
    const page = await episodes.list(c.get("tenantId"), {
      limit: limit ?? EPISODES_LIST_DEFAULT_LIMIT,
      ...(cursor !== undefined ? { cursor } : {}),
    });
    return c.json(page, 200);
  });
  return app;
}
