// The page's API client (web/src/api.ts) against the real local stack: real errors from the API are
// parsed into ApiError and worded for people by plainError. No browser needed for this part.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, expect, inject, it } from "vitest";
import { ApiClient, ApiError, plainError, type ResetOpts } from "../../web/src/api.js";
import "./page-driver.js";

const baseUrl = inject("baseUrl");
const api = new ApiClient({ basePath: baseUrl });

async function failure(promise: Promise<unknown>): Promise<ApiError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof ApiError) return err;
    throw err;
  }
  throw new Error("expected the call to fail");
}

describe("web ApiClient", () => {
  it("runs reset, step, state, history and fork through the real API", async () => {
    // Act
    const started = await api.reset({ additional_imports: ["json"] });
    const stepped = await api.step(
      started.episode_id,
      "import json\nprint(json.dumps([1, 2]))",
      "web-client-1",
    );
    const state = await api.state(started.episode_id);
    const history = await api.history(started.episode_id);
    const fork = await api.fork(started.episode_id);
    const jsonl = await api.historyJsonl(fork.episode_id);

    // Assess
    expect(stepped.observation.stdout.trim()).toBe("[1, 2]");
    expect(stepped.step_count).toBe(1);
    expect(state.additional_imports).toEqual(["json"]);
    expect(history.steps.map((s) => s.code)).toEqual(["import json\nprint(json.dumps([1, 2]))"]);
    expect(fork.forked_from).toBe(started.episode_id);
    expect(fork.episode_id).not.toBe(started.episode_id);
    expect(jsonl.trim().split("\n")).toHaveLength(1);
  });

  it("turns an unknown episode into episode_not_found and a sentence that says to reset", async () => {
    // Act
    const err = await failure(api.state("ep_does_not_exist"));

    // Assess
    expect(err.status).toBe(404);
    expect(err.code).toBe("episode_not_found");
    expect(plainError(err)).toMatch(/no longer exists.*Reset/);
  });

  it("keeps the server's validation message for a body of the wrong shape", async () => {
    // Act: a negative timeout, which the page's own form refuses but the type allows.
    const err = await failure(api.reset({ step_timeout_s: -1 } satisfies ResetOpts));

    // Assess
    expect(err.status).toBe(422);
    expect(err.code).toBe("validation_error");
    expect(plainError(err)).toMatch(/^The server rejected the request: \S/);
  });

  it("reports an unreachable server as a network error in words", async () => {
    // Prepare: a port that was just free (a server opened and closed on it).
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    await new Promise<void>((resolve) => server.close(() => resolve()));

    // Act
    const err = await failure(new ApiClient({ basePath: `http://127.0.0.1:${port}` }).health());

    // Assess
    expect(err.code).toBe("network_error");
    expect(plainError(err)).toContain("Could not reach the server");
  });

  it("words a gateway's non-JSON error by its status", async () => {
    // Prepare: a real HTTP server answering like a proxy in front of the API would.
    const server = createServer((_req, res) => {
      res.writeHead(503, { "Content-Type": "text/html" });
      res.end("<html>Service Unavailable</html>");
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;

    try {
      // Act
      const err = await failure(new ApiClient({ basePath: `http://127.0.0.1:${port}` }).health());

      // Assess
      expect(err.status).toBe(503);
      expect(plainError(err)).toBe("The server is unavailable right now (HTTP 503). Try again in a moment.");
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it("words every documented error code without raw JSON or a bare status", () => {
    // The codes of docs/API.md's error table.
    const codes = [
      "bad_request",
      "invalid_json",
      "episode_required",
      "unauthorized",
      "not_found",
      "episode_not_found",
      "method_not_allowed",
      "conflict",
      "payload_too_large",
      "state_too_large",
      "validation_error",
      "quota_exceeded",
      "rate_limited",
      "executor_error",
      "executor_timeout",
      "internal_error",
    ];
    for (const code of codes) {
      const sentence = plainError(
        new ApiError(400, code, "Server says so.", { resets_at: "2030-01-01T00:00:00Z" }),
      );
      expect(sentence, code).toMatch(/^[A-Z].*\S$/);
      expect(sentence, code).not.toContain("{");
      expect(sentence, code).not.toContain(code);
    }
    expect(
      plainError(new ApiError(429, "quota_exceeded", "", { resets_at: "2030-01-01T00:00:00Z" })),
    ).toContain("resets at 2030-01-01T00:00:00Z");
    expect(plainError(new ApiError(429, "rate_limited", "", {}, 3))).toContain("Wait 3 s");
  });
});
