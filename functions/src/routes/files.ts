// An episode's files (its working directory, part of its Python state): list, download, upload.
// Listing and downloading read the latest committed state through the executor's `files`
// operation (no user code runs); an upload is committed as the episode's next state version with
// the same conditional write as a step (core/files.ts). Paths are relative to the episode's
// directory: absolute paths, `.`/`..` parts and backslashes are refused (400); files above
// MAX_FILE_TRANSFER_BYTES are refused (413).
import { createRoute, z } from "@hono/zod-openapi";
import { checkFilePath, type FileList, MAX_FILE_PATH_BYTES, MAX_FILE_TRANSFER_BYTES } from "../core/files.js";
import { envelopeBytesWithin, envelopeJsonBytes, PAGED_RESPONSE_BYTES } from "../core/response-size.js";
import { methodNotAllowed } from "../http/errors.js";
import { errorResponses, jsonContent, KEY_REQUIRED, newRouteApp } from "../http/openapi.js";
import { checkEpisodeId, jsonBody } from "../http/request.js";
import {
  EpisodeParamsSchema,
  FileListSchema,
  FileParamsSchema,
  FileUploadSchema,
  FileWrittenSchema,
} from "../http/schemas.js";
import type { AppDeps } from "../http/types.js";
import { toWireJson } from "../http/wire-json.js";
import { wireJson } from "./openenv.js";

const MIB = 1024 * 1024;

/** What the file routes' errors mean, in their own terms. */
const FILE_ERRORS = {
  400: `\`invalid_path\`: the path is absolute, has \`.\`, \`..\` or empty parts or backslashes, or is over ${MAX_FILE_PATH_BYTES} bytes (nothing outside the episode's directory is reachable); \`invalid_json\`: a malformed body.`,
  404: "`episode_not_found` (unknown, expired, deleted or another tenant's episode) or `file_not_found` (no such file in the episode's directory).",
  409: "`conflict`: a step of the episode committed while the upload ran; nothing was written (send it again). `step_in_progress`: a step is running. `files_unreadable`: the episode's stored files cannot be read back (a step left an archive the runtime refuses); reset the episode.",
  413: `\`payload_too_large\`: the file is over ${MAX_FILE_TRANSFER_BYTES / MIB} MiB (read larger files in a step) or the body over 2 MiB; \`state_too_large\`: the episode's state with the file would be over its limit (not committed).`,
  415: '`unsupported_media_type`: the body is not application/json (send `{"content": ...}`).',
  422: "`validation_error`: the body is not `{content, encoding?}` (other members are refused) or `content` is not valid base64, with FastAPI's `detail` list.",
} as const;

const listRoute = createRoute({
  method: "get",
  path: "/episodes/{id}/files",
  summary: "The files of an episode's directory (kept in its state)",
  description:
    "Regular files of the episode's working directory as of its latest version, sorted by path. Files a step writes (relative paths, e.g. `open('out.csv', 'w')`) persist in the episode's state: in later steps, after a restart, in a fork.",
  security: KEY_REQUIRED,
  request: { params: EpisodeParamsSchema },
  responses: {
    200: jsonContent(FileListSchema, "The files, sorted by path"),
    ...errorResponses({ extra: [502, 504], describe: { 404: FILE_ERRORS[404], 409: FILE_ERRORS[409] } }),
  },
});

const readRoute = createRoute({
  method: "get",
  path: "/episodes/{id}/files/{path}",
  summary: "Download one file of an episode (raw bytes)",
  description: `The file's bytes as of the episode's latest version, as \`application/octet-stream\` with \`Content-Disposition: attachment\`. At most ${MAX_FILE_TRANSFER_BYTES / MIB} MiB (413 above: read larger files in a step).`,
  security: KEY_REQUIRED,
  request: { params: FileParamsSchema },
  responses: {
    200: {
      description: "The file's bytes",
      headers: z.object({
        "Content-Disposition": z
          .string()
          .describe(
            "`attachment; filename*=UTF-8''<the file's name>`: a browser saves it, never renders it.",
          ),
      }),
      content: {
        "application/octet-stream": {
          schema: z
            .string()
            .openapi({ format: "binary" })
            .describe(`The file's raw bytes (at most ${MAX_FILE_TRANSFER_BYTES} bytes).`),
        },
      },
    },
    ...errorResponses({
      extra: [502, 504],
      describe: {
        400: FILE_ERRORS[400],
        404: FILE_ERRORS[404],
        409: FILE_ERRORS[409],
        413: FILE_ERRORS[413],
      },
    }),
  },
});

const writeRoute = createRoute({
  method: "put",
  path: "/episodes/{id}/files/{path}",
  summary: "Upload one file into an episode (a new version, committed like a step)",
  description: `Writes the file into the episode's directory (replacing one of that path, creating directories); the next step sees it. The content is UTF-8 text, or base64 with \`"encoding": "base64"\` for binary files; at most ${MAX_FILE_TRANSFER_BYTES / MIB} MiB once decoded. The upload is committed as the episode's next version with the same conditional write as a step (\`step_count\` grows; the history has a record with \`info.files_written\`); 409 if a step committed meanwhile.`,
  security: KEY_REQUIRED,
  middleware: [jsonBody(false)] as const,
  request: {
    params: FileParamsSchema,
    body: {
      content: { "application/json": { schema: FileUploadSchema, example: { content: "1,2,3\n" } } },
      required: true,
    },
  },
  responses: {
    200: jsonContent(FileWrittenSchema, "Written and committed"),
    ...errorResponses({
      body: true,
      extra: [502, 504],
      describe: {
        400: FILE_ERRORS[400],
        404: FILE_ERRORS[404],
        409: FILE_ERRORS[409],
        413: FILE_ERRORS[413],
        415: FILE_ERRORS[415],
        422: FILE_ERRORS[422],
      },
    }),
  },
});

/**
 * A route served on `{path{.+}}` (Hono's parameter that may hold "/", as a file path does) with
 * the same definition, so validation comes from it; the definition itself is what is documented.
 */
function onAnyFilePath<R extends { path: string }>(route: R): R & { hide: true } {
  return { ...route, path: route.path.replace("{path}", "{path{.+}}"), hide: true };
}

/**
 * The list within {@link PAGED_RESPONSE_BYTES} as Lambda's response counts it: 1000 names of up to
 * 1024 bytes can be 7 MB once escaped twice (`\u0001` is 7 bytes). The files that do not fit are
 * left out, in path order, and the list says so (`truncated`).
 */
export function fitFileList(list: FileList): FileList {
  if (envelopeBytesWithin(toWireJson(list), PAGED_RESPONSE_BYTES)) return list;
  let bytes = envelopeJsonBytes({ ...list, files: [], truncated: true });
  const files: FileList["files"] = [];
  for (const file of list.files) {
    const size = envelopeJsonBytes(file) + 1;
    if (bytes + size > PAGED_RESPONSE_BYTES) break;
    files.push(file);
    bytes += size;
  }
  return { ...list, files, truncated: true };
}

/** The file routes of an episode. */
export function filesRoutes(deps: AppDeps) {
  const files = () => deps.episodes.files();
  const app = newRouteApp();

  app.openapi(listRoute, async (c) => {
    const list = await files().list(c.get("tenantId"), checkEpisodeId(c.req.valid("param").id));
    // Serialized once: a usual list is sent as measured; only one over the page size is cut.
    const text = toWireJson(list);
    const body = envelopeBytesWithin(text, PAGED_RESPONSE_BYTES) ? text : toWireJson(fitFileList(list));
    return c.body(body, 200, { "Content-Type": "application/json" }) as never;
  });

  app.openAPIRegistry.registerPath(readRoute);
  app.openapi(onAnyFilePath(readRoute), async (c) => {
    const param = c.req.valid("param");
    const id = checkEpisodeId(param.id);
    const path = checkFilePath(param.path);
    const data = await files().read(c.get("tenantId"), id, path);
    const name = path.split("/").at(-1) ?? "file";
    return c.body(data as Uint8Array<ArrayBuffer>, 200, {
      "Content-Type": "application/octet-stream",
      "Content-Disposition": `attachment; filename*=UTF-8''${encodeURIComponent(name)}`,
      "X-Content-Type-Options": "nosniff",
    }) as never;
  });

  app.openAPIRegistry.registerPath(writeRoute);
  app.openapi(onAnyFilePath(writeRoute), async (c) => {
    const param = c.req.valid("param");
    const id = checkEpisodeId(param.id);
    const path = checkFilePath(param.path);
    const { content, encoding } = c.req.valid("json");
    const bytes = encoding === "base64" ? Buffer.from(content, "base64") : Buffer.from(content, "utf8");
    return wireJson(c, await files().write(c.get("tenantId"), id, path, bytes)) as never;
  });

  app.all("/episodes/:id/files", methodNotAllowed);
  app.all("/episodes/:id/files/:path{.+}", methodNotAllowed);
  return app;
}
