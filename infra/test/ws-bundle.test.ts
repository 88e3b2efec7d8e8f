// The WebSocket API's Lambda exactly as deployed (the esbuild bundle staged by `cdk synth`), driven
// with API Gateway WebSocket events ($connect, $default, $disconnect) by a stand-in for API
// Gateway's WebSocket API and its management API, two handler instances taking the events in turn
// (ws-gateway.ts), against dynalite and the real Python executor. Clients are real WebSocket
// clients: the `ws` package, and the Python client that drives `/ws` the way OpenEnv's current
// client does. OpenEnv's scenario here is the local `/ws` suite's (test/api/websocket-scenario.ts).
// Tenancy over this path (keys, isolation, quotas, metering): ws-bundle-tenancy.ts, run here on the
// same stand-in and stack.
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { DeleteCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { itemBytes, readUnits, writeUnits } from "../../functions/src/store/item-size.js";
import { closeOpenedWs, openEnvWsScenario, type WsMessage } from "../../test/api/websocket-scenario.js";
import { removeSynthOutputs } from "./synth.js";
import { describeWsBundleTenancy } from "./ws-bundle-tenancy.js";
import { HANDLER_INSTANCES, repoRoot, startWsBundleEnv, type WsBundleEnv } from "./ws-gateway.js";

afterAll(removeSynthOutputs);
afterEach(closeOpenedWs);

const KB = 1024;

describe("WebSocket Lambda bundle (esbuild, as deployed) behind an API Gateway WebSocket stand-in", () => {
  let env: WsBundleEnv;
  let key: string;

  beforeAll(async () => {
    env = await startWsBundleEnv();
    key = (await env.keys.create({ tenantId: "ws-tenant-a", name: "ws bundle test" })).key;
  }, 240_000);
  afterAll(async () => {
    await env?.stop();
  });

  describe("OpenEnv's scenario of the local /ws suite (the key as the api_key query parameter)", () => {
    openEnvWsScenario(() => ({
      connect: () => env.connect({ query: `?api_key=${key}` }),
      httpStatus: async (method, path, body) => (await env.http(key, method, path, body)).status,
    }));
  });

  it("serves one connection from two handler instances in turn: the session is in the connection item, not in a process", async () => {
    expect(HANDLER_INSTANCES).toBe(2);
    const c = await env.connect({ headers: { "x-api-key": key } });
    c.send({ type: "reset", data: {} });
    const { episode_id: episodeId } = (await c.next()).data;
    for (const code of ["n = 1", "n += 1", "n += 1"]) {
      c.send({ type: "step", data: { code } });
      expect((await c.next()).type).toBe("observation");
    }
    c.send({ type: "step", data: { code: "n" } });
    expect(await c.next()).toMatchObject({
      data: { episode_id: episodeId, step_count: 4, observation: { stdout: "3" } },
    });
    // The stand-in's log: this connection's events alternated between the two instances.
    const items = await env.connectionItems();
    const connectionId = String(items.find((i) => i.episode_id === episodeId)?.pk).replace(/^WS#/, "");
    const served = (await env.calls()).filter((call) => call.connectionId === connectionId && call.route);
    expect(served.map((call) => call.route)).toEqual(["$connect", ...Array(5).fill("$default")]);
    for (let i = 1; i < served.length; i++) expect(served[i]?.instance).not.toBe(served[i - 1]?.instance);
  }, 60_000);

  it("keeps the session's episode in a DynamoDB connection item (one read and one write unit) with a TTL past API Gateway's 2 hours, deleted at $disconnect", async () => {
    const c = await env.connect({ headers: { "x-api-key": key } });
    c.send({ type: "step", data: { code: "1" } });
    const step = await c.next();
    const ofThisSession = async () =>
      (await env.connectionItems()).filter((i) => i.episode_id === step.data.episode_id);
    const [item, ...others] = await ofThisSession();
    expect(others).toEqual([]);
    expect(item).toMatchObject({ tenant_id: "ws-tenant-a", sk: "CONN" });
    const ttlS = Number(item?.expires_at) - Math.floor(Number(item?.connected_at) / 1000);
    expect(ttlS).toBeGreaterThan(2 * 3600);
    expect(JSON.stringify(item)).not.toContain(key); // only the key's hash is kept
    // The per-message read (strongly consistent) and each write of it are one unit (docs/DEPLOY.md's cost).
    const bytes = itemBytes(item ?? {});
    expect(readUnits(bytes, true)).toBe(1);
    expect(writeUnits(bytes)).toBe(1);
    c.ws.close();
    await c.closed;
    await expect.poll(async () => (await ofThisSession()).length, { timeout: 10_000 }).toBe(0);
  }, 60_000);

  it("cuts a reply over API Gateway's 128 KB message limit to fit, flagging what was cut", async () => {
    const c = await env.connect({ headers: { "x-api-key": key } });
    c.send({ type: "step", data: { code: "print('y' * 300_000)\nprint('é' * 100_000)" } });
    const raw = await c.nextRaw();
    expect(Buffer.byteLength(raw, "utf8")).toBeLessThanOrEqual(128 * KB);
    const reply = JSON.parse(raw) as WsMessage;
    expect(reply.type).toBe("observation");
    expect(reply.data.observation?.exit_code).toBe(0);
    expect(reply.data.observation?.stdout.startsWith("yyyy")).toBe(true);
    expect(reply.data.info).toMatchObject({
      stdout_truncated: true,
      truncated_by: "websocket_message_limit",
    });
  }, 60_000);

  it("leaves out display bundles past the 128 KB limit (with a note) and keeps the step's output whole", async () => {
    const c = await env.connect({ headers: { "x-api-key": key } });
    const code = [
      "class Big:",
      "    def __init__(self, n): self.n = n",
      "    def _repr_html_(self): return f'<p>{self.n}</p>' + 'x' * 50_000",
      "for n in range(4):",
      "    display(Big(n))",
      "print('kept')",
    ].join("\n");
    c.send({ type: "step", data: { code } });
    const raw = await c.nextRaw();
    expect(Buffer.byteLength(raw, "utf8")).toBeLessThanOrEqual(128 * KB);
    const reply = JSON.parse(raw) as WsMessage & { data: { display?: { data: Record<string, string> }[] } };
    expect(reply.data.observation?.stdout).toBe("kept\n");
    expect(reply.data.info).not.toHaveProperty("truncated_by");
    const bundles = reply.data.display ?? [];
    const html = bundles.filter((b) => "text/html" in b.data).map((b) => b.data["text/html"]);
    expect(html.length).toBeGreaterThan(0);
    expect(html.length).toBeLessThan(4);
    expect(html[0]?.startsWith("<p>0</p>")).toBe(true);
    expect(bundles.some((b) => /left out/i.test(b.data["text/plain"] ?? ""))).toBe(true);
  }, 60_000);

  it('closes the connection on {"type":"close"} through the management API (the stand-in records the signed DELETE)', async () => {
    const c = await env.connect({ headers: { "x-api-key": key } });
    c.send({ type: "close" });
    expect((await c.closed).code).toBe(1000);
    expect(await env.calls()).toContainEqual(expect.objectContaining({ method: "DELETE", signed: true }));
  }, 60_000);

  it("resumes an episode on a new connection (episode_id at $connect), Python state included", async () => {
    const first = await env.connect({ headers: { "x-api-key": key } });
    first.send({ type: "step", data: { code: "kept = 'still here'" } });
    const { episode_id: episodeId } = (await first.next()).data;
    first.ws.close();
    await first.closed;

    const again = await env.connect({ headers: { "x-api-key": key }, query: `?episode_id=${episodeId}` });
    again.send({ type: "step", data: { code: "kept" } });
    expect(await again.next()).toMatchObject({
      data: { episode_id: episodeId, step_count: 2, observation: { stdout: '"still here"' } },
    });
    // The X-Episode-Id header does the same.
    const third = await env.connect({ headers: { "x-api-key": key, "x-episode-id": String(episodeId) } });
    third.send({ type: "state" });
    expect(await third.next()).toMatchObject({
      type: "state",
      data: { episode_id: episodeId, step_count: 2 },
    });
  }, 60_000);

  it("lets OpenEnv's client, which takes a base URL only, resume an episode: the episode id as the URL's user name, the key as its password", async () => {
    const c = await env.connect({ headers: { "x-api-key": key } });
    c.send({ type: "step", data: { code: "carried = 41" } });
    const { episode_id: episodeId } = (await c.next()).data;
    c.ws.close();
    await c.closed;
    const baseUrl = env.gatewayUrl.replace("http://", `http://${episodeId}:${key}@`);
    const run = await promisify(execFile)(
      "/usr/bin/python3",
      [join(repoRoot, "test", "python-client", "ws_resume.py"), baseUrl, "carried + 1"],
      { encoding: "utf8", timeout: 60_000 },
    );
    expect(JSON.parse(run.stdout.trim())).toMatchObject({
      type: "observation",
      data: { episode_id: episodeId, step_count: 2, observation: { stdout: "42" } },
    });
    // The user name `apikey` names no episode: a new session starts.
    const fresh = await promisify(execFile)(
      "/usr/bin/python3",
      [
        join(repoRoot, "test", "python-client", "ws_resume.py"),
        env.gatewayUrl.replace("http://", `http://apikey:${key}@`),
        "carried",
      ],
      { encoding: "utf8", timeout: 60_000 },
    );
    expect(JSON.parse(fresh.stdout.trim())).toMatchObject({
      data: { step_count: 1, observation: { exit_code: 1 } },
    });
  }, 90_000);

  it("ends a connection whose item is gone (deleted, expired) with SESSION_ERROR, then the close", async () => {
    const c = await env.connect({ headers: { "x-api-key": key } });
    c.send({ type: "step", data: { code: "1" } });
    const { episode_id: episodeId } = (await c.next()).data;
    for (const item of (await env.connectionItems()).filter((i) => i.episode_id === episodeId)) {
      await env.doc.send(
        new DeleteCommand({ TableName: env.stack.tableName, Key: { pk: item.pk, sk: item.sk } }),
      );
    }
    c.send({ type: "step", data: { code: "2" } });
    expect(await c.next()).toMatchObject({
      type: "error",
      data: { code: "SESSION_ERROR", error_code: "connection_gone" },
    });
    expect((await c.closed).code).toBe(1000);
  }, 60_000);

  it("serves OpenEnv's client scenario (test/python-client/ws_client.py) through the same path, the key in the base URL", async () => {
    // OpenEnv's client takes a base URL only; WebSocket clients send its user information as
    // HTTP Basic, which $connect accepts (the key as the password).
    const { key: openEnvKey } = await env.keys.create({
      tenantId: "ws-tenant-openenv",
      name: "OpenEnv client",
    });
    const baseUrl = env.gatewayUrl.replace("http://", `http://apikey:${openEnvKey}@`);
    // Asynchronously: the local DynamoDB and executor answer from this process's event loop.
    const run = await promisify(execFile)(
      "/usr/bin/python3",
      [join(repoRoot, "test", "python-client", "ws_client.py"), baseUrl],
      { encoding: "utf8", timeout: 60_000 },
    );
    expect(JSON.parse(run.stdout.trim().split("\n").pop() ?? "{}")).toMatchObject({
      ok: true,
      step_count: 2,
    });
    // Without the key, the same client is refused at the handshake.
    await expect(
      promisify(execFile)(
        "/usr/bin/python3",
        [join(repoRoot, "test", "python-client", "ws_client.py"), env.gatewayUrl],
        { encoding: "utf8", timeout: 60_000 },
      ),
    ).rejects.toMatchObject({ stderr: expect.stringMatching(/401/) });
  }, 90_000);

  describe("API Gateway's limits", () => {
    it("a message sent as one frame over 32 KB (as OpenEnv's client sends every message) is closed with 1009 'Message too big'; the episode resumes on a new connection", async () => {
      const c = await env.connect({ headers: { "x-api-key": key } });
      c.send({ type: "step", data: { code: "kept = 7" } });
      const { episode_id: episodeId } = (await c.next()).data;
      c.send({ type: "step", data: { code: `# ${"x".repeat(40 * KB)}\n1` } });
      expect(await c.closed).toEqual({ code: 1009, reason: "Message too big" });
      const again = await env.connect({ headers: { "x-api-key": key }, query: `?episode_id=${episodeId}` });
      again.send({ type: "step", data: { code: "kept" } });
      expect(await again.next()).toMatchObject({
        data: { episode_id: episodeId, step_count: 2, observation: { stdout: "7" } },
      });
    }, 60_000);

    /** Sends `text` in frames of at most 32 KB (what a client must do past 32 KB). */
    const sendInFrames = (ws: WebSocket, text: string) => {
      const frames = Math.ceil(text.length / (32 * KB));
      for (let i = 0; i < frames; i++) {
        ws.send(text.slice(i * 32 * KB, (i + 1) * 32 * KB), { fin: i === frames - 1 });
      }
    };
    type WebSocket = import("ws").WebSocket;

    it("a message of up to 128 KB in frames of 32 KB reaches the handler; its reply keeps the step's output whole and cuts the echo of the code to fit", async () => {
      const c = await env.connect({ headers: { "x-api-key": key } });
      const code = `# ${"x".repeat(100 * KB)}\nprint('z' * 50_000)`;
      sendInFrames(c.ws, JSON.stringify({ type: "step", data: { code } }));
      const raw = await c.nextRaw();
      expect(Buffer.byteLength(raw, "utf8")).toBeLessThanOrEqual(128 * KB);
      const reply = JSON.parse(raw) as WsMessage & { data: { metadata?: { last_code?: string } } };
      expect(reply.type).toBe("observation");
      expect(reply.data.observation?.stdout).toBe(`${"z".repeat(50_000)}\n`);
      // The echo of the code just sent is what gives way (flagged), not the step's output.
      expect(reply.data.info).toMatchObject({
        last_code_truncated: true,
        truncated_by: "websocket_message_limit",
      });
      expect(reply.data.info).not.toHaveProperty("stdout_truncated", true);
      const echoed = reply.data.metadata?.last_code ?? "";
      expect(echoed.length).toBeGreaterThan(0);
      expect(echoed.length).toBeLessThan(code.length);
      expect(code.startsWith(echoed)).toBe(true);
    }, 60_000);

    it("a message over 128 KB, even in 32 KB frames, is closed with 1009 'Message too big'", async () => {
      const c = await env.connect({ headers: { "x-api-key": key } });
      sendInFrames(c.ws, JSON.stringify({ type: "step", data: { code: `# ${"x".repeat(130 * KB)}` } }));
      expect(await c.closed).toEqual({ code: 1009, reason: "Message too big" });
    }, 60_000);

    it("answers a step still running when the Lambda's time runs out with EXECUTION_ERROR executor_timeout, before API Gateway's 29 s would cut it", async () => {
      // The stand-in gives this connection's invocations 4 s instead of 28 s (the handler keeps 1 s to answer).
      const c = await env.connect({ headers: { "x-api-key": key, "x-standin-remaining-ms": "4000" } });
      c.send({ type: "step", data: { code: "import time\ntime.sleep(8)\nprint('ran')" } });
      expect(await c.next()).toMatchObject({
        type: "error",
        data: { code: "EXECUTION_ERROR", error_code: "executor_timeout" },
      });
    }, 60_000);
  });

  describeWsBundleTenancy(() => env);
});
