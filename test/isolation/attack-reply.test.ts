// A cell rewriting the reply its worker sends (user code runs in the worker's process, so every
// field of that reply is its to forge), through the API, in both executor modes: root mode (the
// local default) and Lambda mode (the harness). Each asserts the safe outcome; without the
// runtime's checks (python-runtime/tests/test_attack_reply.py) the first step was answered 409 and
// never metered, the second failed the invocation (502).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalStack, startLocalStack } from "../../functions/src/local/stack.js";

const isRoot = typeof process.getuid === "function" && process.getuid() === 0;

/** Makes the worker's reply carry `fields` (a Python expression), as tests/test_attack_reply.py. */
function forgeReply(fields: string): string {
  return [
    "import sys",
    "frame = sys._getframe()",
    'while frame is not None and "send_frame" not in frame.f_globals:',
    "    frame = frame.f_back",
    'real_send = frame.f_globals["send_frame"]',
    'def forged_send(sock, header, payload=b""):',
    '    if header.get("op") == "result":',
    `        header = {**header, **(${fields})}`,
    "    return real_send(sock, header, payload)",
    'frame.f_globals["send_frame"] = forged_send',
    "print('ran')",
  ].join("\n");
}

const DEEP_METADATA = [
  "class Deep:",
  "    def _repr_html_(self):",
  "        metadata = {}",
  "        for _ in range(500):",
  '            metadata = {"a": metadata}',
  '        return ("<b>deep</b>", metadata)',
  "display(Deep())",
].join("\n");

describe.skipIf(!isRoot).each(["local", "lambda"] as const)(
  "a cell forging its reply (%s executor)",
  (executorMode) => {
    let stack: LocalStack;

    beforeAll(async () => {
      stack = await startLocalStack({ port: 0, dataDir: null, executorMode });
    }, 120_000);

    afterAll(async () => {
      await stack?.stop();
    });

    async function post(
      path: string,
      body: unknown,
    ): Promise<{ status: number; body: Record<string, unknown> }> {
      const res = await fetch(`${stack.baseUrl}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
    }

    async function step(code: string): Promise<{ status: number; body: Record<string, unknown> }> {
      const reset = await post("/reset", { policy: "full" });
      expect(reset.status, JSON.stringify(reset.body)).toBe(200);
      return post("/step", { episode_id: reset.body.episode_id, action: { code } });
    }

    it("cannot report its step as busy (409, unmetered) or too large", async () => {
      for (const code of ['"busy"', '"state_too_large"']) {
        // Act
        const answer = await step(forgeReply(`{"error_code": ${code}}`));
        // Assert: an ordinary step, counted.
        expect(answer.status, JSON.stringify(answer.body)).toBe(200);
        expect(answer.body).toMatchObject({ step_count: 1, observation: { exit_code: 0, stdout: "ran\n" } });
      }
    }, 120_000);

    it("cannot fail the invocation with display metadata nested 500 deep", async () => {
      // Act
      const answer = await step(DEEP_METADATA);
      // Assert
      expect(answer.status, JSON.stringify(answer.body).slice(0, 500)).toBe(200);
      expect(answer.body.display).toEqual([
        { data: { "text/html": "<b>deep</b>", "text/plain": expect.any(String) }, metadata: {} },
      ]);
    }, 120_000);
  },
);
