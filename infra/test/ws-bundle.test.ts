// The WebSocket API's Lambda exactly as deployed (the esbuild bundle staged by `cdk synth`),
// driven with API Gateway WebSocket events ($connect, $default, $disconnect) by a stand-in for API
// Gateway's WebSocket API and its management API (api-gateway-websocket-standin.mjs), against the
// real parts the bundle talks to in the local stack: DynamoDB (dynalite) and the Python executor.
// Clients are real WebSocket clients: the `ws` package, and the Python client that drives `/ws`
// the way OpenEnv's current client does (the same scenario as the local `/ws` suite).
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DeleteCommand, DynamoDBDocumentClient, ScanCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { type LocalStack, startLocalStack } from "../../functions/src/local/stack.js";
import { dynamoDbApiKeyStore } from "../../functions/src/store/dynamodb-api-keys.js";
import type { ApiKeyStore } from "../../functions/src/tenancy/keys.js";
import { type StagedBundle, stagedBundle } from "./bundle.js";
import { removeSynthOutputs, synth } from "./synth.js";

afterAll(removeSynthOutputs);

const here = fileURLToPath(new URL(".", import.meta.url));
const repoRoot = join(here, "..", "..");

interface Message {
  type: string;
  data: Record<string, unknown> & {
    observation?: { stdout: string; stderr: string; exit_code: number };
    info?: Record<string, unknown>;
  };
}

/** One stand-in of API Gateway's WebSocket API running the bundle with `env`. */
async function startGateway(
  bundle: StagedBundle,
  env: Record<string, string>,
): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(
    process.execPath,
    [join(here, "api-gateway-websocket-standin.mjs"), bundle.path, join(repoRoot, "node_modules", "ws")],
    {
      cwd: join(bundle.path, ".."),
      env: {
        PATH: process.env.PATH ?? "",
        ...bundle.env,
        AWS_REGION: "us-east-1",
        AWS_LAMBDA_FUNCTION_NAME: "CodingEnv-WebSocket",
        AWS_LAMBDA_LOG_FORMAT: "JSON",
        AWS_EXECUTION_ENV: "AWS_Lambda_nodejs22.x",
        AWS_ACCESS_KEY_ID: "AKIAIOSFODNN7EXAMPLE",
        AWS_SECRET_ACCESS_KEY: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        ...env,
      },
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  const port = await new Promise<number>((resolve, reject) => {
    let out = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      out += chunk.toString("utf8");
      const match = /LISTENING (\d+)/.exec(out);
      if (match) resolve(Number(match[1]));
    });
    child.once("exit", (code) => reject(new Error(`stand-in exited ${code}: ${out.slice(-2000)}`)));
  });
  child.stdout?.resume();
  return { url: `http://127.0.0.1:${port}`, child };
}

const open: WebSocket[] = [];

/** A connection with a queue of received messages, or the handshake's refusal. */
async function connect(
  url: string,
  opts: { headers?: Record<string, string>; query?: string } = {},
): Promise<{
  ws: WebSocket;
  next(): Promise<Message>;
  send(msg: unknown): void;
  closed: Promise<{ code: number; reason: string }>;
}> {
  const ws = new WebSocket(`${url.replace(/^http/, "ws")}/ws${opts.query ?? ""}`, { headers: opts.headers });
  const inbox: Message[] = [];
  const waiters: Array<(m: Message) => void> = [];
  ws.on("message", (data) => {
    const msg = JSON.parse(String(data)) as Message;
    const w = waiters.shift();
    if (w) w(msg);
    else inbox.push(msg);
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
      response.on("end", () =>
        rej(Object.assign(new Error("refused"), { status: response.statusCode, body })),
      );
    });
    ws.once("error", rej);
  });
  open.push(ws);
  return {
    ws,
    closed,
    next: () => {
      const m = inbox.shift();
      return m ? Promise.resolve(m) : new Promise<Message>((res) => waiters.push(res));
    },
    send: (msg) => ws.send(typeof msg === "string" ? msg : JSON.stringify(msg)),
  };
}

async function refusal(url: string, opts: { headers?: Record<string, string>; query?: string }) {
  try {
    await connect(url, opts);
  } catch (err) {
    const { status, body } = err as { status?: number; body?: string };
    return { status, body: body ? (JSON.parse(body) as unknown) : undefined };
  }
  throw new Error("the handshake was accepted");
}

afterEach(() => {
  for (const ws of open.splice(0)) ws.close();
});

describe("WebSocket Lambda bundle (esbuild, as deployed) behind an API Gateway WebSocket stand-in", () => {
  let bundle: StagedBundle;
  let stack: LocalStack;
  let gateway: { url: string; child: ChildProcess };
  let keys: ApiKeyStore;
  let doc: DynamoDBDocumentClient;
  let keyA: string;
  let keyB: string;
  let localEnv: Record<string, string>;

  beforeAll(async () => {
    bundle = stagedBundle(synth({ bundle: true }), "coding-env-ws");
    stack = await startLocalStack({ port: 0, dataDir: null, auth: true });
    const client = new DynamoDBClient({
      endpoint: stack.dynamodbEndpoint,
      region: "us-east-1",
      credentials: stack.credentials,
    });
    doc = DynamoDBDocumentClient.from(client);
    keys = dynamoDbApiKeyStore({ client, tableName: stack.tableName });
    keyA = (await keys.create({ tenantId: "ws-tenant-a", name: "ws bundle test a" })).key;
    keyB = (await keys.create({ tenantId: "ws-tenant-b", name: "ws bundle test b" })).key;
    localEnv = {
      CODING_ENV_TABLE: stack.tableName,
      CODING_ENV_EXECUTOR_FUNCTION: "arn:aws:lambda:us-east-1:123456789012:function:coding-env-executor",
      CODING_ENV_DYNAMODB_ENDPOINT: stack.dynamodbEndpoint,
      CODING_ENV_EXECUTOR_ENDPOINT: stack.executorEndpoint,
      CODING_ENV_LOCAL_ACCESS_KEY_ID: stack.credentials.accessKeyId,
      CODING_ENV_LOCAL_SECRET_ACCESS_KEY: stack.credentials.secretAccessKey,
      // Every message re-reads the key, so a revocation shows at once in this test.
      CODING_ENV_AUTH_CACHE_TTL_MS: "0",
    };
    gateway = await startGateway(bundle, localEnv);
  }, 240_000);

  afterAll(async () => {
    gateway?.child.kill("SIGTERM");
    doc?.destroy();
    await stack?.stop();
  });

  const connectionItems = async () =>
    (
      await doc.send(
        new ScanCommand({
          TableName: stack.tableName,
          FilterExpression: "begins_with(pk, :ws)",
          ExpressionAttributeValues: { ":ws": "WS#" },
        }),
      )
    ).Items ?? [];

  it("refuses the handshake without a key, or with an unknown one, with the HTTP status and the API's JSON error", async () => {
    for (const opts of [
      {},
      { query: "?api_key=ce_live_notakey" },
      { headers: { authorization: "Bearer nope" } },
    ]) {
      expect(await refusal(gateway.url, opts)).toEqual({
        status: 401,
        body: { error: { code: "unauthorized", message: expect.any(String) } },
      });
    }
  });

  it("runs reset, step and state on one connection (key as a query parameter), keeping Python state, as the local /ws does", async () => {
    const c = await connect(gateway.url, { query: `?api_key=${keyA}` });
    c.send({ type: "reset", data: {} });
    const reset = await c.next();
    expect(reset.type).toBe("observation");
    expect(reset.data.observation).toEqual({ stdout: "", stderr: "", exit_code: 0 });
    c.send({ type: "step", data: { code: "x = 20" } });
    await c.next();
    c.send({ type: "step", data: { code: "x * 2 + 2" } });
    const step = await c.next();
    expect(step).toMatchObject({
      type: "observation",
      data: { observation: { stdout: "42", stderr: "", exit_code: 0 }, done: false, step_count: 2 },
    });
    c.send({ type: "state" });
    expect(await c.next()).toMatchObject({
      type: "state",
      data: { episode_id: reset.data.episode_id, step_count: 2 },
    });
  }, 60_000);

  it("keeps the session's episode in a DynamoDB connection item with a TTL past API Gateway's 2 hours, deleted at $disconnect", async () => {
    const c = await connect(gateway.url, { headers: { "x-api-key": keyA } });
    c.send({ type: "step", data: { code: "1" } });
    const step = await c.next();
    const ofThisSession = async () =>
      (await connectionItems()).filter((i) => i.episode_id === step.data.episode_id);
    const [item, ...others] = await ofThisSession();
    expect(others).toEqual([]);
    expect(item).toMatchObject({ tenant_id: "ws-tenant-a", sk: "CONN" });
    const ttlS = Number(item?.expires_at) - Math.floor(Number(item?.connected_at) / 1000);
    expect(ttlS).toBeGreaterThan(2 * 3600);
    expect(JSON.stringify(item)).not.toContain(keyA); // only the key's hash is kept
    c.ws.close();
    await c.closed;
    await expect.poll(async () => (await ofThisSession()).length, { timeout: 10_000 }).toBe(0);
  }, 60_000);

  it("answers bad messages with OpenEnv's error codes and keeps the connection", async () => {
    const c = await connect(gateway.url, { headers: { authorization: `Bearer ${keyA}` } });
    c.send("{not json");
    expect(await c.next()).toMatchObject({ type: "error", data: { code: "INVALID_JSON" } });
    c.send({ type: "dance" });
    expect(await c.next()).toMatchObject({ type: "error", data: { code: "UNKNOWN_TYPE" } });
    c.send({ type: "step", data: { code: 5 } });
    expect(await c.next()).toMatchObject({ type: "error", data: { code: "VALIDATION_ERROR" } });
    c.send({ type: "reset", data: { episode_id: "has space" } });
    expect(await c.next()).toMatchObject({ type: "error", data: { code: "VALIDATION_ERROR" } });
    c.send({ type: "step", data: { code: "1 + 1" } });
    expect((await c.next()).data.observation?.stdout).toBe("2");
  }, 60_000);

  it("cuts a reply over API Gateway's 128 KB message limit to fit, flagging what was cut", async () => {
    const c = await connect(gateway.url, { headers: { "x-api-key": keyA } });
    c.send({ type: "step", data: { code: "print('y' * 300_000)\nprint('é' * 100_000)" } });
    const raw = await new Promise<string>((res) => c.ws.once("message", (data) => res(String(data))));
    expect(Buffer.byteLength(raw, "utf8")).toBeLessThanOrEqual(128 * 1024);
    const reply = JSON.parse(raw) as Message;
    expect(reply.type).toBe("observation");
    expect(reply.data.observation?.exit_code).toBe(0);
    expect(reply.data.observation?.stdout.startsWith("yyyy")).toBe(true);
    expect(reply.data.info).toMatchObject({
      stdout_truncated: true,
      truncated_by: "websocket_message_limit",
    });
  }, 60_000);

  it("leaves out display bundles past the 128 KB limit (with a note) and keeps the step's output whole", async () => {
    const c = await connect(gateway.url, { headers: { "x-api-key": keyA } });
    const code = [
      "class Big:",
      "    def __init__(self, n): self.n = n",
      "    def _repr_html_(self): return f'<p>{self.n}</p>' + 'x' * 50_000",
      "for n in range(4):",
      "    display(Big(n))",
      "print('kept')",
    ].join("\n");
    c.send({ type: "step", data: { code } });
    const raw = await new Promise<string>((res) => c.ws.once("message", (data) => res(String(data))));
    expect(Buffer.byteLength(raw, "utf8")).toBeLessThanOrEqual(128 * 1024);
    const reply = JSON.parse(raw) as Message & { data: { display?: { data: Record<string, string> }[] } };
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
    const c = await connect(gateway.url, { headers: { "x-api-key": keyA } });
    c.send({ type: "close" });
    expect((await c.closed).code).toBe(1000);
    const calls = (await (await fetch(`${gateway.url}/calls`)).json()) as {
      method: string;
      signed?: boolean;
    }[];
    expect(calls).toContainEqual(expect.objectContaining({ method: "DELETE", signed: true }));
  }, 60_000);

  it("resumes an episode on a new connection (episode_id at $connect), never another tenant's", async () => {
    const first = await connect(gateway.url, { headers: { "x-api-key": keyA } });
    first.send({ type: "step", data: { code: "kept = 'still here'" } });
    const { episode_id: episodeId } = (await first.next()).data;
    first.ws.close();
    await first.closed;

    const again = await connect(gateway.url, {
      headers: { "x-api-key": keyA },
      query: `?episode_id=${episodeId}`,
    });
    again.send({ type: "step", data: { code: "kept" } });
    expect(await again.next()).toMatchObject({
      data: { episode_id: episodeId, step_count: 2, observation: { stdout: '"still here"' } },
    });
    expect(
      await refusal(gateway.url, { headers: { "x-api-key": keyB }, query: `?episode_id=${episodeId}` }),
    ).toMatchObject({ status: 404 });
  }, 60_000);

  it("ends an open connection whose key is revoked: an error in OpenEnv's shape, then the close", async () => {
    const { key } = await keys.create({ tenantId: "ws-tenant-c", name: "revoked mid-connection" });
    const c = await connect(gateway.url, { headers: { "x-api-key": key } });
    c.send({ type: "step", data: { code: "1" } });
    expect((await c.next()).type).toBe("observation");
    await keys.revoke(key);
    c.send({ type: "step", data: { code: "2" } });
    expect(await c.next()).toMatchObject({
      type: "error",
      data: { code: "SESSION_ERROR", error_code: "unauthorized" },
    });
    expect((await c.closed).code).toBe(1000);
  }, 60_000);

  it("ends a connection whose item is gone (deleted, expired) with SESSION_ERROR, then the close", async () => {
    const c = await connect(gateway.url, { headers: { "x-api-key": keyA } });
    c.send({ type: "step", data: { code: "1" } });
    const { episode_id: episodeId } = (await c.next()).data;
    for (const item of (await connectionItems()).filter((i) => i.episode_id === episodeId)) {
      await doc.send(new DeleteCommand({ TableName: stack.tableName, Key: { pk: item.pk, sk: item.sk } }));
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
    const { key } = await keys.create({ tenantId: "ws-tenant-openenv", name: "OpenEnv client" });
    const baseUrl = gateway.url.replace("http://", `http://apikey:${key}@`);
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
        [join(repoRoot, "test", "python-client", "ws_client.py"), gateway.url],
        {
          encoding: "utf8",
          timeout: 60_000,
        },
      ),
    ).rejects.toMatchObject({ stderr: expect.stringMatching(/401/) });
  }, 90_000);
});
