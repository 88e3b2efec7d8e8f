// The wire contract, defined once. HTTP routes (functions/src/routes/) validate with these and
// /openapi.json is generated from them; the WebSocket protocol (ws/protocol.ts) validates with the
// same schemas; the SDK's wire types (sdk/src/types.generated.ts) are generated from /openapi.json.
// Every field says what it is and its limits. OpenEnv's models: CodeAction refuses unknown fields
// (pydantic `extra="forbid"`), requests and state allow them.
import { z } from "zod";
import { MAX_FILE_PATH_BYTES, MAX_FILE_TRANSFER_BYTES } from "../core/files.js";

export const EPISODE_ID_PATTERN = /^[A-Za-z0-9._:-]{1,255}$/;
const MODULE_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;

export const EpisodeIdSchema = z
  .string()
  .regex(EPISODE_ID_PATTERN, "episode_id must be 1..255 characters of [A-Za-z0-9._:-]")
  .describe("Episode id: 1..255 characters of [A-Za-z0-9._:-].");

const PolicySchema = z
  .enum(["openenv", "full"])
  .describe('Import policy: "openenv" (the reference coding_env allow-list) or "full" (all of Python).');

const MetadataSchema = z
  .record(z.string(), z.unknown())
  .describe("Free-form JSON object (OpenEnv's `metadata`).");

// ---- Requests -------------------------------------------------------------------------------

/**
 * The `{id}` path parameter of an episode's routes. Any string: an id that cannot exist is a 404,
 * like an unknown one.
 */
export const EpisodeParamsSchema = z.object({
  id: z
    .string()
    .min(1)
    .meta({ param: { name: "id", in: "path" }, example: "ep_0123456789abcdef01234567" })
    .describe("The episode id (1..255 characters of [A-Za-z0-9._:-])."),
});

/**
 * Smallest time limit (s): limits count whole milliseconds, and a smaller number (5e-324, say)
 * would not even be storable (DynamoDB numbers go down to 1e-130).
 */
const MIN_TIMEOUT_S = 0.001;

export const ResetRequestSchema = z
  .object({
    seed: z
      .number()
      .int()
      .min(0)
      .max(2 ** 53 - 1)
      .nullish()
      .describe("Seeds the episode's `random` (and numpy's global generator when numpy is imported)."),
    episode_id: EpisodeIdSchema.nullish().describe(
      "Id of the new episode (1..255 characters of [A-Za-z0-9._:-]); an existing episode of yours with this id is replaced. Default: a new `ep_…` id.",
    ),
    policy: PolicySchema.nullish().describe('Import policy; default "openenv".'),
    additional_imports: z
      .array(
        z
          .string()
          .max(255)
          .regex(MODULE_NAME_PATTERN, "not a module name")
          .describe("A dotted Python module name."),
      )
      .max(256)
      .nullish()
      .describe("Module names added to the import allow-list (at most 256)."),
    step_timeout_s: z
      .number()
      .min(MIN_TIMEOUT_S)
      .nullish()
      .describe(
        "The episode's per-step time limit in seconds, at least 0.001 (limits count whole milliseconds); default and maximum are the deployment's (422 above it).",
      ),
    ttl_s: z
      .number()
      .int()
      .positive()
      .nullish()
      .describe(
        "Idle seconds before the episode expires; default 86400, at most the deployment's maximum (30 days).",
      ),
  })
  .describe("Options of a new episode; all optional, `null` counts as absent, unknown members are ignored.")
  .meta({ id: "ResetRequest", example: {} });

export const CodeActionSchema = z
  .strictObject({
    code: z
      .string()
      .describe(
        "Python source run as one cell in the episode's interpreter; at most 1 MiB of UTF-8 (413 above).",
      ),
    metadata: MetadataSchema.optional().describe("Free-form metadata recorded with the step."),
  })
  .describe("OpenEnv's CodeAction. Unknown members are refused (422), as the reference does.")
  .meta({ id: "CodeAction", example: { code: "print(1)" } });

const StepTimeoutSchema = z
  .number()
  .min(MIN_TIMEOUT_S)
  .nullish()
  .describe("This step's time limit in seconds, at least 0.001, capped at the episode's `step_timeout_s`.");
const RequestIdSchema = z
  .string()
  .min(1)
  .max(255)
  .nullish()
  .describe(
    "Idempotency key: a step with the request id of one of the episode's last 16 steps returns that step's response (Idempotent-Replayed: true) without running again.",
  );

export const StepRequestSchema = z
  .object({
    action: CodeActionSchema,
    timeout_s: StepTimeoutSchema,
    request_id: RequestIdSchema,
    episode_id: z
      .string()
      .nullish()
      .describe(
        "The episode; default the `episode_id` query parameter, the X-Episode-Id header, then the cookie /reset sets.",
      ),
  })
  .describe("A step: OpenEnv's StepRequest. Unknown top-level members are ignored.")
  .meta({ id: "StepRequest", example: { action: { code: "print(1)" } } });

/** A WebSocket `step` message's data: the action plus this API's step options. */
export const WsStepDataSchema = CodeActionSchema.extend({
  timeout_s: StepTimeoutSchema,
  request_id: RequestIdSchema,
});

// ---- Responses ------------------------------------------------------------------------------

export const CodeObservationSchema = z
  .object({
    stdout: z.string().default("").describe("What the cell printed, then the last expression's value."),
    stderr: z.string().default("").describe("A clean traceback when the cell failed, else empty."),
    exit_code: z
      .number()
      .int()
      .min(0)
      .max(255)
      .default(0)
      .describe("0 on success, 1 on any error of the code."),
  })
  .describe("OpenEnv's CodeObservation.")
  .meta({ id: "CodeObservation" });

export const CodeStateSchema = z
  .object({
    episode_id: z.string().nullable().describe("The episode; null from GET /state when no episode is named."),
    step_count: z.number().int().min(0).describe("Steps since the episode's reset."),
    last_exit_code: z
      .number()
      .int()
      .min(0)
      .max(255)
      .describe("The last step's exit code (0 before any step)."),
    policy: PolicySchema.optional(),
    additional_imports: z.array(z.string()).optional().describe("Modules added to the allow-list."),
    step_timeout_s: z.number().optional().describe("The episode's per-step limit in seconds."),
    ttl_s: z.number().optional().describe("Idle seconds before the episode expires."),
    seed: z.number().int().optional().describe("The seed given to reset, when one was."),
    forked_from: z.string().optional().describe("The source episode, when this one is a fork."),
    created_at: z.string().optional().describe("ISO 8601 time the episode was created (reset or fork)."),
    updated_at: z.string().optional().describe("ISO 8601 time of the last change."),
    expires_at: z.string().optional().describe("ISO 8601 time the episode expires if left idle."),
  })
  .describe("OpenEnv's CodeState plus this API's episode fields.")
  .meta({ id: "CodeState" });

// ---- Files ----------------------------------------------------------------------------------

/** The `{id}` and `{path}` path parameters of one file's routes. */
export const FileParamsSchema = EpisodeParamsSchema.extend({
  path: z
    .string()
    .min(1)
    .meta({ param: { name: "path", in: "path" }, example: "data/input.csv" })
    .describe(
      `The file, relative to the episode's directory and '/'-separated (e.g. \`data/input.csv\`; percent-encode other reserved characters); at most ${MAX_FILE_PATH_BYTES} bytes of UTF-8. Absolute paths, \`.\` or \`..\` parts, empty parts and backslashes are refused (400 \`invalid_path\`).`,
    ),
});

export const FileEntrySchema = z
  .object({
    path: z.string().describe("Relative to the episode's directory, '/'-separated."),
    size: z.number().int().min(0).describe("Bytes."),
  })
  .describe("One regular file of the episode's directory.")
  .meta({ id: "FileEntry" });

export const FileListSchema = z
  .object({
    episode_id: z.string().describe("The episode."),
    files: z
      .array(FileEntrySchema)
      .describe("Regular files of its directory (symlinks and special files are not kept), sorted by path."),
    truncated: z
      .literal(true)
      .optional()
      .describe(
        "Set when the list was cut to fit a response (5 MiB, names counted as escaped in a Lambda response; only very long or control-character names reach it): the files after the last one listed exist but are not listed here (list them in a step).",
      ),
  })
  .describe("The files of an episode's working directory, which is part of its state.")
  .meta({
    id: "FileList",
    example: { episode_id: "ep_0123456789abcdef01234567", files: [{ path: "data/input.csv", size: 6 }] },
  });

export const FileUploadSchema = z
  .strictObject({
    content: z
      .string()
      .describe(
        `The file's content: UTF-8 text, or base64 with \`encoding: "base64"\` (for binary files). At most ${MAX_FILE_TRANSFER_BYTES} bytes once decoded (413 above); the request body is capped at 2 MiB.`,
      ),
    encoding: z
      .enum(["utf-8", "base64"])
      .optional()
      .describe('How `content` is written: `"utf-8"` (default) or `"base64"`.'),
  })
  .superRefine((upload, ctx) => {
    const { content, encoding } = upload;
    if (encoding === "base64" && (!/^[A-Za-z0-9+/]*={0,2}$/.test(content) || content.length % 4 !== 0)) {
      ctx.addIssue({ code: "custom", path: ["content"], message: "content is not valid base64" });
    }
  })
  .describe(
    "One file's content. Unknown members are refused (422). The file replaces any file of that path; directories are created.",
  )
  .meta({ id: "FileUpload", example: { content: "1,2,3\n" } });

export const FileWrittenSchema = z
  .object({
    episode_id: z.string().describe("The episode."),
    path: z.string().describe("The file written."),
    size: z.number().int().min(0).describe("Its size in bytes."),
    step_count: z
      .number()
      .int()
      .min(1)
      .describe(
        "The episode's new version: an upload is committed like a step (a history record with `info.files_written`, empty code, reward 0.0).",
      ),
  })
  .describe("The upload, committed.")
  .meta({
    id: "FileWritten",
    example: { episode_id: "ep_0123456789abcdef01234567", path: "data/input.csv", size: 6, step_count: 1 },
  });

const DroppedVariableSchema = z
  .object({
    name: z.string().describe("The variable's name."),
    type: z.string().describe("Its Python type's name."),
  })
  .describe("A variable that could not be kept between steps (open files, generators, sockets...).");

export const StepInfoSchema = z
  .object({
    duration_ms: z.number().min(0).describe("Time the cell ran, in milliseconds."),
    timed_out: z.boolean().describe("The cell hit its time limit; the Python state is as before the step."),
    stdout_truncated: z.boolean().describe("stdout was cut to the reply limit."),
    stderr_truncated: z.boolean().describe("stderr was cut to the reply limit."),
    dropped_variables: z.array(DroppedVariableSchema).describe("Variables not kept after this step."),
    error_code: z
      .string()
      .optional()
      .describe("The executor's error code (syntax_error, timeout, out_of_memory, crashed...)."),
    out_of_memory: z.boolean().optional().describe("The cell ran out of memory."),
    crashed: z
      .boolean()
      .optional()
      .describe("The cell's process ended; the Python state is as before the step."),
    history_truncated: z.boolean().optional().describe("History only: this stored copy of the step was cut."),
    files_written: z
      .array(FileEntrySchema)
      .optional()
      .describe(
        "History only: this version is a file upload (PUT /episodes/{id}/files/{path}), not code; the file it wrote.",
      ),
  })
  .catchall(z.unknown())
  .describe("This API's facts about a step.")
  .meta({ id: "StepInfo" });

/** Bundles one step may return: the runtime keeps 20 and adds one note when it dropped some. */
export const MAX_DISPLAY_OUTPUTS = 21;
/** Characters of display data one step may return (the runtime's cap, all bundles together). */
export const MAX_DISPLAY_CHARS = 768 * 1024;
/** Characters of display data the history keeps of a step: whole bundles, in order. */
export const HISTORY_DISPLAY_CHARS = 160 * 1024;

export const DisplayOutputSchema = z
  .object({
    data: z
      .record(z.string(), z.string())
      .describe(
        "MIME type to content, as Jupyter's display data: `image/png` and `image/jpeg` base64, `image/svg+xml`, `text/html` (a DataFrame's table; sanitize before rendering), `text/markdown`, `text/latex`, `text/plain` (always there as a fallback).",
      ),
    metadata: z
      .record(z.string(), z.unknown())
      .describe("Jupyter's display metadata (e.g. `image/png` width and height); often empty."),
  })
  .describe(
    "One rich output of a cell: a Jupyter MIME bundle from `display(obj)` (objects with `_repr_png_`, `_repr_svg_`, `_repr_html_`, `_repr_markdown_`...) or a matplotlib figure (PNG, without `plt.show()`).",
  )
  .meta({
    id: "DisplayOutput",
    example: {
      data: { "text/plain": "<Figure size 640x480 with 1 Axes>", "image/png": "iVBORw0KGgo..." },
      metadata: {},
    },
  });

/** The `display` list of a step's response (never inside `observation`, whose fields stay OpenEnv's). */
const DisplayListSchema = z
  .array(DisplayOutputSchema)
  .max(MAX_DISPLAY_OUTPUTS)
  .optional()
  .describe(
    `Rich outputs the cell displayed, in order; absent when none. At most 20 bundles and ${MAX_DISPLAY_CHARS} characters of data per step; past either, the rest is dropped and a last \`text/plain\` bundle says how many (its metadata has \`dropped\`).`,
  );

const RewardSchema = z
  .number()
  .nullable()
  .describe(
    "OpenEnv's reward, always a JSON float (0.0, -1.0): safety (-1.0) plus quality (+0.1 short code, -0.2 syntax error).",
  );

export const StepResponseSchema = z
  .object({
    observation: CodeObservationSchema,
    reward: RewardSchema,
    done: z.boolean().describe("Never true in this environment (OpenEnv's coding_env)."),
    metadata: MetadataSchema.optional().describe(
      "OpenEnv's observation metadata (last_code, safety_violation).",
    ),
    episode_id: z.string().describe("The episode."),
    step_count: z.number().int().min(0).describe("Steps since the episode's reset."),
    info: StepInfoSchema.optional(),
    display: DisplayListSchema,
    forked_from: z.string().optional().describe("On a fork's result: the source episode."),
  })
  .describe(
    "The result of /reset, /step and a fork: OpenEnv's { observation, reward, done } plus this API's fields.",
  )
  .meta({ id: "StepResponse" });

export const HistoryStepSchema = z
  .object({
    step: z.number().int().min(1).describe("1-based step number."),
    code: z.string().describe("The step's code (cut when history_truncated)."),
    observation: CodeObservationSchema,
    reward: RewardSchema,
    done: z.boolean().describe("Never true in this environment."),
    metadata: MetadataSchema.optional().describe(
      "OpenEnv's observation metadata of the step (last_code, safety_violation).",
    ),
    info: StepInfoSchema.optional(),
    request_id: z.string().optional().describe("The step's request_id, when it had one."),
    display: z
      .array(DisplayOutputSchema)
      .max(MAX_DISPLAY_OUTPUTS)
      .optional()
      .describe(
        `The step's rich outputs, as its response had them; absent when none. The history keeps whole bundles, in order, up to ${HISTORY_DISPLAY_CHARS} characters of data per step (\`history_truncated\` when it kept fewer).`,
      ),
    started_at: z.string().describe("ISO 8601 time the step started."),
    duration_ms: z.number().min(0).describe("Time the cell ran, in milliseconds."),
    history_truncated: z.boolean().optional().describe("Code or outputs were cut in this stored copy."),
  })
  .describe("One step of an episode's trajectory.")
  .meta({ id: "HistoryStep" });

export const HistoryPageSchema = z
  .object({
    episode_id: z.string().describe("The episode."),
    steps: z.array(HistoryStepSchema).describe("Steps, oldest first."),
    next_cursor: z.string().nullable().describe("Pass as `cursor` for the next page; null at the end."),
  })
  .meta({ id: "HistoryPage" });

export const HistoryLineSchema = HistoryStepSchema.extend({
  episode_id: z.string().describe("The episode (added to every line)."),
})
  .describe("One line of the JSON Lines export (`format=jsonl`): a HistoryStep with `episode_id`.")
  .meta({ id: "HistoryLine" });

// ---- Episode list (GET /episodes) --------------------------------------------------------------

export const EpisodeSummarySchema = z
  .object({
    episode_id: z.string().describe("The episode."),
    step_count: z.number().int().min(0).describe("Steps since its reset."),
    created_at: z.string().meta({ format: "date-time" }).describe("ISO 8601 time it was created."),
    updated_at: z.string().meta({ format: "date-time" }).describe("ISO 8601 time of its last change."),
    forked_from: z.string().optional().describe("The source episode, when this one is a fork."),
  })
  .meta({ id: "EpisodeSummary" });

export const EpisodesListSchema = z
  .object({
    episodes: z.array(EpisodeSummarySchema).describe("One page, in episode id order."),
    next_cursor: z.string().nullable().describe("Pass as `cursor` for the next page; null at the end."),
  })
  .meta({ id: "EpisodesList" });

export const HealthSchema = z
  .object({
    status: z.literal("healthy").describe("Always healthy when the API answers."),
    auth_required: z.boolean().describe("Whether requests need an API key."),
  })
  .meta({ id: "Health" });

export const MetadataResponseSchema = z
  .object({
    name: z.string().describe("The environment's name."),
    description: z.string().describe("What it does."),
    version: z.string().describe("The API's version."),
    author: z.string().describe("Who made it."),
    documentation_url: z.string().describe("Where its documentation is."),
    packages: z
      .record(z.string(), z.string().nullable())
      .optional()
      .describe(
        "The Python packages offered to user code, with the executor's installed versions (null: missing). Any of them may be named in `additional_imports`.",
      ),
  })
  .meta({ id: "EnvironmentMetadata" });

export const SchemaResponseSchema = z
  .object({
    action: z.record(z.string(), z.unknown()).describe("JSON Schema of CodeAction."),
    observation: z.record(z.string(), z.unknown()).describe("JSON Schema of CodeObservation."),
    state: z.record(z.string(), z.unknown()).describe("JSON Schema of CodeState."),
  })
  .meta({ id: "SchemaResponse" });

const UsageFiguresShape = {
  steps: z.number().int().min(0).describe("Committed steps."),
  executions: z.number().int().min(0).describe("Runs of code, also those that did not commit."),
  executor_ms: z.number().min(0).describe("Executor time of all runs, ms (each rounded up)."),
  gb_seconds: z.number().min(0).describe("executor_ms × the executor's memory / 1 024 000."),
  episodes_created: z.number().int().min(0).describe("Resets and forks."),
  state_bytes: z.number().int().min(0).describe("Bytes of Python state written."),
};

export const UsageReportSchema = z
  .object({
    tenant_id: z.string().describe("Whose usage."),
    from: z.string().describe("First UTC day (YYYY-MM-DD), inclusive."),
    to: z.string().describe("Last UTC day (YYYY-MM-DD), inclusive."),
    days: z
      .array(z.object({ date: z.string().describe("UTC day (YYYY-MM-DD)."), ...UsageFiguresShape }))
      .describe("Days with usage, oldest first."),
    totals: z.object(UsageFiguresShape).describe("Sums over the days."),
  })
  .meta({ id: "UsageReport" });

export const UsageQuerySchema = z.object({
  from: z.string().max(10).optional().describe("First UTC day, YYYY-MM-DD; default 29 days before `to`."),
  to: z.string().max(10).optional().describe("Last UTC day, YYYY-MM-DD; default today. At most 366 days."),
});

export const ErrorResponseSchema = z
  .object({
    error: z
      .object({
        code: z.string().describe("Stable machine-readable code (episode_not_found, quota_exceeded...)."),
        message: z.string().describe("What went wrong, for people."),
        details: z
          .record(z.string(), z.unknown())
          .optional()
          .describe("Facts about the error (quota, limit...)."),
      })
      .describe("The error."),
    detail: z
      .array(
        z.object({
          loc: z
            .array(z.union([z.string(), z.number()]))
            .describe("Where: body, query or path, then the field."),
          msg: z.string().describe("What is wrong."),
          type: z.string().describe("The kind of problem."),
        }),
      )
      .optional()
      .describe("422 only: FastAPI's validation list, for OpenEnv clients."),
  })
  .describe("Every error has this shape.")
  .meta({ id: "ErrorResponse" });

// ---- Helpers --------------------------------------------------------------------------------

/** Replaces lone UTF-16 surrogates (valid in JSON, not in UTF-8) with U+FFFD. */
export function wellFormed(s: string): string {
  return s.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, "\uFFFD");
}

/** Drops `null`/`undefined` members so optional wire fields map to absent options. */
export function defined<T extends Record<string, unknown>>(o: T): { [K in keyof T]?: Exclude<T[K], null> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== null && v !== undefined)) as {
    [K in keyof T]?: Exclude<T[K], null>;
  };
}

/**
 * A schema's standalone JSON Schema, as `/schema` serves it: the schema itself at the root (zod
 * moves a schema with an `id` into `$defs` behind a `$ref`), other named schemas in `$defs`.
 */
export function jsonSchemaOf(schema: z.ZodType): Record<string, unknown> {
  const { $ref, $defs, ...rest } = z.toJSONSchema(schema) as {
    $ref?: string;
    $defs?: Record<string, Record<string, unknown>>;
  } & Record<string, unknown>;
  const name = $ref?.replace("#/$defs/", "");
  const root = name === undefined ? undefined : $defs?.[name];
  if (name === undefined || root === undefined) return z.toJSONSchema(schema) as Record<string, unknown>;
  const { [name]: _root, ...others } = $defs ?? {};
  return { ...rest, ...root, ...(Object.keys(others).length > 0 ? { $defs: others } : {}) };
}
