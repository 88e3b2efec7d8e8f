// Wire schemas and text rules shared by HTTP (app.ts) and the WebSocket protocol (ws/protocol.ts),
// so both validate a reset the same way.
import { z } from "@hono/zod-openapi";

export const EPISODE_ID_PATTERN = /^[A-Za-z0-9._:-]{1,255}$/;
const MODULE_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;

export const EpisodeIdSchema = z
  .string()
  .regex(EPISODE_ID_PATTERN, "episode_id must be 1..255 characters of [A-Za-z0-9._:-]");

export const ResetRequestSchema = z
  .object({
    seed: z.number().int().min(0).nullish(),
    episode_id: EpisodeIdSchema.nullish(),
    policy: z.enum(["openenv", "full"]).nullish().describe('"openenv" (default): the reference allow-list.'),
    additional_imports: z
      .array(z.string().regex(MODULE_NAME_PATTERN, "not a module name").max(255))
      .max(256)
      .nullish(),
    step_timeout_s: z.number().positive().nullish(),
    ttl_s: z.number().int().positive().nullish(),
  })
  .openapi("ResetRequest");

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
