// OpenEnv's current client protocol: WebSocket /ws, one connection = one episode. The shared
// scenario (websocket-scenario.ts) runs here on the local /ws and on the AWS WebSocket Lambda's bundle
// (infra/test/ws-bundle.test.ts); the cases below it are the local transport's own (its 2 MiB
// message limit, its per-connection queue).
import { afterEach, describe, expect, inject, it } from "vitest";
import { call } from "../helpers/api.js";
import { closeOpenedWs, openEnvWsScenario, openWs, type WsMessage } from "./websocket-scenario.js";

const baseUrl = inject("baseUrl");
const wsUrl = `${baseUrl.replace(/^http/, "ws")}/ws`;
const connect = () => openWs(wsUrl);

afterEach(closeOpenedWs);

describe("WebSocket /ws", () => {
  openEnvWsScenario(() => ({
    connect,
    httpStatus: async (method, path, body) => (await call(baseUrl, method, path, body)).status,
  }));

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
    const replies: WsMessage[] = [];
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
