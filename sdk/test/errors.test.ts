import { afterEach, describe, expect, it } from "vitest";
import { parseRetryAfter } from "../src/errors.js";
import {
  AuthError,
  BadRequestError,
  CodingEnv,
  CodingEnvError,
  errorFromResponse,
  NetworkError,
  NotFoundError,
  RateLimitError,
  ServerError,
  TimeoutError,
} from "../src/index.js";
import { stackUrl, startFakeServer } from "./helpers.js";

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  await Promise.all(cleanup.splice(0).map((fn) => fn().catch(() => undefined)));
});

describe("API errors from the real stack map to the SDK's classes", () => {
  // A missing or wrong API key (an AuthError) needs a stack with keys on: episodes.test.ts has one.
  it("an unknown episode is a NotFoundError with the API's code and message", async () => {
    const env = new CodingEnv({ baseUrl: stackUrl(), episodeId: "ep_does_not_exist_sdk" });

    const error = await env.state().catch((err: unknown) => err);

    expect(error).toBeInstanceOf(NotFoundError);
    expect(error).toBeInstanceOf(CodingEnvError);
    expect(error).toMatchObject({ status: 404, code: "episode_not_found", endpoint: "GET /state" });
    expect((error as Error).message).toContain("ep_does_not_exist_sdk");
  });

  it("a body of the wrong shape is a BadRequestError carrying FastAPI's detail list", async () => {
    const env = new CodingEnv({ baseUrl: stackUrl() });

    const error = await env.reset({ stepTimeoutS: -1 }).catch((err: unknown) => err);

    expect(error).toBeInstanceOf(BadRequestError);
    expect(error).toMatchObject({ status: 422, code: "validation_error" });
    expect(Array.isArray((error as CodingEnvError).details.detail)).toBe(true);
  });

  it("an invalid episode id is rejected, not retried", async () => {
    let calls = 0;
    const env = new CodingEnv({
      baseUrl: stackUrl(),
      fetch: (input, init) => {
        calls++;
        return fetch(input, init);
      },
    });

    const error = await env.reset({ episodeId: "bad id with spaces" }).catch((err: unknown) => err);

    expect(error).toBeInstanceOf(BadRequestError);
    expect(calls).toBe(1);
  });

  it("a refused connection is a NetworkError", async () => {
    const fake = await startFakeServer([{ status: 200, body: "{}" }]);
    await fake.close(); // the port is now closed

    const error = await new CodingEnv({ baseUrl: fake.url, retry: false }).health().catch((e: unknown) => e);

    expect(error).toBeInstanceOf(NetworkError);
    expect(error).toMatchObject({ status: 0, code: "network_error", endpoint: "GET /health" });
  });
});

describe("errors the local stack cannot produce on demand (fake server)", () => {
  const quotaBody = JSON.stringify({
    error: {
      code: "quota_exceeded",
      message: "Daily step quota reached.",
      details: { quota: "steps_per_day", resets_at: "2030-01-01T00:00:00Z" },
    },
  });
  const resetBody = JSON.stringify({
    observation: { stdout: "", stderr: "", exit_code: 0 },
    reward: 0,
    done: false,
    episode_id: "ep_fake",
    step_count: 0,
  });

  it("fake server: a 429 with a long Retry-After is a RateLimitError thrown at once", async () => {
    const fake = await startFakeServer([
      { status: 429, headers: { "retry-after": "3600" }, body: quotaBody },
    ]);
    cleanup.push(() => fake.close());

    const error = await new CodingEnv({ baseUrl: fake.url }).reset().catch((err: unknown) => err);

    expect(error).toBeInstanceOf(RateLimitError);
    expect(error).toMatchObject({
      status: 429,
      code: "quota_exceeded",
      retryAfterMs: 3_600_000,
      details: { quota: "steps_per_day" },
    });
    expect(fake.hits).toHaveLength(1);
  });

  it("fake server: a 429 with Retry-After 1 is waited out and retried", async () => {
    const fake = await startFakeServer([
      { status: 429, headers: { "retry-after": "1" }, body: quotaBody },
      { status: 200, body: resetBody },
    ]);
    cleanup.push(() => fake.close());
    const started = Date.now();

    const result = await new CodingEnv({ baseUrl: fake.url }).reset();

    expect(result.episode_id).toBe("ep_fake");
    expect(fake.hits).toEqual(["POST /reset", "POST /reset"]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
  });

  it("fake server: a 200 that is not a step result is a ServerError, not a broken StepResult", async () => {
    const fake = await startFakeServer([
      { status: 200, headers: { "content-type": "text/html" }, body: "<html>" },
    ]);
    cleanup.push(() => fake.close());

    const error = await new CodingEnv({ baseUrl: fake.url }).reset().catch((err: unknown) => err);

    expect(error).toBeInstanceOf(ServerError);
    expect(error).toMatchObject({ code: "invalid_response", endpoint: "POST /reset" });
  });

  it("fake server: gateway pages that are not our JSON shape still map by status", async () => {
    const fake = await startFakeServer([
      { status: 503, headers: { "content-type": "text/html" }, body: "<html>Service Unavailable</html>" },
    ]);
    cleanup.push(() => fake.close());

    const error = await new CodingEnv({ baseUrl: fake.url, retry: { maxRetries: 1, initialDelayMs: 1 } })
      .health()
      .catch((err: unknown) => err);

    expect(error).toBeInstanceOf(ServerError);
    expect(error).toMatchObject({ status: 503, code: "http_503" });
    expect(fake.hits).toHaveLength(2); // one retry: /health is idempotent
  });
});

describe("errorFromResponse", () => {
  const body = (code: string) => ({ error: { code, message: `m ${code}`, details: {} } });

  it("chooses the class by status", () => {
    const cases: Array<[number, string, typeof CodingEnvError]> = [
      [400, "episode_required", BadRequestError],
      [405, "method_not_allowed", BadRequestError],
      [413, "payload_too_large", BadRequestError],
      [422, "validation_error", BadRequestError],
      [401, "unauthorized", AuthError],
      [404, "episode_not_found", NotFoundError],
      [429, "rate_limited", RateLimitError],
      [500, "internal_error", ServerError],
      [502, "executor_error", ServerError],
      [504, "executor_timeout", TimeoutError],
    ];
    for (const [status, code, ErrorClass] of cases) {
      const error = errorFromResponse(status, body(code), null);
      expect(error, `${status}`).toBeInstanceOf(ErrorClass);
      expect(error.code).toBe(code);
      expect(error.name).toBe(ErrorClass.name);
    }
  });

  it("parses Retry-After as seconds or an HTTP date", () => {
    expect(parseRetryAfter("1")).toBe(1000);
    expect(parseRetryAfter("0.5")).toBe(500);
    expect(parseRetryAfter("Wed, 01 Jan 2031 00:00:10 GMT", Date.parse("2031-01-01T00:00:00Z"))).toBe(10_000);
    expect(parseRetryAfter("soon")).toBeUndefined();
    expect(parseRetryAfter(null)).toBeUndefined();
  });
});
