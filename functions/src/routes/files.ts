// An episode's files (its working directory, part of its Python state): list, download, upload.
// Listing and downloading read the latest committed state through the executor's `files`
// operation (no user code runs); an upload is committed as the episode's next state version with
// the same conditional write as a step (core/files.ts). Paths are relative to the episode's
// directory: absolute paths, `.`/`..` parts and backslashes are refused (400); files above
// MAX_FILE_TRANSFER_BYTES are refused (413).
import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { BadRequestError, InvalidJsonError } from "../core/errors.js";
import { checkFilePath, MAX_FILE_TRANSFER_BYTES } from "../core/files.js";
import { methodNotAllowed } from "../http/errors.js";
import { errorResponses, jsonContent, KEY_REQUIRED, newRouteApp } from "../http/openapi.js";
import { checkEpisodeId } from "../http/request.js";
import { EpisodeParamsSchema } from "../http/schemas.js";
import type { AppDeps } from "../http/types.js";
import { wireJson } from "./openenv.js";

const FileParams = EpisodeParamsSchema.extend({
  path: z
    .string()
    .min(1)
    .openapi({ param: { name: "path", in: "path" }, example: "data/out.csv" })
    .describe("Relative to the episode's directory, '/'-separated (percent-encode other characters)."),
});

const FileListSchema = z
  .object({
    episode_id: z.string(),
    files: z.array(z.object({ path: z.string(), size: z.number().int().min(0) })),
  })
  .openapi("FileList");

const FileUploadSchema = z
  .object({
    content: z.string().describe('The file\'s content: text, or base64 with `encoding: "base64"`.'),
    encoding: z.enum(["utf-8", "base64"]).optional().describe("Default `utf-8`."),
  })
  .strict()
  .openapi("FileUpload");

const FileWrittenSchema = z
  .object({
    episode_id: z.string(),
    path: z.string(),
    size: z.number().int(),
    step_count: z.number().int().describe("The episode's new version: an upload is committed like a step."),
  })
  .openapi("FileWritten");

const listRoute = createRoute({
  method: "get",
  path: "/episodes/{id}/files",
  summary: "The files of an episode's directory (kept in its state)",
  security: KEY_REQUIRED,
  request: { params: EpisodeParamsSchema },
  responses: {
    200: jsonContent(FileListSchema, "Regular files, sorted by path"),
    ...errorResponses({ extra: [404] }),
  },
});

const readRoute = createRoute({
  method: "get",
  path: "/episodes/{id}/files/{path}",
  summary: "Download one file of an episode",
  security: KEY_REQUIRED,
  request: { params: FileParams },
  responses: {
    200: {
      description: "The file's bytes",
      content: { "application/octet-stream": { schema: z.string().openapi({ format: "binary" }) } },
    },
    ...errorResponses({ extra: [400, 404, 413] }),
  },
});

const writeRoute = createRoute({
  method: "put",
  path: "/episodes/{id}/files/{path}",
  summary: "Upload one file into an episode (a new state version, committed like a step)",
  description: `At most ${MAX_FILE_TRANSFER_BYTES} bytes. 409 if a step committed meanwhile (retry).`,
  security: KEY_REQUIRED,
  request: { params: FileParams, body: { content: { "application/json": { schema: FileUploadSchema } } } },
  responses: {
    200: jsonContent(FileWrittenSchema, "Written and committed"),
    ...errorResponses({ extra: [400, 404, 409, 413, 415, 422] }),
  },
});

async function uploadOf(c: Context): Promise<Uint8Array> {
  let body: unknown;
  try {
    body = await c.req.json();
  } catch {
    throw new InvalidJsonError();
  }
  const parsed = FileUploadSchema.safeParse(body);
  if (!parsed.success) {
    throw new BadRequestError('The body must be {"content": string, "encoding"?: "utf-8" | "base64"}.');
  }
  const { content, encoding } = parsed.data;
  if (encoding === "base64") {
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(content) || content.length % 4 !== 0) {
      throw new BadRequestError("content is not valid base64.");
    }
    return Buffer.from(content, "base64");
  }
  return Buffer.from(content, "utf8");
}

/** The file routes of an episode. */
export function filesRoutes(deps: AppDeps) {
  const files = () => deps.episodes.files();
  const app = newRouteApp();

  app.openapi(
    listRoute,
    async (c) =>
      wireJson(c, await files().list(c.get("tenantId"), checkEpisodeId(c.req.valid("param").id))) as never,
  );

  // A path may hold "/": these two are plain routes (documented through the registry above).
  app.openAPIRegistry.registerPath(readRoute);
  app.openAPIRegistry.registerPath(writeRoute);

  app.get("/episodes/:id/files/:path{.+}", async (c) => {
    const id = checkEpisodeId(c.req.param("id"));
    const path = checkFilePath(c.req.param("path"));
    const data = await files().read(c.get("tenantId"), id, path);
    const name = path.split("/").at(-1) ?? "file";
    return c.body(data as Uint8Array<ArrayBuffer>, 200, {
      "Content-Type": "application/octet-stream",
      "Content-Disposition": `attachment; filename*=UTF-8''${encodeURIComponent(name)}`,
      "X-Content-Type-Options": "nosniff",
    });
  });

  app.put("/episodes/:id/files/:path{.+}", async (c) => {
    const id = checkEpisodeId(c.req.param("id"));
    const path = checkFilePath(c.req.param("path"));
    const content = await uploadOf(c);
    return wireJson(c, await files().write(c.get("tenantId"), id, path, content));
  });

  app.all("/episodes/:id/files", methodNotAllowed);
  app.all("/episodes/:id/files/:path{.+}", methodNotAllowed);
  return app;
}
