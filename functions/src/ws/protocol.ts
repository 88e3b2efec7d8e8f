// OpenEnv's WebSocket protocol, independent of the transport: one client message in, one reply out.
// One connection is one session (one episode at a time). Messages are JSON text:
//   client: {"type":"reset","data":{...}} {"type":"step","data":{code,...}} {"type":"state"} {"type":"close"}
//   server: {"type":"observation","data":{observation,reward,done,...}} {"type":"state","data":{...}}
//           {"type":"error","data":{"message","code","error_code"?}}
// An observation's data is exactly the body POST /reset or /step answers (the schemas' StepResponse):
// OpenEnv's fields, ours next to them, a step's `display` bundles at the top level.
// The local `/ws` (ws/node.ts, session in memory) and the AWS WebSocket Lambda (session in a
// DynamoDB connection item) both call `handleWsMessage`. Messages are validated with the HTTP
// schemas (`/reset`'s, and `/step`'s action, unknown members refused as OpenEnv does); errors are OpenEnv's error codes, our API code in `error_code`.
import type { z } from "zod";
import type { EpisodeService, ResetOpts, StepResponse } from "../core/episodes.js";
import { ApiError } from "../core/errors.js";
import type { DisplayOutputSchema } from "../http/schemas.js";
import { defined, ResetRequestSchema, WsStepDataSchema, wellFormed } from "../http/schemas.js";

export interface WsSessionState {
  episodeId: string | null;
}
export interface WsSessionPort {
  load(): Promise<WsSessionState>;
  save(state: WsSessionState): Promise<void>;
}
export interface WsContext {
  service: EpisodeService;
  tenantId: string;
  session: WsSessionPort;
  /** Largest message handled (UTF-8 bytes); larger ones get an error reply. @default 2 MiB */
  maxMessageBytes?: number;
  /**
   * Largest observation reply (UTF-8 bytes of its JSON), for a transport with a message limit (API
   * Gateway's 128 KB): a step's `display` bundles that do not fit are left out, whole and from the
   * last, and one `text/plain` note says how many, as the runtime does past its own bounds.
   * @default no limit (the local /ws)
   */
  maxReplyBytes?: number;
}

/** OpenEnv's WebSocket error codes. */
export type WsErrorCode =
  | "INVALID_JSON"
  | "UNKNOWN_TYPE"
  | "VALIDATION_ERROR"
  | "EXECUTION_ERROR"
  | "SESSION_ERROR"
  | "CAPACITY_REACHED";

/** The reply to `{"type":"close"}`: the transport closes the connection (1000) and sends nothing. */
export const WS_CLOSE_REPLY: Readonly<Record<string, unknown>> = Object.freeze({ type: "close" });

export const DEFAULT_WS_MAX_MESSAGE_BYTES = 2 * 1024 * 1024;

type DisplayOutput = z.output<typeof DisplayOutputSchema>;

/** Bytes kept free for the note bundle and the float rewrite of rewards (toWireJson). */
const DISPLAY_NOTE_RESERVE_BYTES = 512;

function jsonBytes(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value), "utf8");
}

/**
 * The observation reply of a reset or step: the body HTTP answers, unchanged when it fits
 * `maxBytes`; else its display bundles that fit, in order, and a note on the ones left out.
 */
export function observationReply(body: StepResponse, maxBytes?: number): Record<string, unknown> {
  const reply = { type: "observation", data: body };
  const display = body.display;
  if (maxBytes === undefined || display === undefined || jsonBytes(reply) <= maxBytes) return reply;
  const { display: _all, ...rest } = body;
  let budget = maxBytes - jsonBytes({ type: "observation", data: { ...rest, display: [] } });
  budget -= DISPLAY_NOTE_RESERVE_BYTES;
  const kept: DisplayOutput[] = [];
  for (const bundle of display) {
    const size = jsonBytes(bundle) + 1;
    if (size > budget) break;
    budget -= size;
    kept.push(bundle);
  }
  const dropped = display.length - kept.length;
  // Over the limit for its outputs, not its bundles: the transport cuts those (ws-lambda's fitReply).
  if (dropped === 0) return reply;
  const note: DisplayOutput = {
    data: {
      "text/plain": `[${dropped} display output(s) left out: a WebSocket message is at most ${maxBytes} bytes; GET /episodes/{id}/history keeps them]`,
    },
    metadata: { dropped },
  };
  return { type: "observation", data: { ...rest, display: [...kept, note] } };
}

/**
 * An error message in OpenEnv's WebSocket shape: `data` has OpenEnv's `message` and `code`, our API
 * code in `error_code` and, when HTTP's error has them, its `details` (a quota's name and reset time).
 */
export function wsError(
  code: WsErrorCode,
  message: string,
  apiCode?: string,
  details?: Record<string, unknown>,
): Record<string, unknown> {
  return {
    type: "error",
    data: { message, code, ...(apiCode ? { error_code: apiCode } : {}), ...(details ? { details } : {}) },
  };
}

function firstIssue(error: z.ZodError, fallback: string): string {
  const issue = error.issues[0];
  if (!issue) return fallback;
  return issue.path.length > 0 ? `${issue.path.join(".")}: ${issue.message}` : issue.message;
}

function errorReply(err: unknown): Record<string, unknown> {
  if (err instanceof ApiError) {
    const code: WsErrorCode =
      err.status === 422 || err.status === 413 || err.status === 400
        ? "VALIDATION_ERROR"
        : err.status === 404
          ? "SESSION_ERROR"
          : err.status === 429
            ? "CAPACITY_REACHED"
            : "EXECUTION_ERROR";
    return wsError(code, err.message, err.code, err.details);
  }
  console.error(JSON.stringify({ level: "ERROR", message: "ws message failed", error: String(err) }));
  return wsError("EXECUTION_ERROR", "Internal error.", "internal_error");
}

/**
 * The state of a session with no episode yet: OpenEnv's server answers its fresh environment's
 * `CodeState()` (as HTTP `GET /state` without an episode does). A `state` never starts an episode,
 * so probing a connection holds no active-episode slot.
 */
const NO_EPISODE_STATE = Object.freeze({ episode_id: null, step_count: 0, last_exit_code: 0 });

/** The session's episode; a `step` before any `reset` starts one (OpenEnv steps its fresh environment). */
async function sessionEpisode(ctx: WsContext): Promise<string> {
  const state = await ctx.session.load();
  if (state.episodeId !== null) return state.episodeId;
  const episodeId = (await ctx.service.reset(ctx.tenantId, {})).episode_id;
  await ctx.session.save({ episodeId });
  return episodeId;
}

/** One client message in, one reply message out (OpenEnv's shapes, errors in its WebSocket error shape). */
export async function handleWsMessage(raw: string, ctx: WsContext): Promise<Record<string, unknown>> {
  const limit = ctx.maxMessageBytes ?? DEFAULT_WS_MAX_MESSAGE_BYTES;
  // UTF-8 is at most 3 bytes per UTF-16 unit; count exactly only near the limit.
  if (raw.length * 3 > limit && Buffer.byteLength(raw, "utf8") > limit) {
    return wsError("VALIDATION_ERROR", `The message is over ${limit} bytes.`, "payload_too_large");
  }
  let msg: { type?: unknown; data?: unknown };
  try {
    msg = JSON.parse(raw) as { type?: unknown; data?: unknown };
    if (typeof msg !== "object" || msg === null || Array.isArray(msg)) throw new Error("not an object");
  } catch {
    return wsError("INVALID_JSON", "The message is not a JSON object.");
  }
  try {
    switch (msg.type) {
      case "reset": {
        const parsed = ResetRequestSchema.safeParse(msg.data ?? {});
        if (!parsed.success) {
          return wsError(
            "VALIDATION_ERROR",
            firstIssue(parsed.error, "Invalid reset data."),
            "validation_error",
          );
        }
        const res = await ctx.service.reset(ctx.tenantId, defined(parsed.data) as ResetOpts);
        await ctx.session.save({ episodeId: res.episode_id });
        return observationReply(res, ctx.maxReplyBytes);
      }
      case "step": {
        const parsed = WsStepDataSchema.safeParse(msg.data);
        if (!parsed.success) {
          return wsError("VALIDATION_ERROR", firstIssue(parsed.error, "Invalid action."), "validation_error");
        }
        const { body } = await ctx.service.step(ctx.tenantId, await sessionEpisode(ctx), {
          code: wellFormed(parsed.data.code),
          ...(parsed.data.timeout_s != null ? { timeout_s: parsed.data.timeout_s } : {}),
          ...(parsed.data.request_id != null ? { request_id: wellFormed(parsed.data.request_id) } : {}),
        });
        return observationReply(body, ctx.maxReplyBytes);
      }
      case "state": {
        const { episodeId } = await ctx.session.load();
        if (episodeId === null) return { type: "state", data: { ...NO_EPISODE_STATE } };
        return { type: "state", data: await ctx.service.state(ctx.tenantId, episodeId) };
      }
      case "close":
        return WS_CLOSE_REPLY as Record<string, unknown>;
      default:
        return wsError("UNKNOWN_TYPE", `Unknown message type '${String(msg.type).slice(0, 64)}'.`);
    }
  } catch (err) {
    return errorReply(err);
  }
}
