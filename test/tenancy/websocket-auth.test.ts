// The local `/ws` with keys on accepts the handshake forms AWS's $connect accepts (ws/handshake.ts,
// one function for both): the key in `Authorization: Bearer`, `X-API-Key`, `?api_key=` or the URL's
// user information (HTTP Basic: `ws://apikey:<key>@host/ws`), and the episode to resume in
// `?episode_id=`, `X-Episode-Id` or the Basic user name (`ws://<episode_id>:<key>@host/ws`). So
// OpenEnv's client, which takes a base URL only, works against a local stack with keys on as it
// does against AWS (infra/test/ws-bundle.test.ts runs the same clients there).
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type LocalStack, startLocalStack } from "../../functions/src/local/stack.js";
import { dynamoDbApiKeyStore } from "../../functions/src/store/dynamodb-api-keys.js";
import type { ApiKeyStore } from "../../functions/src/tenancy/index.js";
import { closeOpenedWs, HandshakeRefused, openWs, type WsConnection } from "../api/websocket-scenario.js";
import { clientFor } from "./helpers/dynalite-table.js";

const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
const run = promisify(execFile);

let stack: LocalStack;
let client: DynamoDBClient;
let keys: ApiKeyStore;
let keyA: string;
let keyB: string;

beforeAll(async () => {
  stack = await startLocalStack({ port: 0, dataDir: null, auth: true });
  client = clientFor(stack.dynamodbEndpoint, stack.credentials);
  keys = dynamoDbApiKeyStore({ client, tableName: stack.tableName });
  keyA = (await keys.create({ tenantId: `ws-auth-a-${process.pid}` })).key;
  keyB = (await keys.create({ tenantId: `ws-auth-b-${process.pid}` })).key;
});
afterAll(async () => {
  client?.destroy();
  await stack?.stop();
});
afterEach(closeOpenedWs);

/** `ws://[<user>:<password>@]host:port/ws[?query]` of the stack. */
function wsUrl(opts: { user?: string; password?: string; query?: string } = {}): string {
  const url = new URL(`${stack.baseUrl.replace(/^http/, "ws")}/ws${opts.query ?? ""}`);
  if (opts.user !== undefined) url.username = opts.user;
  if (opts.password !== undefined) url.password = opts.password;
  return url.href;
}

/** The handshake's HTTP status when it is refused. */
async function refusedWith(url: string, headers: Record<string, string> = {}): Promise<number | undefined> {
  try {
    await openWs(url, headers);
  } catch (err) {
    if (err instanceof HandshakeRefused) return err.status;
    throw err;
  }
  throw new Error("the handshake was accepted");
}

/** One step on the connection: its stdout, episode id and step count. */
async function step(c: WsConnection, code: string) {
  c.send({ type: "step", data: { code } });
  const reply = await c.next();
  expect(reply.type, JSON.stringify(reply)).toBe("observation");
  return {
    stdout: reply.data.observation?.stdout,
    episodeId: String(reply.data.episode_id),
    stepCount: reply.data.step_count,
  };
}

/** The status of `GET /episodes/{id}` with `key`: the episode is that key's tenant's when 200. */
async function episodeStatus(key: string, episodeId: string): Promise<number> {
  const res = await fetch(`${stack.baseUrl}/episodes/${episodeId}`, { headers: { "x-api-key": key } });
  await res.arrayBuffer();
  return res.status;
}

describe("local /ws with keys on: the handshake forms of AWS's $connect", () => {
  it("refuses a handshake without a key, or with an unknown one, with 401", async () => {
    expect(await refusedWith(wsUrl())).toBe(401);
    expect(await refusedWith(wsUrl({ query: "?api_key=cek_not_a_key" }))).toBe(401);
    expect(await refusedWith(wsUrl({ user: "apikey", password: "cek_not_a_key" }))).toBe(401);
  });

  it.each([
    ["Authorization: Bearer", () => ({ url: wsUrl(), headers: { authorization: `Bearer ${keyA}` } })],
    ["X-API-Key", () => ({ url: wsUrl(), headers: { "x-api-key": keyA } })],
    ["the api_key query parameter", () => ({ url: wsUrl({ query: `?api_key=${keyA}` }), headers: {} })],
    [
      "HTTP Basic from the URL (user apikey)",
      () => ({ url: wsUrl({ user: "apikey", password: keyA }), headers: {} }),
    ],
  ])("takes the key from %s, and the session is that key's tenant's", async (_form, target) => {
    // Prepare
    const { url, headers } = target();
    // Act
    const c = await openWs(url, headers);
    const out = await step(c, "6 * 7");
    // Assert
    expect(out.stdout).toBe("42");
    expect(await episodeStatus(keyA, out.episodeId)).toBe(200);
    expect(await episodeStatus(keyB, out.episodeId)).toBe(404);
  });

  it("resumes an episode named by ?episode_id=, X-Episode-Id or the URL's user name, Python state included", async () => {
    // Prepare
    const first = await openWs(wsUrl({ query: `?api_key=${keyA}` }));
    const { episodeId } = await step(first, "kept = 40");
    first.ws.close();
    // Act
    const byQuery = await openWs(wsUrl({ query: `?api_key=${keyA}&episode_id=${episodeId}` }));
    const q = await step(byQuery, "kept + 1");
    const byHeader = await openWs(wsUrl(), { "x-api-key": keyA, "x-episode-id": episodeId });
    const h = await step(byHeader, "kept + 2");
    const byUser = await openWs(wsUrl({ user: episodeId, password: keyA }));
    const u = await step(byUser, "kept + 3");
    // Assert
    expect(q).toEqual({ stdout: "41", episodeId, stepCount: 2 });
    expect(h).toEqual({ stdout: "42", episodeId, stepCount: 3 });
    expect(u).toEqual({ stdout: "43", episodeId, stepCount: 4 });
  });

  it("refuses to resume another tenant's episode (404) or a malformed id (422) at the handshake", async () => {
    // Prepare
    const mine = await openWs(wsUrl({ query: `?api_key=${keyA}` }));
    const { episodeId } = await step(mine, "secret = 1");
    // Act
    const asOther = await refusedWith(wsUrl({ user: episodeId, password: keyB }));
    const malformed = await refusedWith(wsUrl({ query: `?api_key=${keyA}&episode_id=${"%2F".repeat(3)}` }));
    // Assert
    expect(asOther).toBe(404);
    expect(malformed).toBe(422);
    expect(await step(mine, "secret + 1")).toMatchObject({ stdout: "2", stepCount: 2 });
  });

  it("serves OpenEnv's client, which takes a base URL only: the key (and the episode) in its user information", async () => {
    // Prepare
    const base = (user: string, key: string) => {
      const url = new URL(stack.baseUrl);
      url.username = user;
      url.password = key;
      return url.href;
    };
    // Act: OpenEnv's client scenario, then a resume with the episode id as the user name
    const scenario = await run(
      "/usr/bin/python3",
      [`${repoRoot}test/python-client/ws_client.py`, base("apikey", keyA)],
      {
        encoding: "utf8",
        timeout: 60_000,
      },
    );
    const mine = await openWs(wsUrl({ query: `?api_key=${keyA}` }));
    const { episodeId } = await step(mine, "carried = 41");
    mine.ws.close();
    const resumed = await run(
      "/usr/bin/python3",
      [`${repoRoot}test/python-client/ws_resume.py`, base(episodeId, keyA), "carried + 1"],
      { encoding: "utf8", timeout: 60_000 },
    );
    // Assert
    expect(JSON.parse(scenario.stdout.trim().split("\n").pop() ?? "{}")).toMatchObject({
      ok: true,
      step_count: 2,
    });
    expect(JSON.parse(resumed.stdout.trim())).toMatchObject({
      type: "observation",
      data: { episode_id: episodeId, step_count: 2, observation: { stdout: "42" } },
    });
    // Without the key, the same client is refused at the handshake.
    await expect(
      run("/usr/bin/python3", [`${repoRoot}test/python-client/ws_client.py`, stack.baseUrl], {
        encoding: "utf8",
        timeout: 60_000,
      }),
    ).rejects.toMatchObject({ stderr: expect.stringMatching(/401/) });
  });
});
