// Property tests with fast-check against the real stack: whatever arrives (malformed JSON, wrong
// types, huge and odd strings, unknown ids, odd headers) the API answers without a 5xx, and every
// error is in the one JSON shape.
import fc from "fast-check";
import { describe, expect, inject, it } from "vitest";
import { call, Episode } from "../helpers/api.js";

const baseUrl = inject("baseUrl");

function assertSane(status: number, text: string, contentType: string | null): void {
  expect(status, text.slice(0, 300)).toBeLessThan(500);
  if (status >= 400) {
    expect(contentType).toContain("application/json");
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    expect(typeof body.error?.code).toBe("string");
    expect(typeof body.error?.message).toBe("string");
    expect(text).not.toMatch(/\n\s+at |node_modules|\/work\//);
  }
}

async function send(method: string, path: string, body?: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${baseUrl}${path}`, {
    method,
    headers: { "content-type": "application/json", ...headers },
    ...(body !== undefined ? { body } : {}),
  });
  const text = await res.text();
  assertSane(res.status, text, res.headers.get("content-type"));
  return res.status;
}

const oddString = fc.oneof(
  fc.string(),
  fc.string({ unit: "grapheme", maxLength: 50 }),
  fc.string({ unit: "binary", maxLength: 50 }),
  fc.constantFrom("", " ", "\u0000", "\ud800", "../..", "%00", "ep_", "𝔘𝔫𝔦", "'; DROP TABLE x;--"),
  fc.integer({ min: 256, max: 5000 }).map((n) => "x".repeat(n)),
);

describe("fuzzing the API: no 5xx, one error shape", () => {
  it("random JSON values as /reset and /step bodies", async () => {
    const ep = await Episode.reset(baseUrl);
    await fc.assert(
      fc.asyncProperty(fc.jsonValue({ maxDepth: 3 }), fc.boolean(), async (value, useStep) => {
        const body = JSON.stringify(value);
        if (useStep) await send("POST", "/step", body, { "x-episode-id": ep.id });
        else await send("POST", "/reset", body);
      }),
      { numRuns: 150 },
    );
  });

  it("malformed JSON text", async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ maxLength: 200 }), async (text) => {
        let valid = true;
        try {
          JSON.parse(text);
        } catch {
          valid = false;
        }
        const status = await send("POST", "/step", text, { "x-episode-id": "ep_fuzz" });
        if (!valid && text.trim() !== "") expect(status).toBe(400);
      }),
      { numRuns: 150 },
    );
  });

  it("reset options of the wrong types and ranges", async () => {
    const anything = fc.oneof(fc.jsonValue({ maxDepth: 2 }), oddString, fc.double(), fc.integer());
    await fc.assert(
      fc.asyncProperty(
        fc.record(
          {
            seed: anything,
            episode_id: anything,
            policy: anything,
            additional_imports: anything,
            step_timeout_s: anything,
            ttl_s: anything,
          },
          { requiredKeys: [] },
        ),
        async (opts) => {
          await send("POST", "/reset", JSON.stringify(opts));
        },
      ),
      // Found by this property once: a limit too small for DynamoDB to store was a 500.
      { numRuns: 150, examples: [[{ step_timeout_s: 5e-324 }], [{ step_timeout_s: 1e-131 }]] },
    );
  });

  it("steps with odd code, timeouts and request ids run or fail cleanly", async () => {
    const ep = await Episode.reset(baseUrl);
    await fc.assert(
      fc.asyncProperty(
        oddString,
        fc.option(fc.oneof(fc.double({ min: -5, max: 2, noNaN: true }), fc.constant(0.0001)), {
          nil: undefined,
        }),
        fc.option(oddString, { nil: undefined }),
        async (code, timeout_s, request_id) => {
          const body = JSON.stringify({ action: { code }, timeout_s, request_id, episode_id: ep.id });
          await send("POST", "/step", body);
        },
      ),
      { numRuns: 60 },
    );
  });

  it("unknown and odd episode ids in paths, headers, cookies and query strings", async () => {
    await fc.assert(
      fc.asyncProperty(oddString, fc.constantFrom("path", "header", "cookie", "query"), async (id, where) => {
        // encodeURIComponent refuses lone surrogates; raw malformed escapes are tested below.
        const enc = encodeURIComponent(id.replace(/[\ud800-\udfff]/g, "?"));
        if (where === "path") {
          await send("GET", `/episodes/${enc}`);
          await send("GET", `/episodes/${enc}/history?format=jsonl`);
          await send("POST", `/episodes/${enc}/fork`);
          await send("DELETE", `/episodes/${enc}`);
        } else if (where === "query") {
          await send("GET", `/state?episode_id=${enc}`);
        } else {
          const value = id.replace(/[^\x20-\x7e]/g, "?");
          const headers: Record<string, string> =
            where === "header" ? { "x-episode-id": value } : { cookie: `coding_env_episode=${enc}` };
          await send("POST", "/step", JSON.stringify({ action: { code: "1" } }), headers);
          await send("GET", "/state", undefined, headers);
        }
      }),
      { numRuns: 150 },
    );
  });

  it("random methods and paths", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"),
        fc.webPath(),
        async (method, path) => {
          const res = await fetch(`${baseUrl}${path.startsWith("/") ? path : `/${path}`}`, { method });
          const text = await res.text();
          expect(res.status, `${method} ${path}`).toBeLessThan(500);
          if (res.status >= 400) assertSane(res.status, text, res.headers.get("content-type"));
        },
      ),
      { numRuns: 150 },
    );
  });

  it("malformed percent-escapes in paths and queries", async () => {
    for (const raw of ["%ED%A0%80", "%FF", "%", "%zz", "%00", "a%2Fb"]) {
      await send("GET", `/episodes/${raw}`);
      await send("GET", `/episodes/${raw}/history`);
      await send("GET", `/state?episode_id=${raw}`);
    }
  });

  it("a structured check: call() helper sees the same shape", async () => {
    const r = await call(baseUrl, "POST", "/step", {
      action: { code: ["not", "a", "string"] },
      episode_id: "x",
    });
    expect(r.status).toBe(422);
  });
});
