// Pages of an episode's history: a limit, a byte budget per page (bounded memory per request),
// and cursors that name the incarnation, so a page after a reset of the same id is refused.
import type { Episode, EpisodeRepository, StepRecord } from "./episode-repository.js";
import { ValidationError } from "./errors.js";

/** Default and largest page of `history`. */
export const HISTORY_DEFAULT_LIMIT = 100;
export const HISTORY_MAX_LIMIT = 1000;
/**
 * A history page stops early past this many bytes of records (bounded memory per request), as
 * Lambda's response counts them (core/response-size.ts): a page of records escaped twice still fits.
 */
export const HISTORY_PAGE_BYTES = 4 * 1024 * 1024;

/** A history cursor names the incarnation, so a page after a reset of the same id is refused. */
export function makeCursor(ep: Episode, lastStep: number): string {
  return Buffer.from(`${ep.incarnation}.${lastStep}`, "utf8").toString("base64url");
}

export function parseCursor(cursor: string, ep: Episode): number {
  const [incarnation, step] = Buffer.from(cursor, "base64url").toString("utf8").split(".");
  const n = Number(step);
  if (incarnation !== ep.incarnation || !Number.isInteger(n) || n < 0) {
    throw new ValidationError([
      {
        loc: ["query", "cursor"],
        msg: "cursor is not a next_cursor of this episode (it may have been reset since)",
        type: "value_error",
      },
    ]);
  }
  return n;
}

/** Every step of the episode after `afterStep`, page by page (one page of records in memory at a time). */
export async function* allSteps(
  repository: EpisodeRepository,
  ep: Episode,
  afterStep = 0,
): AsyncGenerator<StepRecord> {
  for (;;) {
    const page = await repository.historyPage(ep, { afterStep, limit: 100, maxBytes: HISTORY_PAGE_BYTES });
    yield* page.steps;
    if (page.lastStep === null) return;
    afterStep = page.lastStep;
  }
}
