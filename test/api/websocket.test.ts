// OpenEnv's current client protocol: WebSocket /ws, one connection = one episode.
import { afterEach, describe, expect, inject, it } from "vitest";
import WebSocket from "ws";

const wsUrl = `${inject("baseUrl").replace(/^http/, "ws")}/ws`;

interface Message {
  type: string;
  data: Record<string, unknown> & { observation?: { stdout: string; stderr: string; exit_code: number } };
}

/** A connection with a queue of received messages. */
async function connect(): Promise<{ ws: WebSocket; next(): Promise<Message>; send(msg: unknown): void }> {
  const ws = new WebSocket(wsUrl);
  const inbox: Message[] = [];
  const waiters: Array<(m: Message) => void> = [];
  ws.on("message", (data) => {
    const msg = JSON.parse(String(data)) as Message;
    const w = waiters.shift();
    if (w) w(msg);
    else inbox.push(msg);
  });
  await new Promise<void>((res, rej) => {
    ws.once("open", () => res());
    ws.once("error", rej);
  });
  open.push(ws);
  return {
    ws,
    next: () => {
      const m = inbox.shift();
      return m ? Promise.resolve(m) : new Promise<Message>((res) => waiters.push(res));
    },
    send: (msg) => ws.send(typeof msg === "string" ? msg : JSON.stringify(msg)),
  };
}

const open: WebSocket[] = [];
afterEach(() => {
  for (const ws of open.splice(0)) ws.close();
});

describe("WebSocket /ws", () => {
  it("reset, step and state over one connection, keeping Python state", async () => {
    const c = await connect();
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

  it("two connections are two episodes", async () => {
    const a = await connect();
    const b = await connect();
    a.send({ type: "step", data: { code: "who = 'a'" } });
    b.send({ type: "step", data: { code: "who = 'b'" } });
    await Promise.all([a.next(), b.next()]);
    a.send({ type: "step", data: { code: "who" } });
    b.send({ type: "step", data: { code: "who" } });
    expect((await a.next()).data.observation?.stdout).toBe('"a"');
    expect((await b.next()).data.observation?.stdout).toBe('"b"');
  });

  it("answers bad messages with OpenEnv's error codes and keeps the connection", async () => {
    const c = await connect();
    c.send("{not json");
    expect(await c.next()).toMatchObject({ type: "error", data: { code: "INVALID_JSON" } });
    c.send({ type: "dance" });
    expect(await c.next()).toMatchObject({ type: "error", data: { code: "UNKNOWN_TYPE" } });
    c.send({ type: "step", data: { code: 5 } });
    expect(await c.next()).toMatchObject({ type: "error", data: { code: "VALIDATION_ERROR" } });
    c.send({ type: "step", data: { code: "1 + 1" } });
    expect((await c.next()).data.observation?.stdout).toBe("2");
  });

  it("close ends the session", async () => {
    const c = await connect();
    const closed = new Promise<number>((res) => c.ws.once("close", (code) => res(code)));
    c.send({ type: "close" });
    expect(await closed).toBe(1000);
  });
});
