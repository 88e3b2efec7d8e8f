// One API instance of the local stack: its own dependencies (SDK clients, EpisodeService, caches)
// and HTTP server (with OpenEnv's `/ws` when the `ws` package is there). The stack runs one in its
// own process, or N in child processes behind a proxy (api-instances.ts).
import type { AddressInfo } from "node:net";
import { serve, upgradeWebSocket, type WebSocketServerLike } from "@hono/node-server";
import { createApp } from "../app.js";
import type { ApiConfig } from "../config.js";
import { type BuiltDeps, buildDeps, type LocalCredentials } from "../deps.js";
import { webAssets } from "../web-assets.js";
import { withHandshakeKey } from "../ws/handshake.js";
import { consoleRequestLogger, requestLogEnabled } from "./request-log.js";

export interface ApiServerOpts {
  readonly config: ApiConfig;
  readonly env: Record<string, string | undefined>;
  readonly dynamodbEndpoint: string;
  readonly executorEndpoint: string;
  readonly credentials: LocalCredentials;
  /** Where this server listens. */
  readonly host: string;
  readonly port: number;
  /** The address clients reach the stack on (the Host check allows it). */
  readonly publicHost: string;
  /** Named in an `x-coding-env-instance` response header (several instances only). */
  readonly instanceName?: string;
}

export interface ApiServer {
  readonly deps: BuiltDeps;
  readonly port: number;
  readonly server: ReturnType<typeof serve>;
  close(): Promise<void>;
}

async function createWebSocketServer(): Promise<WebSocketServerLike | undefined> {
  const moduleName = "ws"; // a variable: an optional dependency, loaded only here
  try {
    const mod = (await import(moduleName)) as {
      WebSocketServer: new (opts: { noServer: true; maxPayload: number }) => WebSocketServerLike;
    };
    return new mod.WebSocketServer({ noServer: true, maxPayload: 4 * 1024 * 1024 });
  } catch {
    return undefined;
  }
}

export async function startApiServer(opts: ApiServerOpts): Promise<ApiServer> {
  const deps = buildDeps({
    config: opts.config,
    dynamodbEndpoint: opts.dynamodbEndpoint,
    executorEndpoint: opts.executorEndpoint,
    env: opts.env,
    localCredentials: opts.credentials,
  });
  // OpenEnv's WebSocket client (`/ws`) needs the `ws` package; without it the stack serves HTTP only.
  const wsServer = await createWebSocketServer();
  const app = createApp({
    ...deps,
    webAssets,
    localBindAddress: opts.publicHost,
    ...(requestLogEnabled(opts.env) ? { logger: consoleRequestLogger() } : {}),
    ...(wsServer ? { upgradeWebSocket } : {}),
  });
  const server = serve({
    // A `/ws` handshake may carry its key in the URL (OpenEnv's client), read as in AWS's $connect.
    fetch: wsServer ? (request, env) => app.fetch(withHandshakeKey(request), env) : app.fetch,
    port: opts.port,
    hostname: opts.host,
    ...(wsServer ? { websocket: { server: wsServer } } : {}),
  });
  if (opts.instanceName !== undefined) {
    const name = opts.instanceName;
    server.prependListener("request", (_req, res) => res.setHeader("x-coding-env-instance", name));
  }
  await new Promise<void>((res, rej) => {
    server.once("listening", () => res());
    server.once("error", (err) => {
      deps.destroy();
      rej(err);
    });
  });
  if ("keepAliveTimeout" in server) server.keepAliveTimeout = 65_000;
  return {
    deps,
    port: (server.address() as AddressInfo).port,
    server,
    close: async () => {
      const ws = wsServer as { clients?: Set<{ terminate(): void }>; close?: () => void } | undefined;
      for (const client of ws?.clients ?? []) client.terminate();
      ws?.close?.();
      await new Promise<void>((res) => {
        server.close(() => res());
        if ("closeAllConnections" in server) server.closeAllConnections();
      });
      deps.destroy();
    },
  };
}
