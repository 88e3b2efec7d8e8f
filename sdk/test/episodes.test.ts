import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalStack, startLocalStack } from "../../functions/src/local/stack.js";
import { dynamoDbApiKeyStore } from "../../functions/src/store/dynamodb-api-keys.js";
import { AuthError, CodingEnv, type FetchLike, NetworkError, NotFoundError } from "../src/index.js";
import { stackUrl } from "./helpers.js";

// API keys (a key that works, a missing or wrong one), the calls about all of a tenant's episodes
// (list, iterate, delete), the streamed JSON Lines export, history pages, the changeable API key
// and the cookie's episode, against real stacks: the shared one, and one of this file's own with
// keys on (the SDK's one keys-on stack), so each test owns a tenant and its episodes.
let keyed: LocalStack;
let dynamodb: DynamoDBClient;
let keys: ReturnType<typeof dynamoDbApiKeyStore>;

beforeAll(async () => {
  keyed = await startLocalStack({ port: 0, dataDir: null, auth: true });
  dynamodb = new DynamoDBClient({
    endpoint: keyed.dynamodbEndpoint,
    region: "us-east-1",
    credentials: keyed.credentials,
  });
  keys = dynamoDbApiKeyStore({ client: dynamodb, tableName: keyed.tableName });
});
afterAll(async () => {
  dynamodb?.destroy();
  await keyed?.stop();
});

/** A fetch that records the path and query of every request it sends. */
function countingFetch(paths: string[]): FetchLike {
  return (input, init) => {
    const url = new URL(input);
    paths.push(`${init.method ?? "GET"} ${url.pathname}${url.search}`);
    return fetch(input, init);
  };
}

describe("API keys through the SDK", () => {
  it("a stack with keys on: a created key works, a missing or wrong key is an AuthError", async () => {
    // The key is made by the store `npm run keys -- create` writes with (the command itself:
    // test/tenancy/keys-cli.test.ts), in this process rather than a tsx process of its own.
    const { key } = await keys.create({ tenantId: "sdk-test" });

    const withKey = new CodingEnv({ baseUrl: keyed.baseUrl, apiKey: key });
    await withKey.reset();
    const stepped = await withKey.step("6 * 7");
    await withKey.close();
    const noKey = await new CodingEnv({ baseUrl: keyed.baseUrl }).reset().catch((err: unknown) => err);
    const wrongKey = await new CodingEnv({ baseUrl: keyed.baseUrl, apiKey: "ce_live_wrong" })
      .reset()
      .catch((err: unknown) => err);
    const health = await new CodingEnv({ baseUrl: keyed.baseUrl }).health();

    expect(stepped.observation.stdout).toBe("42");
    expect(noKey).toBeInstanceOf(AuthError);
    expect(noKey).toMatchObject({ status: 401, code: "unauthorized" });
    expect(wrongKey).toBeInstanceOf(AuthError);
    expect(health.auth_required).toBe(true);
  });
});

describe("the tenant's episodes through the SDK", () => {
  it("lists them in pages, iterates over every page, and a deleted one is gone", async () => {
    const { key } = await keys.create({ tenantId: "sdk-list" });
    const requests: string[] = [];
    const env = new CodingEnv({ baseUrl: keyed.baseUrl, apiKey: key, fetch: countingFetch(requests) });
    const created: string[] = [];
    for (let i = 0; i < 5; i++) {
      const one = env.withEpisode();
      created.push((await one.reset()).episode_id);
    }
    await env.withEpisode(created[1]).step("x = 1");

    const first = await env.listEpisodes({ limit: 2 });
    const all: string[] = [];
    for await (const summary of env.episodes({ pageSize: 2 })) all.push(summary.episode_id);

    expect(first.episodes).toHaveLength(2);
    expect(first.next_cursor).toEqual(expect.any(String));
    expect(all.sort()).toEqual([...created].sort());
    expect(requests.filter((r) => r.startsWith("GET /episodes?limit=2")).length).toBeGreaterThanOrEqual(4);
    const stepped = (await env.listEpisodes({ limit: 100 })).episodes.find(
      (e) => e.episode_id === created[1],
    );
    expect(stepped).toMatchObject({ step_count: 1 });

    await env.deleteEpisode(created[0] as string);
    const after: string[] = [];
    for await (const summary of env.episodes()) after.push(summary.episode_id);
    expect(after.sort()).toEqual(created.slice(1).sort());
    await expect(env.withEpisode(created[0]).state()).rejects.toBeInstanceOf(NotFoundError);
  });

  it("deleteEpisode unbinds the client when it is its own episode; ignoreMissing forgives a 404", async () => {
    const env = new CodingEnv({ baseUrl: stackUrl() });
    const { episode_id } = await env.reset();

    await env.deleteEpisode(episode_id);

    expect(env.episodeId).toBeUndefined();
    await expect(env.deleteEpisode(episode_id)).rejects.toBeInstanceOf(NotFoundError);
    await expect(env.deleteEpisode(episode_id, { ignoreMissing: true })).resolves.toBeUndefined();
    // The client stays usable (unlike after close()).
    await env.reset();
    await env.close();
  });

  it("setApiKey changes the key of the client and of the clients made from it", async () => {
    const { key: keyA } = await keys.create({ tenantId: "sdk-key-a" });
    const { key: keyB } = await keys.create({ tenantId: "sdk-key-b" });
    const env = new CodingEnv({ baseUrl: keyed.baseUrl, retry: false });
    const noKey = await env.listEpisodes().catch((err: unknown) => err);

    env.setApiKey(keyA);
    const inA = env.withEpisode();
    await inA.reset();
    const forked = await inA.fork();
    env.setApiKey(keyB);
    // The fork and the episode are tenant A's: with B's key (shared by every client) they are not found.
    const fromB = await forked.state().catch((err: unknown) => err);
    const listedForB = await env.listEpisodes();
    env.setApiKey(undefined);
    const cleared = await inA.state().catch((err: unknown) => err);
    forked.setApiKey(keyA);

    expect(noKey).toBeInstanceOf(AuthError);
    expect(fromB).toBeInstanceOf(NotFoundError);
    expect(listedForB.episodes).toEqual([]);
    expect(cleared).toBeInstanceOf(AuthError);
    expect((await env.listEpisodes()).episodes.map((e) => e.episode_id).sort()).toEqual(
      [inA.episodeId, forked.episodeId].sort(),
    );
  });
});

describe("history through the SDK", () => {
  it("pages the history with limit and cursor", async () => {
    await using env = new CodingEnv({ baseUrl: stackUrl() });
    await env.reset();
    for (const code of ["a = 1", "b = 2", "c = 3"]) await env.step(code);

    const first = await env.history({ limit: 2 });
    const second = await env.history({ limit: 2, cursor: first.next_cursor ?? "" });

    expect(first.steps.map((s) => s.code)).toEqual(["a = 1", "b = 2"]);
    expect(second.steps.map((s) => s.code)).toEqual(["c = 3"]);
    expect(second.next_cursor).toBeNull();
  });

  it("exportHistory streams every step with its episode id; exportHistoryJsonl gives the lines", async () => {
    await using env = new CodingEnv({ baseUrl: stackUrl() });
    await env.reset({ policy: "full" });
    // Output large enough that the export arrives in several chunks.
    const codes = Array.from({ length: 12 }, (_, i) => `print('${i}' * 20000)`);
    for (const code of codes) await env.step(code);

    const streamed: { step: number; code: string; episode_id: string; stdout: string }[] = [];
    for await (const s of env.exportHistory()) {
      streamed.push({ step: s.step, code: s.code, episode_id: s.episode_id, stdout: s.observation.stdout });
    }
    const text = await new Response(await env.exportHistoryJsonl()).text();
    let seen = 0;
    for await (const _ of env.exportHistory()) {
      if (++seen === 2) break; // stopping early releases the connection
    }

    expect(streamed.map((s) => s.code)).toEqual(codes);
    expect(streamed.map((s) => s.step)).toEqual(codes.map((_, i) => i + 1));
    expect(new Set(streamed.map((s) => s.episode_id))).toEqual(new Set([env.episodeId]));
    expect(streamed[3]?.stdout.trim()).toBe("3".repeat(20000));
    const lines = text.trim().split("\n");
    expect(lines).toHaveLength(codes.length);
    expect(JSON.parse(lines[0] ?? "")).toMatchObject({ step: 1, episode_id: env.episodeId });
    expect(seen).toBe(2);
  });

  it("a connection cut in the middle of the export is a NetworkError from the loop", async () => {
    await using env = new CodingEnv({ baseUrl: stackUrl() });
    await env.reset();
    await env.step("print('x' * 100000)");
    await env.step("print('y' * 100000)");
    // A fetch whose body ends in an error after its first chunk: the socket dying mid-answer.
    const cutting: FetchLike = async (input, init) => {
      const response = await fetch(input, init);
      const reader = response.body?.getReader();
      let sent = false;
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          if (sent) {
            controller.error(new TypeError("terminated"));
            return;
          }
          const next = await reader?.read();
          if (next?.value) controller.enqueue(next.value.subarray(0, 10));
          sent = true;
        },
      });
      return new Response(body, { status: response.status, headers: response.headers });
    };
    const cut = new CodingEnv({ baseUrl: stackUrl(), episodeId: env.episodeId, fetch: cutting });

    const error = await (async () => {
      for await (const _ of cut.exportHistory()) {
        // nothing: the first line never completes
      }
    })().catch((err: unknown) => err);

    expect(error).toBeInstanceOf(NetworkError);
  });
});

describe("the cookie's episode", () => {
  it("cookieState answers the episode the reset cookie names, and undefined without one", async () => {
    // Node's fetch keeps no cookies: this one does, as a browser on the API's origin would.
    let cookie: string | undefined;
    const browserLike: FetchLike = async (input, init) => {
      const headers = new Headers(init.headers);
      if (cookie !== undefined) headers.set("cookie", cookie);
      const response = await fetch(input, { ...init, headers });
      const set = response.headers.getSetCookie()[0];
      if (set !== undefined) cookie = set.split(";")[0];
      return response;
    };
    const env = new CodingEnv({ baseUrl: stackUrl(), fetch: browserLike });
    const before = await env.cookieState();
    const started = await env.withEpisode().reset();

    const state = await env.cookieState();
    await env.deleteEpisode(started.episode_id);
    const afterDelete = await env.cookieState();

    expect(before).toBeUndefined();
    expect(state).toMatchObject({ episode_id: started.episode_id, step_count: 0 });
    expect(afterDelete).toBeUndefined();
  });
});
