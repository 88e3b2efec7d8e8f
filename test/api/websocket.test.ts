// OpenEnv's current client protocol: WebSocket /ws, one connection = one episode.
import { afterEach, describe, expect, inject, it } from "vitest";
import WebSocket from "ws";
import { call } from "../helpers/api.js";

const baseUrl = inject("baseUrl");
const wsUrl = `${baseUrl.replace(/^http/, "ws")}/ws`;

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

  it("refuses an action with unknown members, as OpenEnv's CodeAction, and writes rewards as floats", async () => {
    const c = await connect();
    c.send({ type: "step", data: { code: "1", lint: true } });
    expect(await c.next()).toMatchObject({ type: "error", data: { code: "VALIDATION_ERROR" } });
    // The raw text: JSON.parse cannot tell -1 from -1.0
    const raw = new Promise<string>((res) => c.ws.once("message", (data) => res(String(data))));
    c.send({ type: "step", data: { code: `import os\n# ${"x".repeat(100)}`, request_id: "ws-float" } });
    expect(await raw).toContain('"reward":-1.0');
    expect((await c.next()).data.reward).toBe(-1);
  });

  it("close ends the session", async () => {
    const c = await connect();
    const closed = new Promise<number>((res) => c.ws.once("close", (code) => res(code)));
    c.send({ type: "close" });
    expect(await closed).toBe(1000);
  });

  it("validates reset options with the HTTP /reset schema", async () => {
    const c = await connect();
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
      expect((await call(baseUrl, "POST", "/reset", data)).status, JSON.stringify(data)).toBe(422);
    }
    c.send({ type: "reset", data: { additional_imports: ["json.decoder"] } });
    expect((await c.next()).type).toBe("observation");
  });

  it("answers a message over the size limit with an error and keeps the connection", async () => {
    const c = await connect();
    c.send({ type: "step", data: { code: `# ${"x".repeat(2 * 1024 * 1024 + 10)}` } });
    expect(await c.next()).toMatchObject({ type: "error", data: { code: "VALIDATION_ERROR" } });
    c.send({ type: "step", data: { code: "6 * 7" } });
    expect((await c.next()).data.observation?.stdout).toBe("42");
  });

  it("a full queue answers CAPACITY_REACHED for the excess and keeps the connection and order", async () => {
    // Prepare: the first step holds the connection's handler while 40 more arrive
    const c = await connect();
    c.send({ type: "step", data: { code: "import time\ntime.sleep(1)\nseen = []" } });
    // Act
    for (let i = 0; i < 40; i++) c.send({ type: "step", data: { code: `seen.append(${i})` } });
    const replies: Message[] = [];
    for (let i = 0; i < 41; i++) replies.push(await c.next());
    // Assess: the excess was refused at once (before the first step's reply); the rest ran in order
    const refused = replies.filter((r) => r.type === "error");
    expect(refused.length).toBeGreaterThan(0);
    for (const r of refused) expect(r.data).toMatchObject({ code: "CAPACITY_REACHED" });
    expect(replies.findIndex((r) => r.type === "observation")).toBeGreaterThanOrEqual(refused.length);
    const handled = replies.filter((r) => r.type === "observation").length - 1;
    c.send({ type: "step", data: { code: "seen" } });
    const seen = JSON.parse((await c.next()).data.observation?.stdout ?? "null") as number[];
    expect(seen).toEqual(Array.from({ length: handled }, (_, i) => i));
  });

  it("closing the connection cancels its pending steps", async () => {
    // Prepare: an episode, a step that holds the handler, and 5 queued steps behind it
    const c = await connect();
    c.send({ type: "reset", data: {} });
    const episodeId = String((await c.next()).data.episode_id);
    c.send({ type: "step", data: { code: "import time\ntime.sleep(0.5)\nran = ['first']" } });
    for (let i = 0; i < 5; i++) c.send({ type: "step", data: { code: `ran.append(${i})` } });
    // Act: close while the first step runs
    c.ws.close();
    // Assess: once the first step has committed, nothing after it runs
    let state: { step_count?: number } = {};
    while (state.step_count !== 1) {
      await new Promise((r) => setTimeout(r, 50));
      state = (await call(baseUrl, "GET", `/episodes/${episodeId}`)).body as { step_count?: number };
    }
    // The queued steps would have run within a few ms each; give them far longer.
    await new Promise((r) => setTimeout(r, 500));
    const after = await call<{ observation: { stdout: string }; step_count: number }>(
      baseUrl,
      "POST",
      "/step",
      {
        action: { code: "ran" },
        episode_id: episodeId,
      },
    );
    expect(after.body.observation.stdout).toBe('["first"]');
    expect(after.body.step_count).toBe(2);
  });
});
