// OpenEnv's WebSocket protocol scenario, one copy for every transport that serves `/ws`: the local
// `/ws` (test/api/websocket.test.ts) and the AWS WebSocket Lambda's bundle behind an API Gateway
// stand-in (infra/test/ws-bundle.test.ts) run these same cases, so the two paths cannot drift.
// Cases that depend on one transport (the local queue, API Gateway's limits) stay in their suites.
import { expect, it } from "vitest";
import WebSocket from "ws";

/** A message of the protocol as received. */
export interface WsMessage {
  type: string;
  data: Record<string, unknown> & {
    observation?: { stdout: string; stderr: string; exit_code: number };
    info?: Record<string, unknown>;
  };
}

/** An open connection with a queue of received messages. */
export interface WsConnection {
  readonly ws: WebSocket;
  next(): Promise<WsMessage>;
  /** The next message's text as it came (JSON.parse cannot tell -1 from -1.0). */
  nextRaw(): Promise<string>;
  send(msg: unknown): void;
  readonly closed: Promise<{ code: number; reason: string }>;
}

/** A refused handshake: the HTTP status and body the server answered. */
export class HandshakeRefused extends Error {
  constructor(
    readonly status: number | undefined,
    readonly body: string,
  ) {
    super(`handshake refused: ${status}`);
  }
}

const opened: WebSocket[] = [];

/** Opens `<url>` (a `ws://` URL) with `headers`; rejects with {@link HandshakeRefused}. */
export async function openWs(url: string, headers: Record<string, string> = {}): Promise<WsConnection> {
  const ws = new WebSocket(url, { headers });
  const inbox: string[] = [];
  const waiters: Array<(text: string) => void> = [];
  ws.on("message", (data) => {
    const text = String(data);
    const waiter = waiters.shift();
    if (waiter) waiter(text);
    else inbox.push(text);
  });
  const closed = new Promise<{ code: number; reason: string }>((res) =>
    ws.once("close", (code, reason) => res({ code, reason: String(reason) })),
  );
  await new Promise<void>((res, rej) => {
    ws.once("open", () => res());
    ws.once("unexpected-response", (_req, response) => {
      let body = "";
      response.on("data", (c: Buffer) => {
        body += c.toString("utf8");
      });
      response.on("end", () => rej(new HandshakeRefused(response.statusCode, body)));
    });
    ws.once("error", rej);
  });
  opened.push(ws);
  const nextRaw = () => {
    const text = inbox.shift();
    return text !== undefined ? Promise.resolve(text) : new Promise<string>((res) => waiters.push(res));
  };
  return {
    ws,
    closed,
    nextRaw,
    next: async () => JSON.parse(await nextRaw()) as WsMessage,
    send: (msg) => ws.send(typeof msg === "string" ? msg : JSON.stringify(msg)),
  };
}

/** Closes every connection {@link openWs} opened (call in `afterEach`). */
export function closeOpenedWs(): void {
  for (const ws of opened.splice(0)) ws.close();
}

/** What the scenario needs from a deployment of `/ws`. */
export interface WsScenarioTarget {
  /** A new authenticated connection to `<base>/ws`. */
  connect(): Promise<WsConnection>;
  /** The status of an HTTP request to the same deployment, as the same tenant. */
  httpStatus(method: string, path: string, body?: unknown): Promise<number>;
}

/** Registers the scenario's cases (`it`s) in the calling `describe`. */
export function openEnvWsScenario(target: () => WsScenarioTarget): void {
  it("reset, step and state over one connection, keeping Python state", async () => {
    const c = await target().connect();
    c.send({ type: "reset", data: {} });
    const reset = await c.next();
    expect(reset.type).toBe("observation");
    expect(reset.data.observation).toEqual({ stdout: "", stderr: "", exit_code: 0 });
    expect(reset.data.reward).toBe(0);
    c.send({ type: "step", data: { code: "x = 20" } });
    await c.next();
    c.send({ type: "step", data: { code: "x * 2 + 2" } });
    const step = await c.next();
    expect(step).toMatchObject({
      type: "observation",
      data: { observation: { stdout: "42", stderr: "", exit_code: 0 }, done: false, step_count: 2 },
    });
    expect(step.data.reward).toBeCloseTo(0.1, 10);
    c.send({ type: "state" });
    const state = await c.next();
    expect(state.type).toBe("state");
    expect(state.data).toMatchObject({ episode_id: reset.data.episode_id, step_count: 2, last_exit_code: 0 });
  });

  it("state before any reset answers the empty state, as OpenEnv's fresh environment", async () => {
    const c = await target().connect();
    c.send({ type: "state" });
    expect(await c.next()).toEqual({
      type: "state",
      data: { episode_id: null, step_count: 0, last_exit_code: 0 },
    });
    // A step still runs without a reset (OpenEnv steps its fresh environment): it starts the episode.
    c.send({ type: "step", data: { code: "1 + 1" } });
    const step = await c.next();
    expect(step.data).toMatchObject({ step_count: 1, observation: { stdout: "2" } });
    c.send({ type: "state" });
    expect((await c.next()).data).toMatchObject({ episode_id: step.data.episode_id, step_count: 1 });
  });

  it("two connections are two episodes", async () => {
    const a = await target().connect();
    const b = await target().connect();
    a.send({ type: "step", data: { code: "who = 'a'" } });
    b.send({ type: "step", data: { code: "who = 'b'" } });
    await Promise.all([a.next(), b.next()]);
    a.send({ type: "step", data: { code: "who" } });
    b.send({ type: "step", data: { code: "who" } });
    expect((await a.next()).data.observation?.stdout).toBe('"a"');
    expect((await b.next()).data.observation?.stdout).toBe('"b"');
  });

  it("answers bad messages with OpenEnv's error shape and codes and keeps the connection", async () => {
    const c = await target().connect();
    c.send("{not json");
    expect(await c.next()).toEqual({
      type: "error",
      data: { code: "INVALID_JSON", message: expect.any(String) },
    });
    c.send({ type: "dance" });
    expect(await c.next()).toEqual({
      type: "error",
      data: { code: "UNKNOWN_TYPE", message: expect.any(String) },
    });
    c.send({ type: "step", data: { code: 5 } });
    expect(await c.next()).toEqual({
      type: "error",
      data: { code: "VALIDATION_ERROR", message: expect.any(String), error_code: "validation_error" },
    });
    c.send({ type: "step", data: { code: "1 + 1" } });
    expect((await c.next()).data.observation?.stdout).toBe("2");
  });

  it("refuses an action with unknown members, as OpenEnv's CodeAction, and writes rewards as floats", async () => {
    const c = await target().connect();
    c.send({ type: "step", data: { code: "1", lint: true } });
    expect(await c.next()).toMatchObject({ type: "error", data: { code: "VALIDATION_ERROR" } });
    c.send({ type: "step", data: { code: `import os\n# ${"x".repeat(100)}`, request_id: "ws-float" } });
    const raw = await c.nextRaw();
    expect(raw).toContain('"reward":-1.0');
    expect((JSON.parse(raw) as WsMessage).data.reward).toBe(-1);
  });

  it("close ends the session", async () => {
    const c = await target().connect();
    c.send({ type: "close" });
    expect((await c.closed).code).toBe(1000);
  });

  it("validates reset options with the HTTP /reset schema", async () => {
    const c = await target().connect();
    const bad: unknown[] = [
      { additional_imports: ["os; rm -rf /"] },
      { episode_id: "has space" },
      { seed: -1 },
      { policy: "root" },
      { step_timeout_s: 10_000 },
      { ttl_s: 10 ** 9 },
    ];
    for (const data of bad) {
      c.send({ type: "reset", data });
      const reply = await c.next();
      expect(reply, JSON.stringify(data)).toMatchObject({
        type: "error",
        data: { code: "VALIDATION_ERROR" },
      });
      // The same body over HTTP is refused too.
      expect(await target().httpStatus("POST", "/reset", data), JSON.stringify(data)).toBe(422);
    }
    c.send({ type: "reset", data: { additional_imports: ["json.decoder"] } });
    expect((await c.next()).type).toBe("observation");
  });
}
