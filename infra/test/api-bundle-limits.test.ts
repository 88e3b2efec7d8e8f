// Lambda's 6 MB response limit, through the API Lambda's code exactly as `cdk deploy` uploads it
// (the staged esbuild bundle, invoked with API Gateway payload v2 events; DynamoDB and the Python
// executor are the local stack's, reached through the endpoint overrides). The answers a cell can
// make large without being a step (a history page, a JSON Lines export part, a file list) are
// measured as Lambda counts them: the whole result the handler returns, as JSON, where the body is
// a string escaped once more (`"` is 2 bytes, an escaped `\u0001` 7) and a base64 body is a third
// larger than its bytes. None may pass 6 MB (Lambda would answer its own error: a 5xx).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalStack, startLocalStack } from "../../functions/src/local/stack.js";
import {
  type BundleProcess,
  createStackKey,
  localStackBundleEnv,
  stagedBundle,
  startBundle,
} from "./bundle.js";
import { httpApiEvent } from "./http-api-event.js";
import { bundledApp, removeSynthOutputs } from "./synth.js";

afterAll(removeSynthOutputs);

/** Lambda's response limit (6 MB). */
const LAMBDA_RESPONSE_BYTES = 6 * 1024 * 1024;

interface LambdaResult {
  statusCode: number;
  headers?: Record<string, string>;
  body: string;
  isBase64Encoded?: boolean;
}

/** The result's size as Lambda counts it: the JSON the runtime sends back. */
const lambdaBytes = (result: LambdaResult | undefined) => Buffer.byteLength(JSON.stringify(result), "utf8");

/** The body as text (a base64 one decoded). */
const bodyText = (result: LambdaResult | undefined) =>
  result?.isBase64Encoded ? Buffer.from(result.body, "base64").toString("utf8") : (result?.body ?? "");

// 36 steps of 64 K quotes kept in the history each (128 K of JSON, 256 K once escaped again): a
// 4 MiB page of raw JSON would be 8 MB in Lambda's result, and a 5 MiB export part 6.7 MB as base64.
const QUOTE_STEPS = 36;
const quoteCell = "print('\"' * 70000)";
// 1000 files whose paths are 953 control characters: 5.7 MB of JSON, 6.7 MB escaped again.
const controlNamesCell = [
  "import os",
  "d = os.path.join('\\x01' * 250, '\\x01' * 250, '\\x01' * 250)",
  "os.makedirs(d)",
  "for i in range(1000):",
  "    open(os.path.join(d, '\\x01' * 196 + '%04d' % i), 'w').close()",
  "print(len(os.listdir(d)))",
].join("\n");

describe("API Lambda bundle: no answer passes Lambda's 6 MB response limit", () => {
  let stack: LocalStack;
  let key: string;
  // One container for every invocation of the file (Lambda keeps one warm between requests): the
  // 3.5 MB bundle loads once, not once per page.
  let lambda: BundleProcess;

  beforeAll(async () => {
    // The stack starts while the bundle is awaited (under npm test, the run's `cdk synth` writing it).
    const [app, started] = await Promise.allSettled([
      bundledApp(),
      startLocalStack({ port: 0, dataDir: null, auth: true }),
    ]);
    if (started.status === "fulfilled") stack = started.value; // afterAll stops it
    if (app.status === "rejected") throw app.reason;
    if (started.status === "rejected") throw started.reason;
    const bundle = stagedBundle(app.value, "coding-env-api");
    key = await createStackKey(stack, "bundle-limits");
    lambda = startBundle(bundle, localStackBundleEnv(stack), "CodingEnv-Api");
  }, 180_000);

  afterAll(async () => {
    lambda?.stop();
    await stack?.stop();
  });

  const invoke = async (events: object[]) => (await lambda.invoke<LambdaResult>(events)).results;
  const auth = () => ({ authorization: `Bearer ${key}` });
  const json = () => ({ "content-type": "application/json", ...auth() });

  describe("an episode of 36 steps, each kept in the history with 64 K quotes of output", () => {
    const id = `ep-limits-history-${Date.now()}`;
    const allSteps = Array.from({ length: QUOTE_STEPS }, (_, i) => i + 1);

    beforeAll(async () => {
      const prepared = await invoke([
        httpApiEvent("POST", "/reset", json(), JSON.stringify({ episode_id: id })),
        ...Array.from({ length: QUOTE_STEPS }, () =>
          httpApiEvent(
            "POST",
            "/step",
            json(),
            JSON.stringify({ episode_id: id, action: { code: quoteCell } }),
          ),
        ),
      ]);
      expect(prepared.map((r) => r.statusCode)).toEqual(Array(QUOTE_STEPS + 1).fill(200));
    }, 300_000);

    it("each history page fits (a 4 MiB page of raw JSON would be 8 MB), and the pages chain to every step", async () => {
      // One invocation per page: the next needs the cursor.
      const pageSteps: number[] = [];
      let cursor: string | null = null;
      do {
        const query: string = cursor ? `cursor=${encodeURIComponent(cursor)}` : "";
        const [page] = await invoke([
          httpApiEvent("GET", `/episodes/${id}/history`, auth(), undefined, query),
        ]);
        expect(page?.statusCode, page?.body.slice(0, 300)).toBe(200);
        expect(lambdaBytes(page)).toBeLessThanOrEqual(LAMBDA_RESPONSE_BYTES);
        const body = JSON.parse(page?.body ?? "") as {
          steps: { step: number }[];
          next_cursor: string | null;
        };
        pageSteps.push(...body.steps.map((s) => s.step));
        cursor = body.next_cursor;
      } while (cursor !== null);
      expect(pageSteps).toEqual(allSteps);
    }, 300_000);

    it("each JSON Lines part fits and is sent as text (a 5 MiB part would be 6.7 MB as base64), and the parts chain to every step", async () => {
      const lineSteps: number[] = [];
      let next: string | undefined;
      let parts = 0;
      do {
        const query: string = `format=jsonl${next ? `&cursor=${encodeURIComponent(next)}` : ""}`;
        const [part] = await invoke([
          httpApiEvent("GET", `/episodes/${id}/history`, auth(), undefined, query),
        ]);
        parts++;
        expect(lambdaBytes(part)).toBeLessThanOrEqual(LAMBDA_RESPONSE_BYTES);
        expect(part?.statusCode, part?.body.slice(0, 300)).toBe(200);
        expect(part?.isBase64Encoded).toBe(false);
        expect(part?.headers?.["content-type"]).toMatch(/^application\/x-ndjson/);
        for (const line of bodyText(part).split("\n").filter(Boolean)) lineSteps.push(JSON.parse(line).step);
        next = part?.headers?.["x-next-cursor"];
      } while (next);
      expect(parts).toBeGreaterThan(1);
      expect(lineSteps).toEqual(allSteps);
    }, 300_000);
  });

  it("a file list of 1000 control-character paths fits, cut in path order and flagged `truncated`", async () => {
    const id = `ep-limits-files-${Date.now()}`;
    const [reset, step, list] = await invoke([
      httpApiEvent("POST", "/reset", json(), JSON.stringify({ episode_id: id, policy: "full" })),
      httpApiEvent(
        "POST",
        "/step",
        json(),
        JSON.stringify({ episode_id: id, action: { code: controlNamesCell } }),
      ),
      httpApiEvent("GET", `/episodes/${id}/files`, auth()),
    ]);
    expect(reset?.statusCode).toBe(200);
    expect(step?.statusCode, step?.body.slice(0, 300)).toBe(200);
    expect(JSON.parse(step?.body ?? "").observation.stdout.trim(), step?.body.slice(0, 2000)).toBe("1000");

    expect(list?.statusCode, list?.body.slice(0, 300)).toBe(200);
    expect(lambdaBytes(list)).toBeLessThanOrEqual(LAMBDA_RESPONSE_BYTES);
    const body = JSON.parse(list?.body ?? "") as { files: { path: string }[]; truncated?: boolean };
    expect(body.truncated).toBe(true);
    expect(body.files.length).toBeGreaterThan(500);
    expect(body.files.length).toBeLessThan(1000);
    const paths = body.files.map((f) => f.path);
    expect(paths).toEqual([...paths].sort());
    expect(paths[0]?.endsWith("0000")).toBe(true);
  }, 300_000);
});
