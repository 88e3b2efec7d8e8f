// Every error status of the API, in the one JSON error shape, with nothing internal leaked.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createApp } from "../../functions/src/app.js";
import { defaultConfig } from "../../functions/src/config.js";
import { buildDeps } from "../../functions/src/deps.js";
import { type DynaliteHandle, startDynalite } from "../../functions/src/local/dynalite-server.js";
import { ensureTable, type LocalStack, startLocalStack } from "../../functions/src/local/stack.js";
import { type ApiReply, call, Episode, errorCode } from "../helpers/api.js";

const baseUrl = inject("baseUrl");

function expectNoInternals(reply: ApiReply<unknown>): void {
  expect(reply.text).not.toMatch(/\/work\/|node_modules|\.ts:\d+|\n\s+at |Exception|dynalite|DynamoDB/);
}

describe("error statuses", () => {
  it("400 invalid_json for malformed JSON", async () => {
    for (const path of ["/reset", "/step"]) {
      const r = await call(baseUrl, "POST", path, "{bad json");
      expect(r.status).toBe(400);
      expect(errorCode(r)).toBe("invalid_json");
      expectNoInternals(r);
    }
  });

  it("404 not_found for unknown routes and 405 for known routes with another method", async () => {
    const r = await call(baseUrl, "GET", "/nope");
    expect(r.status).toBe(404);
    expect(errorCode(r)).toBe("not_found");
    for (const [method, path] of [
      ["GET", "/reset"],
      ["PUT", "/step"],
      ["POST", "/state"],
      ["PATCH", "/episodes/ep_x"],
      ["GET", "/episodes/ep_x/fork"],
    ] as const) {
      const m = await call(baseUrl, method, path);
      expect(m.status, `${method} ${path}`).toBe(405);
      expect(errorCode(m)).toBe("method_not_allowed");
    }
  });

  it("413 payload_too_large for a body over 2 MiB and for code over 1 MiB", async () => {
    const ep = await Episode.reset(baseUrl);
    const huge = await ep.step("#".repeat(3 * 1024 * 1024));
    expect(huge.status).toBe(413);
    expect(errorCode(huge)).toBe("payload_too_large");
    const bigCode = await ep.step(`# ${"x".repeat(1024 * 1024)}`);
    expect(bigCode.status).toBe(413);
    expect(errorCode(bigCode)).toBe("payload_too_large");
    expect((await ep.state()).step_count).toBe(0);
  });

  it("422 validation_error with FastAPI's detail list for bodies of the wrong shape", async () => {
    const ep = await Episode.reset(baseUrl);
    const cases: Array<[string, unknown, string]> = [
      ["/step", { episode_id: ep.id }, "action"],
      ["/step", { action: { code: 5 }, episode_id: ep.id }, "code"],
      ["/step", { action: { code: "1" }, timeout_s: -1, episode_id: ep.id }, "timeout_s"],
      ["/step", [1, 2], ""],
      ["/reset", { seed: -1 }, "seed"],
      ["/reset", { policy: "root" }, "policy"],
      ["/reset", { episode_id: "has space" }, "episode_id"],
      ["/reset", { additional_imports: ["os; rm"] }, "additional_imports"],
      ["/reset", { step_timeout_s: 10_000 }, "step_timeout_s"],
      ["/reset", { ttl_s: 10 ** 9 }, "ttl_s"],
    ];
    for (const [path, body, field] of cases) {
      const r = await call<{ detail: Array<{ loc: unknown[]; msg: string; type: string }> }>(
        baseUrl,
        "POST",
        path,
        body,
      );
      expect(r.status, JSON.stringify(body)).toBe(422);
      expect(errorCode(r)).toBe("validation_error");
      expect(r.body.detail.length).toBeGreaterThan(0);
      expect(r.body.detail[0]?.loc[0]).toBe("body");
      if (field) expect(JSON.stringify(r.body.detail.map((d) => d.loc))).toContain(field);
    }
  });

  it("large Python state is kept (split into chunks) and state over the limit is 413 state_too_large, episode unchanged", async () => {
    // Prepare
    const ep = await Episode.reset(baseUrl, { policy: "full" });
    // Act: ~1 MB of incompressible state, over one DynamoDB item
    await ep.run("import os\nbig = os.urandom(1_000_000)\ndigest = hash(big)");
    const kept = await ep.run("len(big), hash(big) == digest");
    await ep.run("small = 1");
    const tooBig = await ep.step("huge = os.urandom(4 * 1024 * 1024)");
    // Assess
    expect(kept.observation.stdout).toBe("[1000000, true]");
    expect(tooBig.status).toBe(413);
    expect(errorCode(tooBig)).toBe("state_too_large");
    const after = await ep.run("'huge' in globals(), len(big), small");
    expect(after.observation.stdout).toBe("[false, 1000000, 1]");
    expect(after.step_count).toBe(4);
  });
});

describe("executor failures (fake Invoke endpoint: a runtime crash or hang cannot be caused on demand)", () => {
  let dynamo: DynaliteHandle;
  let fakeExecutor: Server;
  let api: ReturnType<typeof serve>;
  let apiUrl: string;
  let destroy: () => void;
  let mode: "function-error" | "hang" = "function-error";

  beforeAll(async () => {
    dynamo = await startDynalite({});
    fakeExecutor = createServer((req, res) => {
      req.resume();
      if (mode === "hang") return; // never answers
      res.writeHead(200, { "content-type": "application/json", "x-amz-function-error": "Unhandled" });
      res.end(JSON.stringify({ errorType: "RuntimeFailure", errorMessage: "/srv/secret/path.py exploded" }));
    });
    await new Promise<void>((r) => fakeExecutor.listen(0, "127.0.0.1", () => r()));
    const config = { ...defaultConfig, tableName: "errors-test" };
    const deps = buildDeps({
      config,
      dynamodbEndpoint: dynamo.endpoint,
      executorEndpoint: `http://127.0.0.1:${(fakeExecutor.address() as AddressInfo).port}`,
    });
    destroy = deps.destroy;
    await ensureTable(deps.dynamodb, config.tableName);
    api = serve({ fetch: createApp(deps).fetch, port: 0, hostname: "127.0.0.1" });
    await new Promise<void>((r) => api.once("listening", () => r()));
    apiUrl = `http://127.0.0.1:${(api.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await new Promise<void>((r) => api.close(() => r()));
    fakeExecutor.closeAllConnections();
    await new Promise<void>((r) => fakeExecutor.close(() => r()));
    destroy();
    await dynamo.stop();
  });

  it("502 executor_error when the executor reports a function error; the episode is unchanged", async () => {
    mode = "function-error";
    const ep = await Episode.reset(apiUrl);
    const r = await ep.step("print(1)");
    expect(r.status).toBe(502);
    expect(errorCode(r)).toBe("executor_error");
    expect(r.text).not.toContain("secret");
    expectNoInternals(r);
    expect((await ep.state()).step_count).toBe(0);
  });

  it("504 executor_timeout when the executor does not answer in time; the episode is unchanged", async () => {
    mode = "hang";
    // step limit 0.1 s + the executor's 5 s grace
    const ep = await Episode.reset(apiUrl, { step_timeout_s: 0.1 });
    const r = await ep.step("print(1)");
    expect(r.status).toBe(504);
    expect(errorCode(r)).toBe("executor_timeout");
    expect((await ep.state()).step_count).toBe(0);
  }, 20_000);
});

describe("authentication (a stack with CODING_ENV_AUTH=on)", () => {
  let stack: LocalStack;
  beforeAll(async () => {
    stack = await startLocalStack({ port: 0, dataDir: null, auth: true });
  });
  afterAll(async () => {
    await stack.stop();
  });

  it("401 unauthorized without a valid key; public routes stay open", async () => {
    const health = await call(stack.baseUrl, "GET", "/health");
    expect(health.body).toEqual({ status: "healthy", auth_required: true });
    expect((await call(stack.baseUrl, "GET", "/schema")).status).toBe(200);
    const attempts: Array<Record<string, string>> = [
      {},
      { authorization: "Bearer nope" },
      { "x-api-key": "nope" },
    ];
    for (const headers of attempts) {
      const r = await call(stack.baseUrl, "POST", "/reset", {}, headers);
      expect(r.status).toBe(401);
      expect(errorCode(r)).toBe("unauthorized");
    }
  });
});
