import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from "node:http";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import { pathToFileURL } from "node:url";
import { inject } from "vitest";
import "./provided-context.js";

/** The URL of the real local stack started by the root globalSetup. */
export function stackUrl(): string {
  return inject("baseUrl");
}

/**
 * Node's arguments that run the TypeScript file `script` with tsx's loader: what `npx tsx script`
 * runs, without the launcher process tsx's command starts first (half of its start-up CPU).
 * @example await run(process.execPath, tsxArgs("quickstart.ts"), { cwd: projectDir });
 */
export function tsxArgs(script: string): string[] {
  return ["--import", pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href, script];
}

/** One request seen by {@link ForwardingProxy}. */
export interface ProxiedExchange {
  readonly method: string;
  readonly path: string;
  readonly requestBody: string;
  /** The upstream's status (also when the response was dropped on the way back). */
  readonly status: number;
  readonly responseHeaders: IncomingHttpHeaders;
  /** The upstream answered, but the proxy dropped the connection or answered 502 instead. */
  readonly fault: ProxyFault | undefined;
}

/**
 * What the proxy does instead of relaying the upstream's answer: `drop` cuts the connection (the
 * client sees a network error), `bad_gateway` answers a gateway's 502 page.
 */
export type ProxyFault = "drop" | "bad_gateway";

/** A request as it reached the proxy. */
export interface ReceivedRequest {
  readonly method: string;
  readonly path: string;
  readonly body: string;
}

/** Options of {@link startForwardingProxy}. */
export interface ForwardingProxyOpts {
  /** Called once per request after the upstream answered; a fault replaces that answer. */
  readonly fault?: (method: string, path: string, faultsSoFar: number) => ProxyFault | undefined;
}

/** A real HTTP proxy in front of the stack that records every exchange and can drop answers. */
export interface ForwardingProxy {
  readonly url: string;
  readonly exchanges: ProxiedExchange[];
  /** Every request, recorded on arrival (before the upstream answers). */
  readonly received: ReceivedRequest[];
  close(): Promise<void>;
}

/**
 * Starts a proxy on a free port forwarding to `upstream`. A dropped answer is the realistic
 * failure this simulates: the server ran the request and committed, the client never heard back.
 */
export async function startForwardingProxy(
  upstream: string,
  opts: ForwardingProxyOpts = {},
): Promise<ForwardingProxy> {
  const target = new URL(upstream);
  const exchanges: ProxiedExchange[] = [];
  const received: ReceivedRequest[] = [];
  let faults = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const requestBody = Buffer.concat(chunks);
      received.push({
        method: req.method ?? "GET",
        path: req.url ?? "/",
        body: requestBody.toString("utf8"),
      });
      const upstreamReq = httpRequest(
        {
          host: target.hostname,
          port: target.port,
          method: req.method,
          path: req.url,
          headers: { ...req.headers, host: target.host },
        },
        (upstreamRes) => {
          const body: Buffer[] = [];
          upstreamRes.on("data", (chunk: Buffer) => body.push(chunk));
          upstreamRes.on("end", () => {
            const method = req.method ?? "GET";
            const path = req.url ?? "/";
            const fault = opts.fault?.(method, path, faults);
            exchanges.push({
              method,
              path,
              requestBody: requestBody.toString("utf8"),
              status: upstreamRes.statusCode ?? 0,
              responseHeaders: upstreamRes.headers,
              fault,
            });
            if (fault !== undefined) faults++;
            if (fault === "drop") {
              req.socket.destroy();
              return;
            }
            if (fault === "bad_gateway") {
              res.writeHead(502, { "content-type": "application/json" });
              res.end(JSON.stringify({ message: "Internal Server Error" }));
              return;
            }
            res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
            res.end(Buffer.concat(body));
          });
        },
      );
      upstreamReq.on("error", () => req.socket.destroy());
      upstreamReq.end(requestBody);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    exchanges,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A canned HTTP answer for {@link startFakeServer}. */
export interface CannedResponse {
  readonly status: number;
  readonly headers?: Record<string, string>;
  readonly body: string;
}

/**
 * A real HTTP server answering canned responses in turn, for failures the local stack cannot
 * produce on demand (quota 429s, gateway 502/503 pages). Tests using it say "fake server".
 */
export async function startFakeServer(
  responses: readonly CannedResponse[],
): Promise<{ url: string; hits: string[]; close(): Promise<void> }> {
  const hits: string[] = [];
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      const canned = responses[Math.min(hits.length, responses.length - 1)];
      hits.push(`${req.method} ${req.url}`);
      if (canned === undefined) {
        res.writeHead(500).end();
        return;
      }
      res.writeHead(canned.status, { "content-type": "application/json", ...canned.headers });
      res.end(canned.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    hits,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
