// The API Lambda's bundle exactly as `cdk deploy` uploads it, invoked with function URL events: the
// Lambda function URL service cannot run here, so a stand-in builds its events to AWS's documented
// request payload (Lambda developer guide, "Invoking Lambda function URLs", request payload: payload
// format 2.0, `<url-id>.lambda-url.<region>.on.aws` domain, `cookies` as an array, a base64 body
// with `isBase64Encoded`, `authentication: null` with auth type NONE). The bundle, dynalite and the
// Python executor are the real ones (as in api-bundle.test.ts, which drives the HTTP API's events).
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ASSUMED, FUNCTION_URL_ACCESS_LINE_EXAMPLE } from "../../bench/api/cost.js";
import { type LocalStack, startLocalStack } from "../../functions/src/local/stack.js";
import {
  type BundleProcess,
  createStackKey,
  invokeBundle,
  localStackBundleEnv,
  type StagedBundle,
  stagedBundle,
  startBundle,
} from "./bundle.js";
import { bundledApp, removeSynthOutputs } from "./synth.js";

afterAll(removeSynthOutputs);

const URL_ID = "a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6";
const URL_DOMAIN = `${URL_ID}.lambda-url.us-east-1.on.aws`;
const CLIENT_IP = "198.51.100.7";

interface FunctionUrlRequest {
  readonly headers?: Record<string, string>;
  readonly body?: string;
  readonly base64?: boolean;
  readonly cookies?: string[];
}

/** A function URL request event (auth type NONE), as the function URL service sends it. */
function functionUrlEvent(method: string, rawPath: string, request: FunctionUrlRequest = {}) {
  const now = Date.now();
  const body =
    request.body === undefined
      ? undefined
      : request.base64
        ? Buffer.from(request.body, "utf8").toString("base64")
        : request.body;
  return {
    version: "2.0",
    routeKey: "$default",
    rawPath,
    rawQueryString: "",
    ...(request.cookies ? { cookies: request.cookies } : {}),
    headers: {
      "x-amzn-tls-cipher-suite": "TLS_AES_128_GCM_SHA256",
      "x-amzn-tls-version": "TLSv1.3",
      "x-amzn-trace-id": "Root=1-6745a1b2-0123456789abcdef01234567",
      "x-forwarded-proto": "https",
      host: URL_DOMAIN,
      "x-forwarded-port": "443",
      "x-forwarded-for": CLIENT_IP,
      accept: "application/json",
      "user-agent": "coding-env-sdk-test",
      ...request.headers,
    },
    requestContext: {
      accountId: "anonymous",
      apiId: URL_ID,
      authentication: null,
      domainName: URL_DOMAIN,
      domainPrefix: URL_ID,
      http: {
        method,
        path: rawPath,
        protocol: "HTTP/1.1",
        sourceIp: CLIENT_IP,
        userAgent: "coding-env-sdk-test",
      },
      requestId: randomUUID(),
      routeKey: "$default",
      stage: "$default",
      time: new Date(now).toUTCString(),
      timeEpoch: now,
    },
    ...(body === undefined ? {} : { body }),
    pathParameters: null,
    isBase64Encoded: request.base64 === true,
    stageVariables: null,
  };
}

interface LambdaResult {
  statusCode: number;
  headers?: Record<string, string>;
  cookies?: string[];
  body: string;
  isBase64Encoded?: boolean;
}

const json = (r: LambdaResult | undefined) => JSON.parse(r?.body ?? "") as Record<string, unknown>;

describe("API Lambda bundle behind a function URL event stand-in (as deployed)", () => {
  let bundle: StagedBundle;
  let lastLogs: Record<string, unknown>[] = [];
  const accessLines = () => lastLogs.filter((l) => l.message === "access");

  // The second test's stack, started with the file: it comes up while the bundle is awaited (under
  // npm test, the run's `cdk synth` writing it) and the first test runs.
  let starting: Promise<LocalStack> | undefined;
  beforeAll(async () => {
    starting = startLocalStack({ port: 0, dataDir: null, auth: true });
    starting.catch(() => undefined); // a failed start fails the test that awaits it
    bundle = stagedBundle(await bundledApp(), "coding-env-api");
  }, 240_000);
  afterAll(async () => {
    await (await starting?.catch(() => undefined))?.stop();
  });

  async function invoke(events: object[], env: Record<string, string> = {}): Promise<LambdaResult[]> {
    const { results, logs } = await invokeBundle<LambdaResult>(bundle, events, env, "CodingEnv-Api");
    lastLogs = logs;
    return results;
  }
  /** The same, as the next request to a warm container. */
  async function invokeWarm(lambda: BundleProcess, events: object[]): Promise<LambdaResult[]> {
    const { results, logs } = await lambda.invoke<LambdaResult>(events);
    lastLogs = logs;
    return results;
  }

  it("function URL event stand-in: /health and /web answer, a request without a key is 401 in the one error shape, and each request gets an access line (the HTTP API's events none)", async () => {
    const [health, web, noKey, viaHttpApi] = await invoke(
      [
        functionUrlEvent("GET", "/health"),
        functionUrlEvent("GET", "/web", { headers: { accept: "text/html" } }),
        functionUrlEvent("POST", "/reset", {
          headers: { "content-type": "application/json", "x-api-key": "ce_not_a_key" },
          body: "{}",
        }),
        // The same request through API Gateway: its access line is the stage's, not the API's.
        {
          ...functionUrlEvent("GET", "/health"),
          requestContext: {
            ...functionUrlEvent("GET", "/health").requestContext,
            domainName: "abc123.execute-api.us-east-1.amazonaws.com",
          },
        },
      ],
      // As in Lambda: the invocation's trace header, which the logger adds to every line.
      {
        _X_AMZN_TRACE_ID:
          "Root=1-6745a1b2-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=0;Lineage=1:a1b2c3d4:0",
      },
    );

    expect(health?.statusCode).toBe(200);
    expect(json(health)).toMatchObject({ status: "healthy", auth_required: true });
    expect(web?.statusCode).toBe(200);
    expect(web?.headers?.["content-type"]).toMatch(/^text\/html/);
    expect(noKey?.statusCode).toBe(401);
    expect(json(noKey)).toMatchObject({ error: { code: "unauthorized" } });
    expect(viaHttpApi?.statusCode).toBe(200);

    const lines = accessLines();
    expect(lines.map((l) => [l.method, l.path, l.status])).toEqual([
      ["GET", "/health", 200],
      ["GET", "/web", 200],
      ["POST", "/reset", 401],
    ]);
    for (const line of lines) {
      expect(line).toMatchObject({ level: "INFO", door: "function_url", ip: CLIENT_IP });
      expect(typeof line.latencyMs).toBe("number");
      expect(line.responseLength).toBeGreaterThan(0);
      expect(line.requestId).toMatch(/^[0-9a-f-]{36}$/);
    }
    // No header reaches the line: not the key, not the cookie.
    expect(JSON.stringify(lines)).not.toContain("ce_not_a_key");
    // The cost figures (bench/api/cost.ts) count exactly this line: the same fields in the same
    // envelope, so with the example's values it is the example's size.
    const example = FUNCTION_URL_ACCESS_LINE_EXAMPLE;
    for (const line of lines) {
      expect(Object.keys(line)).toEqual(Object.keys(example));
      const { ip, method, path, status, latencyMs, responseLength } = example;
      const asExample = { ...line, ip, method, path, status, latencyMs, responseLength };
      expect(Buffer.byteLength(JSON.stringify(asExample)) + 26).toBe(ASSUMED.functionUrlLogBytesPerStep);
    }
  }, 120_000);

  it("function URL event stand-in: reset, step (by cookie and base64 body), state, 422, 413 and a response cut to Lambda's 6 MB, through DynamoDB (dynalite) and the Python executor", async () => {
    const stack = await (starting as Promise<LocalStack>);
    // One container for both batches (the second is the warm container's next requests).
    let lambda: BundleProcess | undefined;
    try {
      const key = await createStackKey(stack, "function-url-test", "function URL bundle test");
      const episodeId = `ep-furl-${Date.now()}`;
      const auth = { authorization: `Bearer ${key}` };
      const jsonHeaders = { "content-type": "application/json", ...auth };
      lambda = startBundle(bundle, localStackBundleEnv(stack), "CodingEnv-Api");

      // The reset first, alone: its answer's cookie is what the next step sends back.
      const [reset] = await invokeWarm(lambda, [
        functionUrlEvent("POST", "/reset", {
          headers: jsonHeaders,
          body: JSON.stringify({ episode_id: episodeId }),
        }),
      ]);
      expect(reset?.statusCode, reset?.body).toBe(200);
      expect(json(reset)).toMatchObject({ episode_id: episodeId, step_count: 0 });
      // A function URL returns cookies as their own array (payload format 2.0), not as a header.
      const episodeCookie = reset?.cookies?.find((c) => c.startsWith("coding_env_episode="));
      expect(episodeCookie).toBeDefined();
      expect(reset?.headers?.["set-cookie"]).toBeUndefined();

      const huge = "#".repeat(2 * 1024 * 1024 + 10);
      const [byCookie, base64, state, invalid, tooLarge, escaping] = await invokeWarm(lambda, [
        // The episode by its cookie alone, sent as the function URL sends cookies.
        functionUrlEvent("POST", "/step", {
          headers: jsonHeaders,
          cookies: [(episodeCookie ?? "").split(";")[0] ?? ""],
          body: JSON.stringify({ action: { code: "x = 6 * 7\nx" } }),
        }),
        // A body the function URL passed base64-encoded.
        functionUrlEvent("POST", "/step", {
          headers: jsonHeaders,
          base64: true,
          body: JSON.stringify({ episode_id: episodeId, action: { code: "print(x + 1, 'é')" } }),
        }),
        functionUrlEvent("GET", "/state", { headers: { ...auth, "x-episode-id": episodeId } }),
        functionUrlEvent("POST", "/step", {
          headers: jsonHeaders,
          body: JSON.stringify({ episode_id: episodeId, action: { code: 5 } }),
        }),
        functionUrlEvent("POST", "/step", {
          headers: jsonHeaders,
          body: JSON.stringify({ episode_id: episodeId, action: { code: huge } }),
        }),
        // Output that the Lambda envelope escapes to over 6 MB: cut and flagged, not a 502.
        functionUrlEvent("POST", "/step", {
          headers: jsonHeaders,
          body: JSON.stringify({ episode_id: episodeId, action: { code: "print('\\x01' * 1_000_000)" } }),
        }),
      ]);

      expect(byCookie?.statusCode, byCookie?.body).toBe(200);
      expect(json(byCookie)).toMatchObject({
        observation: { stdout: "42", exit_code: 0 },
        reward: 0.1,
        episode_id: episodeId,
        step_count: 1,
      });
      expect(base64?.statusCode, base64?.body).toBe(200);
      expect(json(base64)).toMatchObject({ observation: { exit_code: 0 }, step_count: 2 });
      expect((json(base64).observation as { stdout: string }).stdout).toMatch(/^43 é\n?$/);
      expect(state?.statusCode, state?.body).toBe(200);
      expect(json(state)).toMatchObject({ episode_id: episodeId, step_count: 2, step_timeout_s: 20 });
      expect(invalid?.statusCode, invalid?.body).toBe(422);
      expect(json(invalid)).toMatchObject({ error: { code: "validation_error" } });
      expect(tooLarge?.statusCode, tooLarge?.body.slice(0, 300)).toBe(413);
      expect(json(tooLarge)).toMatchObject({ error: { code: "payload_too_large" } });
      expect(escaping?.statusCode, escaping?.body.slice(0, 300)).toBe(200);
      expect(Buffer.byteLength(JSON.stringify(escaping), "utf8")).toBeLessThanOrEqual(6 * 1024 * 1024);
      expect(json(escaping)).toMatchObject({
        step_count: 3,
        info: { stdout_truncated: true, truncated_by: "lambda_response_limit" },
      });
      for (const r of [invalid, tooLarge]) expect(r?.body).not.toMatch(/node_modules|\.ts:|at .*\(/);

      // Every request has its access line, with the status and size as sent.
      expect(accessLines().map((l) => [l.method, l.path, l.status])).toEqual([
        ["POST", "/step", 200],
        ["POST", "/step", 200],
        ["GET", "/state", 200],
        ["POST", "/step", 422],
        ["POST", "/step", 413],
        ["POST", "/step", 200],
      ]);
      const escapingLine = accessLines()[5];
      expect(escapingLine?.responseLength).toBe(Buffer.byteLength(escaping?.body ?? "", "utf8"));
      // Neither the key nor the episode's cookie reaches an access line.
      const logged = JSON.stringify(accessLines());
      expect(logged).not.toContain(key);
      expect(logged).not.toContain((episodeCookie ?? "coding_env_episode=").split(";")[0]);
    } finally {
      lambda?.stop();
    }
  }, 180_000);
});
