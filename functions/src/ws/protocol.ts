// OpenEnv's WebSocket protocol, independent of the transport: one client message in, one reply out.
// One connection is one session (one episode at a time). Messages are JSON text:
//   client: {"type":"reset","data":{...}} {"type":"step","data":{code,...}} {"type":"state"} {"type":"close"}
//   server: {"type":"observation","data":{observation,reward,done,...}} {"type":"state","data":{...}}
//           {"type":"error","data":{"message","code","error_code"?}}
// The local `/ws` (ws/node.ts, session in memory) and the AWS WebSocket Lambda (session in a
// DynamoDB connection item) both call `handleWsMessage`. Messages are validated with the HTTP
// schemas (`/reset`'s, and `/step`'s action, unknown members refused as OpenEnv does); errors are OpenEnv's error codes, our API code in `error_code`.
import type { z } from "zod";
import type { EpisodeService, ResetOpts } from "../core/episodes.js";
import { ApiError } from "../core/errors.js";
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

/** An error message in OpenEnv's WebSocket shape. */
export function wsError(code: WsErrorCode, message: string, apiCode?: string): Record<string, unknown> {
  return { type: "error", data: { message, code, ...(apiCode ? { error_code: apiCode } : {}) } };
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
    return wsError(code, err.message, err.code);
  }
  console.error(JSON.stringify({ level: "ERROR", message: "ws message failed", error: String(err) }));
  return wsError("EXECUTION_ERROR", "Internal error.", "internal_error");
}

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
        return { type: "observation", data: res };
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
        return { type: "observation", data: body };
      }
      case "state":
        return { type: "state", data: await ctx.service.state(ctx.tenantId, await sessionEpisode(ctx)) };
      case "close":
        return WS_CLOSE_REPLY as Record<string, unknown>;
      default:
        return wsError("UNKNOWN_TYPE", `Unknown message type '${String(msg.type).slice(0, 64)}'.`);
    }
  } catch (err) {
    return errorReply(err);
  }
}
