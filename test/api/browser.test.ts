// The API in a browser world (issue 10 point 10): what any web page could make a developer's
// browser send to the local stack is refused: non-JSON bodies (no preflight needed for text/plain),
// other Host names (DNS rebinding), and cross-origin requests from origins not on the allow-list.
import { request } from "node:http";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createApp } from "../../functions/src/app.js";
import { type ApiConfig, defaultConfig } from "../../functions/src/config.js";
import { buildDeps } from "../../functions/src/deps.js";
import { type DynaliteHandle, startDynalite } from "../../functions/src/local/dynalite-server.js";
import { ensureTable } from "../../functions/src/local/stack.js";

const baseUrl = inject("baseUrl");

interface RawReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One request with exactly these headers (Host included), over real HTTP. */
function raw(url: string, method: string, path: string, headers: Record<string, string>, body?: string) {
  return new Promise<RawReply>((resolve, reject) => {
    const req = request(`${url}${path}`, { method, headers, setHost: !("host" in headers) }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString(),
        }),
      );
    });
    req.on("error", reject);
    req.end(body);
  });
}

function errorCodeOf(reply: RawReply): string {
  return (JSON.parse(reply.body) as { error: { code: string } }).error.code;
}

const port = new URL(baseUrl).port;

describe("the local stack refuses what a web page could make a browser send", () => {
  it("415 unsupported_media_type for a body that is not application/json; the code never runs", async () => {
    // A Host no URL can be built from is refused before routing.
    expect([400, 421]).toContain((await raw(baseUrl, "GET", "/health", { host: "localhost@evil" })).status);
    const reset = await raw(baseUrl, "POST", "/reset", { "content-type": "application/json" }, "{}");
    const episodeId = (JSON.parse(reset.body) as { episode_id: string }).episode_id;
    const step = JSON.stringify({ action: { code: "x = 1" }, episode_id: episodeId });
    const attempts: Array<Record<string, string>> = [
      { "content-type": "text/plain" },
      { "content-type": "text/plain;charset=UTF-8" },
      { "content-type": "application/x-www-form-urlencoded" },
      { "content-type": "multipart/form-data; boundary=x" },
      {},
    ];
    for (const headers of attempts) {
      const r = await raw(baseUrl, "POST", "/step", headers, step);
      expect(r.status, JSON.stringify(headers)).toBe(415);
      expect(errorCodeOf(r)).toBe("unsupported_media_type");
    }
    expect((await raw(baseUrl, "POST", "/reset", { "content-type": "text/plain" }, "")).status).toBe(415);
    const state = await raw(baseUrl, "GET", `/episodes/${episodeId}`, {});
    expect(JSON.parse(state.body)).toMatchObject({ step_count: 0 });
    // JSON with parameters and bodiless requests pass.
    const ok = await raw(
      baseUrl,
      "POST",
      "/step",
      { "content-type": "Application/JSON; charset=utf-8" },
      step,
    );
    expect(ok.status).toBe(200);
    expect((await raw(baseUrl, "POST", `/episodes/${episodeId}/fork`, {})).status).toBe(201);
  });

  it("421 host_not_allowed for a Host that is not this server (DNS rebinding)", async () => {
    for (const host of [`evil.example:${port}`, "evil.example", `127.0.0.1.evil.example:${port}`]) {
      const r = await raw(baseUrl, "GET", "/health", { host });
      expect(r.status, host).toBe(421);
      expect(errorCodeOf(r)).toBe("host_not_allowed");
    }
    // A Host no URL can be built from is refused before routing.
    expect([400, 421]).toContain((await raw(baseUrl, "GET", "/health", { host: "localhost@evil" })).status);
    const reset = await raw(
      baseUrl,
      "POST",
      "/reset",
      { host: "rebound.example", "content-type": "application/json" },
      "{}",
    );
    expect(reset.status).toBe(421);
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `LOCALHOST:${port}`, "localhost"]) {
      expect((await raw(baseUrl, "GET", "/health", { host })).status, host).toBe(200);
    }
  });

  it("403 origin_not_allowed for cross-origin requests (preflights too); same-origin passes", async () => {
    const evil = { origin: "https://evil.example", "content-type": "application/json" };
    const reset = await raw(baseUrl, "POST", "/reset", evil, "{}");
    expect(reset.status).toBe(403);
    expect(errorCodeOf(reset)).toBe("origin_not_allowed");
    expect(reset.headers["access-control-allow-origin"]).toBeUndefined();
    expect((await raw(baseUrl, "GET", "/health", { origin: "null" })).status).toBe(403);
    const preflight = await raw(baseUrl, "OPTIONS", "/step", {
      origin: "https://evil.example",
      "access-control-request-method": "POST",
      "access-control-request-headers": "content-type",
    });
    expect(preflight.status).toBe(403);
    expect(preflight.headers["access-control-allow-origin"]).toBeUndefined();
    // The /web page's own requests carry its origin: they pass.
    const own = await raw(
      baseUrl,
      "POST",
      "/reset",
      { origin: baseUrl, "content-type": "application/json" },
      "{}",
    );
    expect(own.status).toBe(200);
  });

  it("a WebSocket handshake from another origin is refused", async () => {
    const r = await raw(baseUrl, "GET", "/ws", {
      origin: "https://evil.example",
      connection: "Upgrade",
      upgrade: "websocket",
      "sec-websocket-version": "13",
      "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
    });
    expect(r.status).toBe(403);
  });
});

describe("settings: allowed origins (CORS) and hosts (AWS custom domains)", () => {
  let dynamo: DynaliteHandle;
  const servers: Array<{ url: string; close(): Promise<void> }> = [];

  async function startApp(config: ApiConfig, localBindAddress?: string): Promise<string> {
    const deps = buildDeps({
      config,
      dynamodbEndpoint: dynamo.endpoint,
      executorEndpoint: "http://127.0.0.1:9", // no step is run here
    });
    await ensureTable(deps.dynamodb, config.tableName);
    const app = createApp({ ...deps, ...(localBindAddress ? { localBindAddress } : {}) });
    const server = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" });
    await new Promise<void>((r) => server.once("listening", () => r()));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    servers.push({
      url,
      close: () =>
        new Promise<void>((r) => {
          deps.destroy();
          server.close(() => r());
        }),
    });
    return url;
  }

  beforeAll(async () => {
    dynamo = await startDynalite({});
  });
  afterAll(async () => {
    for (const s of servers) await s.close();
    await dynamo.stop();
  });

  it("an allowed origin gets CORS answers, preflights included; others are still refused", async () => {
    const url = await startApp(
      { ...defaultConfig, tableName: "cors-test", allowedOrigins: ["https://notebook.example"] },
      "127.0.0.1",
    );
    const preflight = await raw(url, "OPTIONS", "/step", {
      origin: "https://notebook.example",
      "access-control-request-method": "POST",
      "access-control-request-headers": "content-type, authorization, x-episode-id",
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers["access-control-allow-origin"]).toBe("https://notebook.example");
    expect(String(preflight.headers["access-control-allow-methods"])).toContain("POST");
    expect(String(preflight.headers["access-control-allow-headers"])).toContain("content-type");
    const reset = await raw(
      url,
      "POST",
      "/reset",
      { origin: "https://notebook.example", "content-type": "application/json" },
      "{}",
    );
    expect(reset.status).toBe(200);
    expect(reset.headers["access-control-allow-origin"]).toBe("https://notebook.example");
    expect(String(reset.headers["access-control-expose-headers"])).toContain("Retry-After");
    const notFound = await raw(url, "GET", "/episodes/nope", { origin: "https://notebook.example" });
    expect(notFound.status).toBe(404);
    expect(notFound.headers["access-control-allow-origin"]).toBe("https://notebook.example");
    const other = await raw(url, "GET", "/health", { origin: "https://notebook.example.evil" });
    expect(other.status).toBe(403);
  });

  it("without a local bind address the Host check is off unless hosts are configured", async () => {
    const open = await startApp({ ...defaultConfig, tableName: "hosts-open" });
    expect(
      (await raw(open, "GET", "/health", { host: "abc123.execute-api.us-east-1.amazonaws.com" })).status,
    ).toBe(200);
    const pinned = await startApp({
      ...defaultConfig,
      tableName: "hosts-pinned",
      allowedHosts: ["api.example.com"],
    });
    expect((await raw(pinned, "GET", "/health", { host: "api.example.com" })).status).toBe(200);
    expect((await raw(pinned, "GET", "/health", { host: "evil.example" })).status).toBe(421);
    expect((await raw(pinned, "GET", "/health", { host: "localhost" })).status).toBe(421);
  });
});
