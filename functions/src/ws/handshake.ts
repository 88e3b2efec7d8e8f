// What a `/ws` handshake presents: the API key and the episode to resume. One reading for both
// transports, so a client that authenticates against AWS authenticates against a local stack too:
// the WebSocket Lambda's $connect (ws-lambda.ts) and the local server's upgrade (local/api-server.ts
// passes the key on as `X-API-Key`; routes/openenv.ts attaches the episode).
//
// OpenEnv's client opens the socket with a URL only, so besides the headers of the HTTP API
// (`Authorization: Bearer`, `X-API-Key`, `X-Episode-Id`) the key may come as the `api_key` query
// parameter or as HTTP Basic, which WebSocket clients send for a URL's user information
// (`wss://apikey:<key>@host/ws`; a user name other than `apikey` is the episode to resume:
// `wss://<episode_id>:<key>@host/ws`), and the episode as the `episode_id` query parameter.
import { ApiError } from "../core/errors.js";
import { type HeaderSource, presentedApiKey } from "../tenancy/auth.js";

/** Episode ids a handshake may name (the ids the API makes and accepts). */
const EPISODE_ID = /^[A-Za-z0-9._:-]{1,255}$/;

export interface WsHandshake {
  /** The API key presented in any of the accepted forms; undefined when none. */
  readonly key?: string;
  /** The episode the connection continues; undefined for a new session. */
  readonly episodeId?: string;
}

function header(headers: Readonly<Record<string, string>>, name: string): string | undefined {
  return Object.entries(headers).find(([k]) => k.toLowerCase() === name)?.[1];
}

/**
 * `Authorization: Basic base64(<user>:<key>)`: the key is the password (or the user alone, without
 * one), and a user name other than `apikey` is the episode to continue.
 */
function basicAuth(headers: Readonly<Record<string, string>>): WsHandshake {
  const value = header(headers, "authorization");
  const encoded = value ? /^basic\s+(\S+)$/i.exec(value.trim())?.[1] : undefined;
  if (!encoded) return {};
  const decoded = Buffer.from(encoded, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  const user = (colon >= 0 ? decoded.slice(0, colon) : decoded).trim();
  const password = colon >= 0 ? decoded.slice(colon + 1).trim() : "";
  if (!password) return user ? { key: user } : {};
  return { key: password, ...(user && user.toLowerCase() !== "apikey" ? { episodeId: user } : {}) };
}

/**
 * The key and the episode of a handshake. The key: a header the HTTP API reads first, then
 * `?api_key=`, then HTTP Basic. The episode: `?episode_id=`, then `X-Episode-Id`, then the Basic
 * user name.
 */
export function readWsHandshake(
  headers: Readonly<Record<string, string>>,
  query: Readonly<Record<string, string | undefined>>,
): WsHandshake {
  const basic = basicAuth(headers);
  const key = presentedApiKey(headers as HeaderSource) ?? (query.api_key?.trim() || basic.key);
  const episodeId = query.episode_id ?? header(headers, "x-episode-id") ?? basic.episodeId;
  return { ...(key ? { key } : {}), ...(episodeId !== undefined ? { episodeId } : {}) };
}

/** Refuses (422) an episode id no episode can have, before anything is read for it. */
export function checkResumedEpisodeId(episodeId: string): void {
  if (!EPISODE_ID.test(episodeId)) {
    throw new ApiError(422, "validation_error", "episode_id must match [A-Za-z0-9._:-]{1,255}.");
  }
}

/**
 * The local upgrade request as the HTTP API's authentication reads it: a key presented only in the
 * URL (query or user information) is passed on as `X-API-Key`, as $connect does in AWS. Other
 * requests are returned unchanged.
 */
export function withHandshakeKey(request: Request): Request {
  if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") return request;
  const url = new URL(request.url);
  if (url.pathname !== "/ws") return request;
  const headers = Object.fromEntries(request.headers.entries());
  if (presentedApiKey(headers)) return request;
  const { key } = readWsHandshake(headers, Object.fromEntries(url.searchParams.entries()));
  if (!key) return request;
  const passed = new Headers(request.headers);
  passed.set("x-api-key", key);
  return new Request(request.url, { method: request.method, headers: passed });
}
