// The local `/ws` transport (hono/ws on @hono/node-server): one in-memory session per connection,
// messages handled one at a time in order by ws/protocol.ts. The queue of a connection is bounded:
// a message that finds it full is answered at once with a CAPACITY_REACHED error (the connection
// stays open). When the connection closes, its queued messages are dropped unhandled (the one
// being handled finishes; its reply goes nowhere).
import type { WSContext, WSEvents } from "hono/ws";
import type { EpisodeService } from "../core/episodes.js";
import { toWireJson } from "../http/wire-json.js";
import { handleWsMessage, WS_CLOSE_REPLY, type WsSessionState, wsError } from "./protocol.js";

export interface NodeWsSessionOpts {
  readonly service: EpisodeService;
  readonly tenantId: string;
  /** The episode the connection continues (named at the handshake). @default none: a new session */
  readonly episodeId?: string;
  /** Runs each message inside the caller's tenant scope (quotas of its key). @default runs it directly */
  readonly runAs?: <T>(fn: () => Promise<T>) => Promise<T>;
  /** Messages waiting behind the one being handled. @default 16 */
  readonly maxQueuedMessages?: number;
  /** Largest message handled (bytes). @default 2 MiB (protocol.ts) */
  readonly maxMessageBytes?: number;
}

/** The event handlers of one `/ws` connection. */
export function nodeWsSession(opts: NodeWsSessionOpts): WSEvents {
  const runAs = opts.runAs ?? (<T>(fn: () => Promise<T>) => fn());
  const maxQueued = opts.maxQueuedMessages ?? 16;
  let state: WsSessionState = { episodeId: opts.episodeId ?? null };
  const ctx = {
    service: opts.service,
    tenantId: opts.tenantId,
    session: {
      load: async () => state,
      save: async (next: WsSessionState) => {
        state = next;
      },
    },
    ...(opts.maxMessageBytes !== undefined ? { maxMessageBytes: opts.maxMessageBytes } : {}),
  };
  const queue: string[] = [];
  let busy = false;
  let closed = false;

  const send = (ws: WSContext, reply: Record<string, unknown>) => {
    if (!closed) ws.send(toWireJson(reply));
  };

  const drain = async (ws: WSContext): Promise<void> => {
    busy = true;
    try {
      for (let raw = queue.shift(); raw !== undefined && !closed; raw = queue.shift()) {
        const reply = await runAs(() => handleWsMessage(raw as string, ctx)).catch(() =>
          wsError("EXECUTION_ERROR", "Internal error.", "internal_error"),
        );
        if (reply === WS_CLOSE_REPLY) {
          closed = true;
          queue.length = 0;
          ws.close(1000, "closed by client");
          return;
        }
        send(ws, reply);
      }
    } finally {
      busy = false;
    }
  };

  return {
    onMessage(evt, ws) {
      if (closed) return;
      const data = evt.data;
      const text =
        typeof data === "string"
          ? data
          : data instanceof Blob
            ? null
            : Buffer.from(data as ArrayBuffer).toString("utf8");
      if (text === null) {
        send(ws, wsError("VALIDATION_ERROR", "Messages must be JSON text.", "bad_request"));
        return;
      }
      if (queue.length >= maxQueued) {
        send(
          ws,
          wsError(
            "CAPACITY_REACHED",
            `${maxQueued} messages are already waiting on this connection; this one was not handled. Send the next after a reply.`,
            "too_many_queued_messages",
          ),
        );
        return;
      }
      queue.push(text);
      if (!busy) void drain(ws);
    },
    onClose() {
      closed = true;
      queue.length = 0;
    },
    onError() {
      closed = true;
      queue.length = 0;
    },
  };
}
