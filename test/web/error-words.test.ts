// The page's wording of errors (web/src/error-words.ts) for the SDK's errors as the real local stack
// produces them, and for every documented code. No browser needed for this part.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, expect, inject, it } from "vitest";
import { CodingEnv, CodingEnvError, errorFromResponse } from "../../sdk/src/index.js";
import { InputError, plainError } from "../../web/src/error-words.js";
import "./page-driver.js";

const baseUrl = inject("baseUrl");

async function failure(promise: Promise<unknown>): Promise<CodingEnvError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof CodingEnvError) return err;
    throw err;
  }
  throw new Error("expected the call to fail");
}

describe("the page's error wording", () => {
  it("turns an unknown episode into a sentence that says to reset", async () => {
    const err = await failure(new CodingEnv({ baseUrl, episodeId: "ep_does_not_exist" }).state());

    expect(err.code).toBe("episode_not_found");
    expect(plainError(err)).toMatch(/no longer exists.*Reset/);
  });

  it("keeps the server's validation message for a request of the wrong shape", async () => {
    const err = await failure(new CodingEnv({ baseUrl, retry: false }).reset({ stepTimeoutS: -1 }));

    expect(err.status).toBe(422);
    expect(plainError(err)).toMatch(/^The server rejected the request: \S/);
  });

  it("quotes the server's refusal of a file path", async () => {
    const env = new CodingEnv({ baseUrl });
    await env.reset();
    try {
      const err = await failure(env.writeFile("../escape.txt", "no"));

      expect(err.code).toBe("invalid_path");
      expect(plainError(err)).toContain(`“${err.message}”`);
    } finally {
      await env.close();
    }
  });

  it("reports an unreachable server as a network error in words", async () => {
    // Prepare: a port that was just free (a server opened and closed on it).
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    await new Promise<void>((resolve) => server.close(() => resolve()));

    const err = await failure(new CodingEnv({ baseUrl: `http://127.0.0.1:${port}`, retry: false }).health());

    expect(err.code).toBe("network_error");
    expect(plainError(err)).toContain("Could not reach the server");
  });

  it("words a gateway's HTML error page by its status, without quoting the HTML", async () => {
    const server = createServer((_req, res) => {
      res.writeHead(503, { "Content-Type": "text/html" });
      res.end("<html>Service Unavailable</html>");
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    try {
      const err = await failure(
        new CodingEnv({ baseUrl: `http://127.0.0.1:${port}`, retry: false }).health(),
      );

      expect(err.status).toBe(503);
      expect(plainError(err)).toBe("The server is unavailable right now (HTTP 503). Try again in a moment.");
      expect(plainError(errorFromResponse(418, "<html>teapot</html>", null))).toBe(
        "The server answered HTTP 418.",
      );
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it("words every documented error code without raw JSON or the code itself", () => {
    // The codes of docs/API.md's error table, and the SDK's own.
    const codes = [
      "bad_request",
      "invalid_json",
      "episode_required",
      "unauthorized",
      "not_found",
      "episode_not_found",
      "file_not_found",
      "invalid_path",
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
      "network_error",
      "client_timeout",
    ];
    for (const code of codes) {
      const sentence = plainError(
        new CodingEnvError("Server says so.", {
          status: 400,
          code,
          details: { resets_at: "2030-01-01T00:00:00Z" },
        }),
      );
      expect(sentence, code).toMatch(/^[A-Z].*\S$/);
      expect(sentence, code).not.toContain("{");
      expect(sentence, code).not.toContain(code);
    }
    expect(
      plainError(
        new CodingEnvError("", {
          status: 429,
          code: "quota_exceeded",
          details: { resets_at: "2030-01-01T00:00:00Z" },
        }),
      ),
    ).toContain("resets at 2030-01-01T00:00:00Z");
    expect(
      plainError(new CodingEnvError("", { status: 429, code: "rate_limited", retryAfterMs: 2500 })),
    ).toContain("Wait 3 s");
    expect(plainError(new InputError("The step timeout must be a number."))).toBe(
      "The step timeout must be a number.",
    );
  });
});
