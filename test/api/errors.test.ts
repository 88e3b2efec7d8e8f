// Every error status of the API, in the one JSON error shape, with nothing internal leaked.
import { createServer, request, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createApp } from "../../functions/src/app.js";
import { defaultConfig } from "../../functions/src/config.js";
import { buildDeps } from "../../functions/src/deps.js";
import { LambdaExecutor } from "../../functions/src/executor/executor.js";
import { type DynaliteHandle, startDynalite } from "../../functions/src/local/dynalite-server.js";
import { ensureTable, type LocalStack, startLocalStack } from "../../functions/src/local/stack.js";
import { CodingEnv } from "../../sdk/src/index.js";
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

  it("413 payload_too_large for a chunked body (no Content-Length) over 2 MiB, counted as it streams", async () => {
    const ep = await Episode.reset(baseUrl);
    const chunk = Buffer.alloc(64 * 1024, "#");
    const reply = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request(`${baseUrl}/step`, {
        method: "POST",
        headers: { "content-type": "application/json", "transfer-encoding": "chunked" },
      });
      req.on("response", (res) => {
        const parts: Buffer[] = [];
        res.on("data", (c: Buffer) => parts.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(parts).toString() }));
      });
      // The server may answer and close before the whole body is sent.
      req.on("error", (err) => (req.writableEnded ? undefined : reject(err)));
      // Small code, a large extra member: only the body's size can refuse it.
      req.write(`{"episode_id":"${ep.id}","action":{"code":"print(1)"},"padding":"`);
      for (let i = 0; i < 33; i++) req.write(chunk);
      req.end(`"}`);
    });
    expect(reply.status).toBe(413);
    expect((JSON.parse(reply.text) as { error: { code: string } }).error.code).toBe("payload_too_large");
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

  it("large Python state is kept (an object in the local S3) and state over the limit is 413 state_too_large, episode unchanged", async () => {
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

describe("executor failures (fake Invoke endpoint: crashes, throttling and hangs cannot be caused on demand)", () => {
  type Mode =
    | "ok"
    | "function-error"
    | "hang"
    | "throttle"
    | "throttle-once"
    | "response-too-large"
    | "request-too-large"
    | "service-error";
  let dynamo: DynaliteHandle;
  let fakeExecutor: Server;
  let api: ReturnType<typeof serve>;
  let apiUrl: string;
  let deps: ReturnType<typeof buildDeps>;
  let mode: Mode = "function-error";
  let exitCode: unknown = 0;
  /** What the fake received: the Invoke's tenant header and the event. */
  const invokes: Array<{ tenantHeader: string | undefined; event: Record<string, unknown> }> = [];

  const answer = (res: ServerResponse, status: number, headers: Record<string, string>, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json", ...headers });
    res.end(JSON.stringify(body));
  };

  beforeAll(async () => {
    dynamo = await startDynalite({});
    fakeExecutor = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const event = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}") as Record<string, unknown>;
        const tenantHeader = req.headers["x-amz-tenant-id"] as string | undefined;
        invokes.push({ tenantHeader, event });
        const current = mode === "throttle-once" && invokes.length > 1 ? "ok" : mode;
        if (current === "hang") return; // never answers
        if (current === "throttle" || current === "throttle-once") {
          answer(
            res,
            429,
            { "x-amzn-errortype": "TooManyRequestsException", "retry-after": "1" },
            {
              Reason: "ReservedFunctionConcurrentInvocationLimitExceeded",
              Type: "User",
              message: "Rate Exceeded.",
            },
          );
        } else if (current === "request-too-large") {
          answer(
            res,
            413,
            { "x-amzn-errortype": "RequestTooLargeException" },
            {
              Type: "User",
              message: "Request must be smaller than 6291456 bytes for the InvokeFunction operation",
            },
          );
        } else if (current === "service-error") {
          answer(
            res,
            500,
            { "x-amzn-errortype": "ServiceException" },
            { Type: "Service", message: "/srv/x failed" },
          );
        } else if (current === "response-too-large") {
          answer(
            res,
            200,
            { "x-amz-function-error": "Unhandled" },
            {
              errorType: "Function.ResponseSizeTooLarge",
              errorMessage: "Response payload size exceeded maximum allowed payload size (6291556 bytes).",
            },
          );
        } else if (current === "function-error") {
          answer(
            res,
            200,
            { "x-amz-function-error": "Unhandled" },
            { errorType: "RuntimeFailure", errorMessage: "/srv/secret/path.py exploded" },
          );
        } else {
          answer(
            res,
            200,
            {},
            {
              contract_version: 1,
              stdout: "ran",
              stderr: "",
              exit_code: exitCode,
              snapshot: String(event.snapshot ?? ""),
              state_version: Number(event.state_version ?? 0) + 1,
              duration_ms: 1,
              error_code: null,
            },
          );
        }
      });
    });
    await new Promise<void>((r) => fakeExecutor.listen(0, "127.0.0.1", () => r()));
    // A short grace and a 3 s request deadline, so that both ways of giving up are quick.
    const config = { ...defaultConfig, tableName: "errors-test", executorGraceS: 1, requestDeadlineS: 3 };
    deps = buildDeps({
      config,
      dynamodbEndpoint: dynamo.endpoint,
      executorEndpoint: `http://127.0.0.1:${(fakeExecutor.address() as AddressInfo).port}`,
    });
    await ensureTable(deps.dynamodb, config.tableName);
    api = serve({ fetch: createApp(deps).fetch, port: 0, hostname: "127.0.0.1" });
    await new Promise<void>((r) => api.once("listening", () => r()));
    apiUrl = `http://127.0.0.1:${(api.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await new Promise<void>((r) => api.close(() => r()));
    fakeExecutor.closeAllConnections();
    await new Promise<void>((r) => fakeExecutor.close(() => r()));
    deps.destroy();
    await dynamo.stop();
  });

  it("sends the tenant as the Invoke's TenantId and in the event", async () => {
    mode = "ok";
    exitCode = 0;
    const ep = await Episode.reset(apiUrl);
    invokes.length = 0;
    const r = await ep.step("print(1)");
    expect(r.status).toBe(200);
    const stepInvoke = invokes.find((i) => i.event.code === "print(1)");
    expect(stepInvoke?.tenantHeader).toBe("local");
    expect(stepInvoke?.event).toMatchObject({ tenant_id: "local", episode_id: ep.id });
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

  it("429 executor_throttled with Retry-After when Lambda throttles (the code never ran)", async () => {
    mode = "throttle";
    const ep = await Episode.reset(apiUrl);
    const r = await ep.step("print(1)");
    expect(r.status).toBe(429);
    expect(errorCode(r)).toBe("executor_throttled");
    expect(r.headers.get("retry-after")).toBe("1");
    expectNoInternals(r);
    expect((await ep.state()).step_count).toBe(0);
  });

  it("the SDK retries a throttled step after Retry-After and gets its result", async () => {
    mode = "throttle-once";
    invokes.length = 0;
    const env = new CodingEnv({ baseUrl: apiUrl });
    await env.reset();
    const result = await env.step("print(1)");
    expect(result.observation.stdout).toBe("ran");
    expect(invokes.filter((i) => i.event.code === "print(1)")).toHaveLength(2);
  });

  it("a reply Lambda says is too large stays a 502 and a request over 6 MB is a 413, in the one shape", async () => {
    const ep = await Episode.reset(apiUrl);
    mode = "response-too-large";
    const big = await ep.step("print('x' * 10**7)");
    expect(big.status).toBe(502);
    expect(errorCode(big)).toBe("executor_error");
    expect((big.body as unknown as { error: { message: string } }).error.message).toContain("6 MB");
    mode = "request-too-large";
    const tooBig = await ep.step("print(1)");
    expect(tooBig.status).toBe(413);
    expect(errorCode(tooBig)).toBe("payload_too_large");
    mode = "service-error";
    const failed = await ep.step("print(1)");
    expect(failed.status).toBe(502);
    expect(errorCode(failed)).toBe("executor_error");
    expectNoInternals(failed);
    expect((await ep.state()).step_count).toBe(0);
  });

  it("an exit code outside 0..255 from the executor is answered 200 with exit code 1, never a 5xx", async () => {
    mode = "ok";
    const ep = await Episode.reset(apiUrl);
    for (const odd of [2 ** 60, -1, 256, true, 1.5]) {
      exitCode = odd;
      const r = await ep.step("raise SystemExit(2**60)");
      expect(r.status, String(odd)).toBe(200);
      expect(r.body.observation.exit_code).toBe(1);
    }
    exitCode = 0;
  });

  it("504 executor_timeout when the executor does not answer in time; the episode is unchanged", async () => {
    mode = "hang";
    // step limit 0.1 s + the 1 s grace of this app
    const ep = await Episode.reset(apiUrl, { step_timeout_s: 0.1 });
    const r = await ep.step("print(1)");
    expect(r.status).toBe(504);
    expect(errorCode(r)).toBe("executor_timeout");
    expect((await ep.state()).step_count).toBe(0);
  }, 20_000);

  it("504 at the request deadline when the step limit + grace would wait longer", async () => {
    // A 60 s step limit + 1 s grace, but this app answers every request within 3 s.
    mode = "hang";
    const ep = await Episode.reset(apiUrl, { step_timeout_s: 60 });
    const r = await ep.step("print(1)");
    expect(r.status).toBe(504);
    expect(errorCode(r)).toBe("executor_timeout");
  }, 20_000);

  it("discard sends the tenant's discard event and never rejects, even when the executor fails", async () => {
    const executor = new LambdaExecutor({ client: deps.lambda, functionName: "coding-env-executor" });
    mode = "ok";
    invokes.length = 0;
    await executor.discard({ tenantId: "t_1", episodeId: "ep_gone", incarnation: "abc" });
    expect(invokes).toEqual([
      {
        tenantHeader: "t_1",
        event: {
          contract_version: 1,
          op: "discard",
          tenant_id: "t_1",
          episode_id: "ep_gone",
          incarnation: "abc",
        },
      },
    ]);
    mode = "service-error";
    await expect(executor.discard({ tenantId: "t_1", episodeId: "ep_gone" })).resolves.toBeUndefined();
  });
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
