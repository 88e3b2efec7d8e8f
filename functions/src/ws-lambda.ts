// AWS entry of OpenEnv's WebSocket protocol: an API Gateway WebSocket API ($connect, $disconnect,
// $default) -> the transport-independent `handleWsMessage` (ws/protocol.ts) on the same core as
// HTTP and the local `/ws`. Any Lambda instance may serve any message: the session (tenant, key,
// episode) lives in a DynamoDB connection item (store/connections.ts), not in a process.
//
// - $connect authenticates the API key (`Authorization: Bearer`, `X-API-Key`, the `api_key` query
//   parameter, or HTTP Basic with the key as password, which WebSocket clients send for a URL with
//   user information: `wss://apikey:<key>@host/ws`, for clients that take a URL only, like
//   OpenEnv's) and may attach an existing episode (`episode_id` query parameter, `X-Episode-Id`,
//   or the URL's user name: `wss://<episode_id>:<key>@host/ws`): that is how a client resumes
//   after API Gateway's 10-minute idle or 2-hour limit. A refusal is the handshake's HTTP status.
// - $default answers every message through the route response, in OpenEnv's shapes, cut to
//   API Gateway's 128 KB message limit; `{"type":"close"}` closes the connection through the
//   management API. The key is re-checked per message (cached like HTTP's), so a revoked key stops
//   an open connection too: its error goes out by postToConnection, then the connection is closed.
// - $disconnect deletes the connection item; the episode stays until its own TTL.

import { Logger } from "@aws-lambda-powertools/logger";
import {
  ApiGatewayManagementApiClient,
  DeleteConnectionCommand,
  GoneException,
  PostToConnectionCommand,
} from "@aws-sdk/client-apigatewaymanagementapi";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { API_ENV, configFromEnv } from "./config.js";
import { ApiError, UnauthorizedError } from "./core/errors.js";
import { buildDeps } from "./deps.js";
import { withDeadline } from "./executor/deadline.js";
import { fitStepBody, utf8Size } from "./http/fit-step-body.js";
import { toWireJson } from "./http/wire-json.js";
import { type ConnectionRecord, ConnectionStore } from "./store/connections.js";
import { presentedApiKey, type TenantContext } from "./tenancy/auth.js";
import { type ApiKeyRecord, hashApiKey } from "./tenancy/keys.js";
import { applyQuotaOverrides } from "./tenancy/quotas.js";
import { checkResumedEpisodeId, readWsHandshake } from "./ws/handshake.js";
import { handleWsMessage, WS_CLOSE_REPLY, type WsContext, wsError } from "./ws/protocol.js";

/** API Gateway's largest WebSocket message, both ways (frames of 32 KB are joined by API Gateway). */
export const WS_MESSAGE_LIMIT_BYTES = 128 * 1024;
/** Time kept after the deadline's wait ends to write the metering and answer. */
const ANSWER_MARGIN_MS = 1000;

/** The fields of an API Gateway WebSocket event (Lambda proxy) this handler reads. */
export interface WebSocketEvent {
  readonly requestContext: {
    readonly routeKey: string;
    readonly eventType: "CONNECT" | "MESSAGE" | "DISCONNECT";
    readonly connectionId: string;
    readonly domainName?: string;
    readonly stage?: string;
  };
  readonly headers?: Readonly<Record<string, string>> | null;
  readonly queryStringParameters?: Readonly<Record<string, string>> | null;
  readonly body?: string | null;
  readonly isBase64Encoded?: boolean;
}

/** A Lambda proxy result: the handshake status on $connect, the reply message on $default. */
export interface WebSocketResult {
  readonly statusCode: number;
  readonly body?: string;
}

interface LambdaContext {
  getRemainingTimeInMillis?: () => number;
}

const config = configFromEnv({ [API_ENV.auth]: "on", ...process.env });
const dynamodbEndpoint = process.env[API_ENV.dynamodbEndpoint];
const executorEndpoint = process.env[API_ENV.executorEndpoint];
const deps = buildDeps({
  config,
  ...(dynamodbEndpoint ? { dynamodbEndpoint } : {}),
  ...(executorEndpoint ? { executorEndpoint } : {}),
});
const connections = new ConnectionStore(
  DynamoDBDocumentClient.from(deps.dynamodb, { marshallOptions: { removeUndefinedValues: true } }),
  config.tableName,
);
const logger = new Logger({ serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? "coding-env-ws" });
const managementClients = new Map<string, ApiGatewayManagementApiClient>();

/** The management API of the stage: `CODING_ENV_WS_MANAGEMENT_ENDPOINT` (the template sets it), else the event's. */
function managementApi(event: WebSocketEvent): ApiGatewayManagementApiClient {
  const { domainName, stage } = event.requestContext;
  const endpoint = process.env[API_ENV.wsManagementEndpoint] || `https://${domainName}/${stage}`;
  let client = managementClients.get(endpoint);
  if (!client) {
    client = new ApiGatewayManagementApiClient({ endpoint, region: process.env.AWS_REGION, maxAttempts: 2 });
    managementClients.set(endpoint, client);
  }
  return client;
}

/**
 * Closes the connection through the management API, after sending `lastWords` on it: a route
 * response would arrive after the close, so the reason goes out by postToConnection first.
 */
async function closeConnection(event: WebSocketEvent, lastWords?: Record<string, unknown>): Promise<void> {
  const api = managementApi(event);
  const ConnectionId = event.requestContext.connectionId;
  try {
    if (lastWords)
      await api.send(new PostToConnectionCommand({ ConnectionId, Data: JSON.stringify(lastWords) }));
    await api.send(new DeleteConnectionCommand({ ConnectionId }));
  } catch (err) {
    if (!(err instanceof GoneException)) logger.error("ws close failed", { error: String(err) });
  }
}

// ---- Keys, re-checked per message with the same cache lifetime as the HTTP authenticator --------
const authCacheTtlMs = Number(process.env[API_ENV.authCacheTtlMs] ?? 10_000) || 0;
const keyCache = new Map<string, { record: ApiKeyRecord | undefined; expiresAt: number }>();

async function keyRecord(keyHash: string): Promise<ApiKeyRecord | undefined> {
  const now = Date.now();
  const hit = keyCache.get(keyHash);
  if (hit && hit.expiresAt > now) return hit.record;
  const record = await deps.tenancy.keys.findByHash(keyHash);
  if (keyCache.size >= 10_000) keyCache.clear();
  keyCache.set(keyHash, { record, expiresAt: now + authCacheTtlMs });
  return record;
}

/** The tenant of an open connection, as its key says now (revoked or unknown: unauthorized). */
async function tenantOf(connection: ConnectionRecord): Promise<TenantContext> {
  if (!config.authRequired) return deps.tenancy.authenticate({});
  if (!connection.keyHash) throw new UnauthorizedError();
  const record = await keyRecord(connection.keyHash);
  if (!record || record.revoked || record.tenantId !== connection.tenantId) throw new UnauthorizedError();
  return {
    tenantId: record.tenantId,
    keyId: record.keyId,
    quotas: applyQuotaOverrides(deps.tenancy.defaultQuotas, record.quotas),
  };
}

function refusal(err: ApiError): WebSocketResult {
  return {
    statusCode: err.status,
    body: JSON.stringify({ error: { code: err.code, message: err.message } }),
  };
}

// ---- Routes -------------------------------------------------------------------------------------
async function onConnect(event: WebSocketEvent): Promise<WebSocketResult> {
  const headers = { ...(event.headers ?? {}) };
  const query = event.queryStringParameters ?? {};
  // OpenEnv's client opens the socket with a URL only: the key (and the episode) may come in it.
  // (ws/handshake.ts, the local server's upgrade reads it with the same function).
  const { key, episodeId: resume } = readWsHandshake(headers, query);
  if (key && !presentedApiKey(headers)) headers["x-api-key"] = key;
  let tenant: TenantContext;
  try {
    tenant = await deps.tenancy.authenticate(headers);
  } catch (err) {
    if (err instanceof ApiError) return refusal(err);
    throw err;
  }
  if (resume !== undefined) {
    try {
      checkResumedEpisodeId(resume);
      // The tenant's own episode only: another tenant's id is simply not found.
      await deps.tenancy.runAs(tenant, () => deps.episodes.state(tenant.tenantId, resume));
    } catch (err) {
      if (err instanceof ApiError) return refusal(err);
      throw err;
    }
  }
  await connections.put({
    connectionId: event.requestContext.connectionId,
    tenantId: tenant.tenantId,
    keyHash: key && config.authRequired ? hashApiKey(key) : null,
    episodeId: resume ?? null,
  });
  return { statusCode: 200 };
}

/**
 * The reply as text within API Gateway's message limit: an observation over it keeps its fields and
 * gives way in its long strings (http/fit-step-body.ts); anything else over the limit becomes an
 * error reply.
 */
export function fitReply(reply: Record<string, unknown>, limit = WS_MESSAGE_LIMIT_BYTES): string {
  const text = toWireJson(reply);
  if (Buffer.byteLength(text, "utf8") <= limit) return text;
  if (reply.type === "observation") {
    const fitted = fitStepBody(
      reply.data,
      (data) => ({ ...reply, data }),
      limit,
      utf8Size,
      "websocket_message_limit",
    );
    if (fitted !== undefined) return fitted;
  }
  return JSON.stringify(
    wsError(
      "EXECUTION_ERROR",
      `The reply is over API Gateway's ${limit / 1024} KB WebSocket message limit. A step that ran is stored: read it with GET /episodes/{id}/history.`,
      "reply_too_large",
    ),
  );
}

async function onMessage(event: WebSocketEvent, context: LambdaContext): Promise<WebSocketResult> {
  const connectionId = event.requestContext.connectionId;
  const connection = await connections.get(connectionId);
  if (!connection) {
    await closeConnection(
      event,
      wsError("SESSION_ERROR", "This connection is closed; open a new one.", "connection_gone"),
    );
    return { statusCode: 200 };
  }
  let tenant: TenantContext;
  try {
    tenant = await tenantOf(connection);
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    await closeConnection(event, wsError("SESSION_ERROR", err.message, err.code));
    return { statusCode: 200 };
  }
  let episodeId = connection.episodeId;
  const ctx: WsContext = {
    service: deps.episodes,
    tenantId: tenant.tenantId,
    maxMessageBytes: WS_MESSAGE_LIMIT_BYTES,
    // Figures that would push a reply past API Gateway's frame limit are left out (with a note)
    // before fitReply has to cut the step's outputs.
    maxReplyBytes: WS_MESSAGE_LIMIT_BYTES,
    session: {
      load: async () => ({ episodeId }),
      save: async (state) => {
        if (state.episodeId === episodeId) return;
        episodeId = state.episodeId;
        await connections.setEpisode(connectionId, state.episodeId);
      },
    },
  };
  const raw = event.isBase64Encoded
    ? Buffer.from(event.body ?? "", "base64").toString("utf8")
    : (event.body ?? "");
  const now = Date.now();
  let deadline =
    config.requestDeadlineS > 0 ? now + config.requestDeadlineS * 1000 : Number.POSITIVE_INFINITY;
  const remaining = context.getRemainingTimeInMillis?.();
  if (typeof remaining === "number") deadline = Math.min(deadline, now + remaining - ANSWER_MARGIN_MS);
  const run = () => deps.tenancy.runAs(tenant, () => handleWsMessage(raw, ctx));
  const reply = deadline === Number.POSITIVE_INFINITY ? await run() : await withDeadline(deadline, run);
  if (reply === WS_CLOSE_REPLY) {
    await closeConnection(event);
    return { statusCode: 200 };
  }
  return { statusCode: 200, body: fitReply(reply) };
}

export async function handler(event: WebSocketEvent, context: LambdaContext = {}): Promise<WebSocketResult> {
  const started = Date.now();
  const route = event.requestContext.routeKey;
  let result: WebSocketResult;
  try {
    if (route === "$connect") result = await onConnect(event);
    else if (route === "$disconnect") {
      await connections.delete(event.requestContext.connectionId);
      result = { statusCode: 200 };
    } else result = await onMessage(event, context);
  } catch (err) {
    // Never Lambda's own error: API Gateway would send `{"message":"Internal server error"}`.
    logger.error("ws request failed", {
      route,
      error: err instanceof Error ? `${err.name}: ${err.message}` : String(err),
    });
    result =
      route === "$connect"
        ? {
            statusCode: 500,
            body: JSON.stringify({ error: { code: "internal_error", message: "Internal error." } }),
          }
        : route === "$disconnect"
          ? { statusCode: 200 }
          : {
              statusCode: 200,
              body: JSON.stringify(wsError("EXECUTION_ERROR", "Internal error.", "internal_error")),
            };
  }
  // Like the HTTP API: refusals at INFO, every request only at DEBUG (a log line per step costs).
  const line = { route, status: result.statusCode, ms: Date.now() - started };
  if (result.statusCode >= 400) logger.info("ws refused", line);
  else logger.debug("ws", line);
  return result;
}
