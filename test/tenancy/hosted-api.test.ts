// Hosted mode end to end: a local stack with auth on (dynalite with transactions, the real Python
// executor, the API over HTTP), keys made with the keys CLI and the key store. The stack turns auth
// on from CODING_ENV_AUTH (no `auth` option), which the last suite checks.
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalStack, startLocalStack } from "../../functions/src/local/stack.js";
import { dynamoDbApiKeyStore } from "../../functions/src/store/dynamodb-api-keys.js";
import { type ApiKeyStore, generateApiKey, type QuotaOverrides } from "../../functions/src/tenancy/index.js";
import { main as keysMain } from "../../scripts/keys.js";
import { clientFor } from "./helpers/dynalite-table.js";

const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
const AUTH_CACHE_TTL_MS = 300;

let stack: LocalStack;
let client: DynamoDBClient;
let keys: ApiKeyStore;

beforeAll(async () => {
  stack = await startLocalStack({
    port: 0,
    dataDir: null,
    env: { CODING_ENV_AUTH: "on", CODING_ENV_AUTH_CACHE_TTL_MS: String(AUTH_CACHE_TTL_MS) },
  });
  client = clientFor(stack.dynamodbEndpoint, stack.credentials);
  keys = dynamoDbApiKeyStore({ client, tableName: stack.tableName });
});
afterAll(async () => {
  client?.destroy();
  await stack?.stop();
});

interface Answer {
  status: number;
  body: Record<string, unknown>;
  headers: Headers;
}

async function call(
  method: string,
  path: string,
  opts: { key?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.key) headers.authorization = `Bearer ${opts.key}`;
  if (opts.body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(`${stack.baseUrl}${path}`, {
    method,
    headers,
    ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}),
  });
  const text = await res.text();
  return {
    status: res.status,
    body: text ? (JSON.parse(text) as Record<string, unknown>) : {},
    headers: res.headers,
  };
}

let tenantSeq = 0;
async function newKey(quotas: QuotaOverrides = {}): Promise<{ key: string; tenantId: string }> {
  const tenantId = `tenant-${process.pid}-${++tenantSeq}`;
  const { key } = await keys.create({ tenantId, quotas });
  return { key, tenantId };
}

async function reset(key: string, body: Record<string, unknown> = {}): Promise<string> {
  const out = await call("POST", "/reset", { key, body });
  expect(out.status, JSON.stringify(out.body)).toBe(200);
  return out.body.episode_id as string;
}

const step = (key: string, episodeId: string, code: string) =>
  call("POST", "/step", { key, body: { episode_id: episodeId, action: { code } } });

const today = () => new Date().toISOString().slice(0, 10);

/**
 * `GET /usage` once the roll-up (the change stream, batched about every second) has caught up:
 * re-read until `ready(totals)` holds; the last answer is returned either way, for the assertions.
 */
async function usageWhen(
  key: string,
  query: string,
  ready: (totals: Record<string, number>) => boolean,
): Promise<Answer> {
  let out = await call("GET", `/usage${query}`, { key });
  for (let i = 0; i < 100 && out.status === 200 && !ready(out.body.totals as Record<string, number>); i++) {
    await new Promise((r) => setTimeout(r, 200));
    out = await call("GET", `/usage${query}`, { key });
  }
  return out;
}
const nextMidnight = () => {
  const d = new Date();
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1)).toISOString();
};

/**
 * `npm run keys` against the stack's DynamoDB: the command's `main` in this process, its output
 * captured (a process per call costs seconds; keys-cli.test.ts runs it as its own process).
 */
async function keysCli(...args: string[]): Promise<{ code: number; stdout: string }> {
  const out: string[] = [];
  const write = process.stdout.write;
  process.stdout.write = ((chunk: string | Uint8Array) => {
    out.push(String(chunk));
    return true;
  }) as typeof process.stdout.write;
  try {
    const code = await keysMain(args, {
      PATH: process.env.PATH,
      CODING_ENV_TABLE: stack.tableName,
      CODING_ENV_DYNAMODB_ENDPOINT: stack.dynamodbEndpoint,
      CODING_ENV_LOCAL_ACCESS_KEY_ID: stack.credentials.accessKeyId,
      CODING_ENV_LOCAL_SECRET_ACCESS_KEY: stack.credentials.secretAccessKey,
    });
    return { code, stdout: out.join("") };
  } finally {
    process.stdout.write = write;
  }
}

describe("auth on: keys", () => {
  const guarded: Array<[string, string, unknown?]> = [
    ["POST", "/reset", {}],
    ["POST", "/step", { episode_id: "ep_x", action: { code: "1" } }],
    ["GET", "/state?episode_id=ep_x"],
    ["GET", "/episodes/ep_x"],
    ["GET", "/episodes/ep_x/history"],
    ["POST", "/episodes/ep_x/fork"],
    ["DELETE", "/episodes/ep_x"],
    ["GET", "/usage"],
  ];

  it("keeps the public routes open and says that keys are required", async () => {
    const health = await call("GET", "/health");
    expect(health.status).toBe(200);
    expect(health.body).toEqual({ status: "healthy", auth_required: true });
    for (const path of ["/schema", "/metadata", "/openapi.json"])
      expect((await call("GET", path)).status).toBe(200);
  });

  it("answers 401 unauthorized to no key, a malformed key and an unknown key on every other route", async () => {
    for (const [method, path, body] of guarded) {
      const variants: Record<string, string>[] = [
        {},
        { authorization: "Bearer nope" },
        { "x-api-key": generateApiKey() },
      ];
      for (const headers of variants) {
        const out = await call(method, path, { headers, ...(body !== undefined ? { body } : {}) });
        expect(out.status, `${method} ${path} ${JSON.stringify(headers)}`).toBe(401);
        expect((out.body.error as Record<string, unknown>).code).toBe("unauthorized");
      }
    }
  });

  it("accepts a key made by `npm run keys -- create` (either header) and refuses it once revoked", async () => {
    const created = await keysCli("create", "--tenant", "cli-tenant", "--name", "e2e");
    expect(created.code).toBe(0);
    const key = created.stdout.trimEnd().split("\n").at(-1) ?? "";
    expect((await call("POST", "/reset", { key, body: {} })).status).toBe(200);
    expect((await call("POST", "/reset", { headers: { "x-api-key": key }, body: {} })).status).toBe(200);
    const keyId = (await keys.findByKey(key))?.keyId ?? "";
    expect((await keysCli("revoke", keyId)).code).toBe(0);
    await new Promise((r) => setTimeout(r, AUTH_CACHE_TTL_MS + 100)); // the API's key cache expires
    for (const [method, path, body] of guarded) {
      const out = await call(method, path, { key, ...(body !== undefined ? { body } : {}) });
      expect(out.status, `${method} ${path}`).toBe(401);
    }
  });
});

describe("auth on: OpenEnv-style Python client", () => {
  it("passes the key in a requests.Session's default headers (X-API-Key or Bearer); without it, 401", async () => {
    const { key } = await newKey();
    const out = await promisify(execFile)(
      "/usr/bin/python3",
      ["test/tenancy/python_keyed_client.py", stack.baseUrl, key],
      { cwd: repoRoot },
    );
    const seen = JSON.parse(out.stdout.trim()) as Record<string, Record<string, string>>;
    expect(seen.anonymous).toBe(401);
    expect(seen.x_api_key?.stdout).toBe("42\n");
    expect(seen.bearer?.stdout).toBe("42\n");
  });
});

describe("auth on: tenant isolation", () => {
  it("tenant B cannot see, step, fork, read the history of or delete tenant A's episode (404)", async () => {
    // Prepare
    const a = await newKey();
    const b = await newKey();
    const id = await reset(a.key);
    expect((await step(a.key, id, "x = 41")).status).toBe(200);
    // Act / Assess: every route answers as if the episode did not exist
    const attempts: Answer[] = [
      await call("GET", `/episodes/${id}`, { key: b.key }),
      await call("GET", `/state?episode_id=${id}`, { key: b.key }),
      await call("GET", "/state", { key: b.key, headers: { "x-episode-id": id } }),
      await call("GET", "/state", { key: b.key, headers: { cookie: `coding_env_episode=${id}` } }),
      await step(b.key, id, "x = 0"),
      await call("POST", "/step", {
        key: b.key,
        body: { action: { code: "x = 0" } },
        headers: { "x-episode-id": id },
      }),
      await call("GET", `/episodes/${id}/history`, { key: b.key }),
      await call("GET", `/episodes/${id}/history?format=jsonl`, { key: b.key }),
      await call("POST", `/episodes/${id}/fork`, { key: b.key }),
      await call("DELETE", `/episodes/${id}`, { key: b.key }),
    ];
    const unknown = await call("GET", "/episodes/ep_does_not_exist", { key: b.key });
    for (const out of attempts) {
      expect(out.status).toBe(404);
      expect((out.body.error as Record<string, unknown>).code).toBe("episode_not_found");
      expect(Object.keys(out.body.error as object).sort()).toEqual(
        Object.keys(unknown.body.error as object).sort(),
      );
    }
    // Ids are scoped by tenant: B's reset with A's id makes B's own episode (revealing nothing of
    // A's), and B's steps on it do not reach A's.
    const own = await call("POST", "/reset", { key: b.key, body: { episode_id: id } });
    expect(own.status).toBe(200);
    expect(own.body).toMatchObject({ episode_id: id, step_count: 0 });
    const bStep = await step(b.key, id, "x");
    expect(bStep.status).toBe(200);
    expect((bStep.body.observation as Record<string, unknown>).exit_code).toBe(1);
    expect((bStep.body.observation as Record<string, unknown>).stderr).toMatch(/NameError/);
    // A's episode is untouched: its state survived every attempt.
    const after = await step(a.key, id, "print(x + 1)");
    expect(after.status).toBe(200);
    expect((after.body.observation as Record<string, unknown>).stdout).toBe("42\n");
    expect(after.body.step_count).toBe(2);
    const history = await call("GET", `/episodes/${id}/history`, { key: a.key });
    expect((history.body.steps as unknown[]).length).toBe(2);
  });

  it("GET /usage only ever reports the caller's own tenant", async () => {
    const a = await newKey();
    const b = await newKey();
    const id = await reset(a.key);
    expect((await step(a.key, id, "1")).status).toBe(200);
    const bUsage = await call("GET", "/usage", { key: b.key });
    expect(bUsage.status).toBe(200);
    expect(bUsage.body.tenant_id).toBe(b.tenantId);
    expect(bUsage.body.totals).toMatchObject({ steps: 0, episodes_created: 0 });
  });
});

describe("auth on: metering", () => {
  it("counts exactly what ran under concurrency: steps, executor ms, GB-seconds, episodes", async () => {
    // Prepare
    const c = await newKey();
    const ids = await Promise.all(Array.from({ length: 6 }, () => reset(c.key)));
    const contested = await reset(c.key);
    let billedMs = 0;
    let committed = 0;
    const record = (out: Answer) => {
      if (out.status !== 200) return;
      committed++;
      billedMs += Math.ceil((out.body.info as Record<string, number>).duration_ms ?? 0);
    };
    // Act: 6 episodes x 5 steps in parallel, plus 6 racing steps on one episode (some get 409
    // step_in_progress: they did not run, so they are not metered)
    const racing = Promise.all(Array.from({ length: 6 }, () => step(c.key, contested, "y = 1")));
    await Promise.all(
      ids.map(async (id) => {
        for (let i = 0; i < 5; i++) {
          const out = await step(c.key, id, `v = ${i}\nprint(v)`);
          expect(out.status).toBe(200);
          record(out);
        }
      }),
    );
    const raced = await racing;
    for (const out of raced) {
      expect([200, 409]).toContain(out.status);
      record(out);
    }
    // Assess
    const usage = await usageWhen(
      c.key,
      `?from=${today()}&to=${today()}`,
      (t) => (t.steps ?? 0) >= committed && (t.episodes_created ?? 0) >= 7,
    );
    expect(usage.status).toBe(200);
    const totals = usage.body.totals as Record<string, number>;
    expect(committed).toBeGreaterThanOrEqual(31);
    expect(totals.steps).toBe(committed);
    expect(totals.executions).toBe(committed);
    expect(totals.episodes_created).toBe(7);
    expect(totals.executor_ms).toBe(billedMs);
    expect(totals.gb_seconds).toBe(billedMs / 1000); // 1024 MB executor: 1 ms = 0.001 GB-s
    expect(totals.state_bytes).toBeGreaterThan(0);
    expect(usage.body.days).toEqual([{ date: today(), ...totals }]);
  });

  it("answers 422 validation_error to a malformed usage range, as to every malformed query", async () => {
    const c = await newKey();
    for (const [q, param] of [
      ["from=2026-13-01", "from"],
      ["to=yesterday", "to"],
      ["from=2026-11-20&to=2026-11-10", "from"],
    ] as const) {
      const out = await call("GET", `/usage?${q}`, { key: c.key });
      expect(out.status).toBe(422);
      expect((out.body.error as Record<string, unknown>).code).toBe("validation_error");
      expect(out.body.detail).toEqual([expect.objectContaining({ loc: ["query", param] })]);
    }
  });
});

describe("auth on: quotas", () => {
  it("steps_per_day: the step after the limit gets 429 naming the quota and its reset; the episode is unchanged", async () => {
    const t = await newKey({ stepsPerDay: 4 });
    const id = await reset(t.key);
    for (let i = 1; i <= 4; i++) expect((await step(t.key, id, `n = ${i}`)).status).toBe(200);
    const over = await step(t.key, id, "n = 5");
    expect(over.status).toBe(429);
    expect(over.body.error).toMatchObject({
      code: "quota_exceeded",
      details: { quota: "steps_per_day", limit: 4, resets_at: nextMidnight() },
    });
    expect((over.body.error as Record<string, string>).message).toContain("steps_per_day");
    expect(Number(over.headers.get("retry-after"))).toBeGreaterThan(0);
    const state = await call("GET", `/episodes/${id}`, { key: t.key });
    expect(state.body.step_count).toBe(4);
    // Reads still work; the next step is refused too.
    expect((await step(t.key, id, "n = 6")).status).toBe(429);
    const usage = await usageWhen(t.key, "", (totals) => (totals.steps ?? 0) >= 4);
    expect((usage.body.totals as Record<string, number>).steps).toBe(4);
  });

  it("steps_per_day holds within one API instance under concurrency: 12 parallel steps with a limit of 6 -> 6 run", async () => {
    const t = await newKey({ stepsPerDay: 6 });
    const ids = await Promise.all(Array.from({ length: 12 }, () => reset(t.key)));
    const results = await Promise.all(ids.map((id) => step(t.key, id, "z = 1")));
    expect(results.filter((r) => r.status === 200)).toHaveLength(6);
    expect(results.filter((r) => r.status === 429)).toHaveLength(6);
    const usage = await usageWhen(t.key, "", (totals) => (totals.steps ?? 0) >= 6);
    expect((usage.body.totals as Record<string, number>).steps).toBe(6);
  });

  it("active_episodes: 429 at the limit; replacing, deleting and expiry free slots exactly", async () => {
    const t = await newKey({ activeEpisodes: 2 });
    const first = await reset(t.key);
    // Expires 2-3 s from now (whole seconds): long enough for the checks before the sleep.
    await reset(t.key, { ttl_s: 3 });
    const over = await call("POST", "/reset", { key: t.key, body: {} });
    expect(over.status).toBe(429);
    expect(over.body.error).toMatchObject({
      code: "quota_exceeded",
      details: { quota: "active_episodes", limit: 2 },
    });
    expect(over.headers.get("retry-after")).not.toBeNull();
    // A reset that replaces one of its own episodes needs no new slot.
    expect((await call("POST", "/reset", { key: t.key, body: { episode_id: first } })).status).toBe(200);
    // Concurrent resets at the limit never get past it.
    const burst = await Promise.all(
      Array.from({ length: 4 }, () => call("POST", "/reset", { key: t.key, body: {} })),
    );
    expect(burst.every((r) => r.status === 429)).toBe(true);
    // Expiry (no delete, nothing told the counter) frees the second slot.
    await new Promise((r) => setTimeout(r, 3_100));
    const afterExpiry = await reset(t.key);
    expect((await call("POST", "/reset", { key: t.key, body: {} })).status).toBe(429);
    // Delete frees one too.
    expect((await call("DELETE", `/episodes/${afterExpiry}`, { key: t.key })).status).toBe(204);
    await reset(t.key);
    // Fork creates an episode, so it needs a slot as well.
    const fork = await call("POST", `/episodes/${first}/fork`, { key: t.key });
    expect(fork.status).toBe(429);
  });

  it("max_step_timeout_s: 429 for a reset asking more; the default is capped at the quota", async () => {
    const t = await newKey({ maxStepTimeoutS: 5 });
    const over = await call("POST", "/reset", { key: t.key, body: { step_timeout_s: 10 } });
    expect(over.status).toBe(429);
    expect(over.body.error).toMatchObject({
      details: { quota: "max_step_timeout_s", limit: 5, resets_at: null },
    });
    const id = await reset(t.key);
    expect((await call("GET", `/episodes/${id}`, { key: t.key })).body.step_timeout_s).toBe(5);
  });

  it("max_state_bytes: a step whose state is over the quota gets 413 and leaves the episode as it was", async () => {
    const t = await newKey({ maxStateBytes: 4000 });
    const id = await reset(t.key, { policy: "full" });
    expect((await step(t.key, id, "small = 1")).status).toBe(200);
    const big = await step(t.key, id, "import os\nbig = os.urandom(50_000)");
    expect(big.status).toBe(413);
    expect(big.body.error).toMatchObject({
      code: "state_too_large",
      details: { quota: "max_state_bytes", limit: 4000 },
    });
    const state = await call("GET", `/episodes/${id}`, { key: t.key });
    expect(state.body.step_count).toBe(1);
    const check = await step(t.key, id, "print(small, 'big' in globals())");
    expect((check.body.observation as Record<string, unknown>).stdout).toBe("1 False\n");
    // The refused step ran: its execution is metered, though it is not a step.
    const usage = await usageWhen(t.key, "", (totals) => (totals.executions ?? 0) >= 3);
    expect(usage.body.totals).toMatchObject({ steps: 2, executions: 3 });
  });
});

describe("local stack switch", () => {
  it("startLocalStack honours CODING_ENV_AUTH=on when `auth` is not given", async () => {
    // This file's stack was started so (above).
    const health = await fetch(`${stack.baseUrl}/health`).then((r) => r.json());
    expect(health).toEqual({ status: "healthy", auth_required: true });
    const reset = await fetch(`${stack.baseUrl}/reset`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(reset.status).toBe(401);
  });
});
