// OpenEnv's current client protocol: WebSocket `/ws`, one connection = one episode (session).
// Messages are JSON text frames (../shared/docs/openenv-protocol.md):
//   client: {"type":"reset","data":{...}} {"type":"step","data":{code,...}} {"type":"state"} {"type":"close"}
//   server: {"type":"observation","data":{observation,reward,done,...}} {"type":"state","data":{...}}
//           {"type":"error","data":{"message","code"}}
// The session runs on the same episode service as HTTP (durable, metered); served by the local
// stack (API Gateway HTTP APIs do not carry WebSockets).
import type { WSContext, WSEvents } from "hono/ws";
import { z } from "zod";
import type { EpisodeService, ResetOpts } from "./core/episodes.js";
import { ApiError } from "./core/errors.js";

const StepData = z.object({
  code: z.string(),
  timeout_s: z.number().positive().nullish(),
  request_id: z.string().min(1).max(255).nullish(),
});
const ResetData = z
  .object({
    seed: z.number().int().min(0).nullish(),
    episode_id: z
      .string()
      .regex(/^[A-Za-z0-9._:-]{1,255}$/)
      .nullish(),
    policy: z.enum(["openenv", "full"]).nullish(),
    additional_imports: z.array(z.string().max(255)).max(256).nullish(),
    step_timeout_s: z.number().positive().nullish(),
    ttl_s: z.number().int().positive().nullish(),
  })
  .nullish();

export interface WsSessionOpts {
  readonly episodes: EpisodeService;
  readonly tenantId: string;
  /** Runs each message inside the caller's tenant scope (quotas of its key). @default runs it directly */
  readonly runAs?: <T>(fn: () => Promise<T>) => Promise<T>;
}

function wsError(ws: WSContext, code: string, message: string): void {
  ws.send(JSON.stringify({ type: "error", data: { message, code } }));
}

function withoutNulls<T extends Record<string, unknown>>(
  o: T,
): Partial<{ [K in keyof T]: Exclude<T[K], null> }> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== null && v !== undefined)) as Partial<{
    [K in keyof T]: Exclude<T[K], null>;
  }>;
}

/** The event handlers of one `/ws` connection. Messages are handled one at a time, in order. */
export function wsSession(opts: WsSessionOpts): WSEvents {
  const { episodes, tenantId } = opts;
  const runAs = opts.runAs ?? (<T>(fn: () => Promise<T>) => fn());
  let episodeId: string | null = null;
  let queue: Promise<void> = Promise.resolve();

  const ensureEpisode = async (): Promise<string> => {
    if (episodeId === null) episodeId = (await episodes.reset(tenantId, {})).episode_id;
    return episodeId;
  };

  const handle = async (raw: string, ws: WSContext): Promise<void> => {
    let msg: { type?: unknown; data?: unknown };
    try {
      msg = JSON.parse(raw) as { type?: unknown; data?: unknown };
      if (typeof msg !== "object" || msg === null || Array.isArray(msg)) throw new Error("not an object");
    } catch {
      wsError(ws, "INVALID_JSON", "The message is not a JSON object.");
      return;
    }
    try {
      switch (msg.type) {
        case "reset": {
          const parsed = ResetData.safeParse(msg.data ?? {});
          if (!parsed.success) {
            wsError(ws, "VALIDATION_ERROR", parsed.error.issues[0]?.message ?? "Invalid reset data.");
            return;
          }
          const res = await runAs(() =>
            episodes.reset(tenantId, withoutNulls(parsed.data ?? {}) as ResetOpts),
          );
          episodeId = res.episode_id;
          ws.send(JSON.stringify({ type: "observation", data: res }));
          return;
        }
        case "step": {
          const parsed = StepData.safeParse(msg.data);
          if (!parsed.success) {
            wsError(ws, "VALIDATION_ERROR", parsed.error.issues[0]?.message ?? "Invalid action.");
            return;
          }
          const { body } = await runAs(async () =>
            episodes.step(tenantId, await ensureEpisode(), {
              code: parsed.data.code,
              ...(parsed.data.timeout_s != null ? { timeout_s: parsed.data.timeout_s } : {}),
              ...(parsed.data.request_id != null ? { request_id: parsed.data.request_id } : {}),
            }),
          );
          ws.send(JSON.stringify({ type: "observation", data: body }));
          return;
        }
        case "state": {
          const state = await runAs(async () => episodes.state(tenantId, await ensureEpisode()));
          ws.send(JSON.stringify({ type: "state", data: state }));
          return;
        }
        case "close":
          ws.close(1000, "closed by client");
          return;
        default:
          wsError(ws, "UNKNOWN_TYPE", `Unknown message type '${String(msg.type)}'.`);
      }
    } catch (err) {
      if (err instanceof ApiError) {
        const code =
          err.status === 422 ? "VALIDATION_ERROR" : err.status === 404 ? "SESSION_ERROR" : "EXECUTION_ERROR";
        wsError(ws, code, err.message);
      } else {
        console.error(JSON.stringify({ level: "ERROR", message: "ws message failed", error: String(err) }));
        wsError(ws, "EXECUTION_ERROR", "Internal error.");
      }
    }
  };

  return {
    onMessage(evt, ws) {
      const data = evt.data;
      const text = typeof data === "string" ? data : Buffer.from(data as ArrayBuffer).toString("utf8");
      queue = queue.then(() => handle(text, ws));
    },
  };
}
