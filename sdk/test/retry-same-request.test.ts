// The SDK's answer to "your own request_id is running" (409 step_in_progress, details.same_request):
// it keeps sending the same request_id, past maxRetries, until the first attempt's result comes back
// or the server's window (retry_within_s) closes. A fake server (real HTTP) gives the answers: the
// local stack's one root-mode API waits for a twin in-process instead, so it never sends this one;
// test/isolation/lambda-mode-concurrency.test.ts runs the real case on two API instances.
import { afterEach, describe, expect, it } from "vitest";
import { CodingEnv, ConflictError } from "../src/index.js";
import { type CannedResponse, startFakeServer } from "./helpers.js";

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => undefined);
});

const JSON_HEADERS = { "content-type": "application/json" };

function inProgress(sameRequest: boolean, retryAfter: string, retryWithinS = 30): CannedResponse {
  return {
    status: 409,
    headers: { ...JSON_HEADERS, "retry-after": retryAfter },
    body: JSON.stringify({
      error: {
        code: "step_in_progress",
        message: "running",
        details: sameRequest
          ? { episode_id: "ep_x", same_request: true, retry_within_s: retryWithinS }
          : { episode_id: "ep_x" },
      },
    }),
  };
}

const STORED_RESULT: CannedResponse = {
  status: 200,
  headers: { ...JSON_HEADERS, "idempotent-replayed": "true" },
  body: JSON.stringify({
    observation: { stdout: "first attempt's output", stderr: "", exit_code: 0 },
    reward: 0.1,
    done: false,
    episode_id: "ep_x",
    step_count: 1,
  }),
};

/** A client of a fake server that keeps each request's body (real HTTP through globalThis.fetch). */
async function clientOf(
  responses: readonly CannedResponse[],
  retry: ConstructorParameters<typeof CodingEnv>[0],
) {
  const fake = await startFakeServer(responses);
  cleanup.push(() => fake.close());
  const bodies: Array<{ request_id?: string }> = [];
  const env = new CodingEnv({
    ...retry,
    baseUrl: fake.url,
    episodeId: "ep_x",
    fetch: (url, init) => {
      if (typeof init?.body === "string") bodies.push(JSON.parse(init.body));
      return fetch(url, init);
    },
  });
  return { env, fake, bodies };
}

describe("a retry while the first attempt of its request_id runs (fake server)", () => {
  it("keeps sending the same request_id past maxRetries until the first attempt's result comes back", async () => {
    // Prepare: four "your request is running" answers, then the stored result; one retry allowed
    const { env, bodies } = await clientOf([...Array(4).fill(inProgress(true, "0")), STORED_RESULT], {
      retry: { maxRetries: 1 },
    });
    // Act
    const result = await env.step("print('once')", { requestId: "req-fixed" });
    // Assert
    expect(result.observation.stdout).toBe("first attempt's output");
    expect(bodies.map((b) => b.request_id)).toEqual(Array(5).fill("req-fixed"));
  });

  it("a 409 for another request's step still stops after maxRetries (control)", async () => {
    const { env, bodies } = await clientOf([...Array(4).fill(inProgress(false, "0")), STORED_RESULT], {
      retry: { maxRetries: 1 },
    });
    const error = await env.step("print(1)").catch((err: unknown) => err);
    expect(error).toBeInstanceOf(ConflictError);
    expect(bodies).toHaveLength(2);
  });

  it("gives up once the server's window has closed, and retry: false does not wait at all", async () => {
    // The window is 1 s (+1 s for the clocks); answers come every 1 s; conflicts are not retried.
    const waiting = await clientOf([inProgress(true, "1", 1)], { retry: { retryOnConflict: false } });
    const error = await waiting.env.step("print(1)").catch((err: unknown) => err);
    expect(error).toBeInstanceOf(ConflictError);
    expect((error as ConflictError).details).toMatchObject({ same_request: true });
    expect(waiting.bodies.length).toBeGreaterThanOrEqual(2);
    expect(waiting.bodies.length).toBeLessThanOrEqual(4);
    const strict = await clientOf([inProgress(true, "0"), STORED_RESULT], { retry: false });
    expect(await strict.env.step("print(1)").catch((err: unknown) => err)).toBeInstanceOf(ConflictError);
    expect(strict.bodies).toHaveLength(1);
  });
});
