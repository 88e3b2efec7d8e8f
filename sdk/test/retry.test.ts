import { afterEach, describe, expect, it } from "vitest";
import {
  CodingEnv,
  ConflictError,
  DEFAULT_RETRY,
  errorFromResponse,
  NetworkError,
  NotFoundError,
  TimeoutError,
} from "../src/index.js";
import { resolveRetry, retryDelayMs } from "../src/retry.js";
import { type ForwardingProxy, type ProxyFault, stackUrl, startForwardingProxy } from "./helpers.js";

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  // Last in, first out: episodes are closed through their proxy before the proxy stops.
  for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => undefined);
});

async function proxy(fault?: (method: string, path: string, faultsSoFar: number) => ProxyFault | undefined) {
  const started: ForwardingProxy = await startForwardingProxy(stackUrl(), fault ? { fault } : {});
  cleanup.push(() => started.close());
  return started;
}

/**
 * Resolves once `count` POST /step requests have reached the proxy, which hands each to the server
 * at once: a step sent after it reaches the server while that one runs, however loaded the machine
 * is (after a fixed delay it might run first, or after that one ended).
 */
async function stepsReceived(p: ForwardingProxy, count: number): Promise<void> {
  await expect
    .poll(() => p.received.filter((r) => r.method === "POST" && r.path === "/step").length, {
      interval: 5,
      timeout: 30_000,
    })
    .toBeGreaterThanOrEqual(count);
}

function stepBodies(p: ForwardingProxy) {
  return p.exchanges
    .filter((e) => e.method === "POST" && e.path === "/step")
    .map((e) => ({ ...e, body: JSON.parse(e.requestBody) as { request_id: string } }));
}

describe("retries through a real proxy in front of the stack", () => {
  it("a dropped step response is retried with the same request_id and the code runs once", async () => {
    // Prepare: a counter in the episode, and a proxy that drops the first /step answer after the
    // server has run and committed it.
    const p = await proxy((method, path, faults) =>
      method === "POST" && path === "/step" && faults === 0 ? "drop" : undefined,
    );
    const env = new CodingEnv({ baseUrl: p.url, retry: { initialDelayMs: 10 } });
    cleanup.push(() => env.close());
    await env.reset();

    // Act
    const result = await env.step("counter = globals().get('counter', 0) + 1\ncounter");

    // Assess: two attempts reached the server with one request_id; the second was a replay.
    const steps = stepBodies(p);
    expect(steps).toHaveLength(2);
    expect(steps[0]?.fault).toBe("drop");
    expect(steps[0]?.status).toBe(200);
    expect(steps[1]?.body.request_id).toBe(steps[0]?.body.request_id);
    expect(steps[1]?.responseHeaders["idempotent-replayed"]).toBe("true");
    expect(result.observation.stdout).toBe("1");
    const check = await env.step("counter");
    expect(check.observation.stdout).toBe("1");
    expect((await env.state()).step_count).toBe(2);
  });

  it("a dropped reset response is retried with the same episode id: one episode, not two", async () => {
    const p = await proxy((method, path, faults) =>
      method === "POST" && path === "/reset" && faults === 0 ? "drop" : undefined,
    );
    const env = new CodingEnv({ baseUrl: p.url, retry: { initialDelayMs: 10 } });
    cleanup.push(() => env.close());

    const result = await env.reset();

    const resets = p.received.filter((r) => r.path === "/reset").map((r) => JSON.parse(r.body));
    expect(resets).toHaveLength(2);
    expect(resets[1].episode_id).toBe(resets[0].episode_id);
    expect(result.episode_id).toBe(resets[0].episode_id);
    expect((await env.step("1 + 1")).observation.stdout).toBe("2");
  });

  it("a gateway 502 after the server committed is retried and replayed, not run again", async () => {
    const p = await proxy((method, path, faults) =>
      method === "POST" && path === "/step" && faults === 0 ? "bad_gateway" : undefined,
    );
    const env = new CodingEnv({ baseUrl: p.url, retry: { initialDelayMs: 10 } });
    cleanup.push(() => env.close());
    await env.reset();

    const result = await env.step("hits = globals().get('hits', 0) + 1\nhits");

    const steps = stepBodies(p);
    expect(steps.map((e) => e.fault)).toEqual(["bad_gateway", undefined]);
    expect(steps[1]?.responseHeaders["idempotent-replayed"]).toBe("true");
    expect(result.observation.stdout).toBe("1");
    expect((await env.step("hits")).observation.stdout).toBe("1");
  });

  it("a client timeout mid-step is retried with the same request_id and the step commits once", async () => {
    // Prepare the episode with a patient client, then step with one whose attempts give up after
    // 400 ms: the cell takes 0.8 s, so the first attempt times out while the server still runs it.
    const p = await proxy();
    const setup = new CodingEnv({ baseUrl: stackUrl() });
    cleanup.push(() => setup.close());
    await setup.reset();
    await setup.step("runs = 0");
    const env = new CodingEnv({
      baseUrl: p.url,
      episodeId: setup.episodeId,
      timeoutMs: 400,
      retry: { initialDelayMs: 50, maxRetries: 8 },
    });
    const code = "import time\ntime.sleep(0.8)\nruns += 1\nruns";

    const result = await env.step(code);

    const attempts = p.received.filter((r) => r.path === "/step").map((r) => JSON.parse(r.body));
    expect(attempts.length).toBeGreaterThanOrEqual(2);
    expect(attempts.every((a) => a.action.code === code)).toBe(true);
    expect(new Set(attempts.map((a) => a.request_id)).size).toBe(1);
    expect(result.observation.stdout).toBe("1");
    expect((await setup.step("runs")).observation.stdout).toBe("1");
    expect((await setup.state()).step_count).toBe(3);
  });

  it("without retries the dropped response surfaces as a NetworkError (control)", async () => {
    const p = await proxy((method, path) => (method === "POST" && path === "/step" ? "drop" : undefined));
    const env = new CodingEnv({ baseUrl: p.url, retry: false });
    await env.reset();
    cleanup.push(() => new CodingEnv({ baseUrl: stackUrl(), episodeId: env.episodeId }).close());

    const error = await env.step("1").catch((err: unknown) => err);

    expect(error).toBeInstanceOf(NetworkError);
    expect(stepBodies(p)).toHaveLength(1);
  });

  it("concurrent steps on one episode: with retries off one gets ConflictError, the other commits alone", async () => {
    const p = await proxy();
    const env = new CodingEnv({ baseUrl: p.url, retry: false });
    cleanup.push(() => env.close());
    await env.reset();
    await env.step("import time\nn = 0");

    // Which one loses depends on the server (lock at start or version check at commit): accept both.
    // The second is sent once the first (the second step through the proxy) is on its way.
    // A 5 s cell: nothing bounds it from above here, and the second step must arrive before it commits.
    const outcomes = await Promise.allSettled([
      env.step("time.sleep(5)\nn += 1"),
      stepsReceived(p, 2).then(() => env.step("n += 10")),
    ]);

    const rejected = outcomes.filter((o) => o.status === "rejected");
    expect(rejected).toHaveLength(1);
    const conflict = (rejected[0] as PromiseRejectedResult).reason as ConflictError;
    expect(conflict).toBeInstanceOf(ConflictError);
    expect(conflict.status).toBe(409);
    expect(conflict.retryAfterMs).toBe(1000);
    expect(stepBodies(p)).toHaveLength(3); // no retry
    const committed = outcomes[0]?.status === "fulfilled" ? "1" : "10";
    expect((await env.step("n")).observation.stdout).toBe(committed);
    expect((await env.state()).step_count).toBe(3);
  });

  it("concurrent steps with the default policy: the 409 is retried after Retry-After and both run once", async () => {
    const p = await proxy();
    const env = new CodingEnv({ baseUrl: p.url });
    cleanup.push(() => env.close());
    await env.reset();
    await env.step("import time\nn = 0");

    // A 1.5 s cell: long enough for the second step to arrive while it runs on a loaded machine, and
    // the default policy's three retries, 1 s apart (Retry-After), still outlast it.
    const [slow, fast] = await Promise.all([
      env.step("time.sleep(1.5)\nn += 1"),
      stepsReceived(p, 2).then(() => env.step("n += 10")),
    ]);

    expect(slow.observation.exit_code).toBe(0);
    expect(fast.observation.exit_code).toBe(0);
    expect(stepBodies(p).some((e) => e.status === 409)).toBe(true);
    expect((await env.step("n")).observation.stdout).toBe("11");
  });

  it("a client timeout is a TimeoutError (retries off)", async () => {
    const setup = new CodingEnv({ baseUrl: stackUrl() });
    cleanup.push(() => setup.close());
    await setup.reset();
    const env = new CodingEnv({
      baseUrl: stackUrl(),
      episodeId: setup.episodeId,
      timeoutMs: 500,
      retry: false,
    });

    const error = await env.step("import time\ntime.sleep(3)").catch((err: unknown) => err);

    expect(error).toBeInstanceOf(TimeoutError);
    expect(error).toMatchObject({ status: 0, code: "client_timeout" });
  });

  it("a user abort signal stops the call and is not retried", async () => {
    const p = await proxy();
    const env = new CodingEnv({ baseUrl: p.url });
    cleanup.push(() => env.close());
    await env.reset();
    const controller = new AbortController();
    // Aborted while the step runs: once the proxy has it (not after a fixed delay, which under
    // load may pass before the request is even sent).
    void stepsReceived(p, 1).then(() => controller.abort(new Error("stop")));

    const error = await env.step("import time\ntime.sleep(1)", { signal: controller.signal }).catch((e) => e);

    // Let the server finish the step; a retry (200 ms backoff) would have arrived by then.
    await expect.poll(() => stepBodies(p).length, { timeout: 10_000 }).toBe(1);
    expect(error).toMatchObject({ message: "stop" });
    expect(p.received.filter((r) => r.path === "/step")).toHaveLength(1);
  });
});

describe("retry policy decisions", () => {
  const policy = resolveRetry({ initialDelayMs: 100, maxDelayMs: 1_000, maxRetries: 3 });
  const err = (status: number, retryAfter: string | null = null) =>
    errorFromResponse(status, { error: { code: "x", message: "m" } }, retryAfter);

  it("honours Retry-After on 409 and 429, and gives up when it is longer than maxRetryAfterMs", () => {
    expect(retryDelayMs(policy, err(409, "1"), 0, false)).toBe(1000);
    expect(retryDelayMs(policy, err(429, "2"), 0, false)).toBe(2000);
    expect(retryDelayMs(policy, err(429, "86400"), 0, false)).toBeUndefined();
  });

  it("retries 5xx and network errors only for idempotent calls", () => {
    const network = new NetworkError("down", { status: 0, code: "network_error" });
    expect(retryDelayMs(policy, err(502), 0, true)).toBeGreaterThanOrEqual(50);
    expect(retryDelayMs(policy, err(502), 0, false)).toBeUndefined();
    expect(retryDelayMs(policy, network, 0, true)).toBeGreaterThanOrEqual(50);
    expect(retryDelayMs(policy, network, 0, false)).toBeUndefined();
  });

  it("never retries 4xx other than 409/429, and stops after maxRetries", () => {
    expect(retryDelayMs(policy, err(404), 0, true)).toBeUndefined();
    expect(retryDelayMs(policy, err(422), 0, true)).toBeUndefined();
    expect(err(404)).toBeInstanceOf(NotFoundError);
    expect(retryDelayMs(policy, err(503), 3, true)).toBeUndefined();
  });

  it("backs off exponentially with jitter, capped at maxDelayMs", () => {
    const low = () => 0;
    const high = () => 1;
    expect(retryDelayMs(policy, err(500), 0, true, low)).toBe(50);
    expect(retryDelayMs(policy, err(500), 0, true, high)).toBe(100);
    expect(retryDelayMs(policy, err(500), 2, true, high)).toBe(400);
    expect(retryDelayMs(policy, err(500), 2, true, low)).toBe(200);
    const capped = resolveRetry({ initialDelayMs: 100, maxDelayMs: 300, maxRetries: 10 });
    expect(retryDelayMs(capped, err(500), 6, true, high)).toBe(300);
  });

  it("can be switched off per kind, or entirely", () => {
    const noConflict = resolveRetry({ retryOnConflict: false });
    expect(retryDelayMs(noConflict, err(409, "1"), 0, true)).toBeUndefined();
    expect(resolveRetry(false).maxRetries).toBe(0);
    expect(resolveRetry(undefined)).toEqual(DEFAULT_RETRY);
    expect(() => resolveRetry({ maxRetries: -1 })).toThrow(RangeError);
  });
});
