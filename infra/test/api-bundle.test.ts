// The API Lambda's code exactly as `cdk deploy` uploads it: the stack is synthesized with bundling on
// (NodejsFunction with the local esbuild, never Docker), and the staged bundle is loaded by a plain
// `node` process outside the repository (no node_modules to fall back on), then invoked with API
// Gateway HTTP API (payload v2) events, with the environment the template gives the function.
// Nothing here leaves the machine: the first routes answer without AWS calls, and the full step goes
// to dynalite and the local Python executor through the endpoint overrides.
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startLocalStack } from "../../functions/src/local/stack.js";
import {
  createStackKey,
  invokeBundle,
  localStackBundleEnv,
  type StagedBundle,
  stagedBundle,
} from "./bundle.js";
import { httpApiEvent } from "./http-api-event.js";
import { bundledApp, removeSynthOutputs } from "./synth.js";

afterAll(removeSynthOutputs);

interface LambdaResult {
  statusCode: number;
  headers?: Record<string, string>;
  body: string;
  isBase64Encoded?: boolean;
}

describe("API Lambda bundle (esbuild, as deployed)", () => {
  let bundle: StagedBundle;
  let bundlePath: string;

  beforeAll(async () => {
    bundle = stagedBundle(await bundledApp(), "coding-env-api");
    bundlePath = bundle.path;
  }, 120_000);

  it("is one self-contained ES module with its source map, and no Docker was needed", () => {
    expect(existsSync(bundlePath)).toBe(true);
    expect(existsSync(`${bundlePath}.map`)).toBe(true);
    const files = readdirSync(join(bundlePath, "..")).sort();
    expect(files).toEqual(["index.mjs", "index.mjs.map"]);
    // A bundle of a few MB: the AWS SDK clients are inside (no reliance on the runtime's copy).
    const sizeMb = statSync(bundlePath).size / 1024 / 1024;
    expect(sizeMb).toBeGreaterThan(0.2);
    expect(sizeMb).toBeLessThan(20);
  });

  // What the bundle logged during the last invoke (its structured logs).
  let lastLogs: Record<string, unknown>[] = [];
  const logLines = () => lastLogs;

  async function invoke(
    events: object[],
    envOverrides: Record<string, string> = {},
  ): Promise<LambdaResult[]> {
    const { results, logs } = await invokeBundle<LambdaResult>(bundle, events, envOverrides, "CodingEnv-Api");
    lastLogs = logs;
    return results;
  }

  it("loads and answers GET /health (200 healthy, keys required as deployed), GET /web, and refuses POST /reset without a key", async () => {
    const [health, web, noKey] = await invoke([
      httpApiEvent("GET", "/health"),
      httpApiEvent("GET", "/web", { accept: "text/html" }),
      httpApiEvent("POST", "/reset", { "content-type": "application/json" }, "{}"),
    ]);

    expect(health?.statusCode).toBe(200);
    expect(JSON.parse(health?.body ?? "")).toMatchObject({ status: "healthy", auth_required: true });

    expect(web?.statusCode).toBe(200);
    expect(web?.headers?.["content-type"]).toMatch(/^text\/html/);
    expect(web?.body).toMatch(/<html|<!doctype html/i);

    // Auth is on in the deployment: a protected route without a key is refused before any AWS call.
    expect(noKey?.statusCode).toBe(401);
    const refused = JSON.parse(noKey?.body ?? "");
    expect(refused).toMatchObject({ error: { code: "unauthorized" } });
    expect(noKey?.body).not.toMatch(/node_modules|\.ts:|at .*\(/);

    // Structured JSON logs (Powertools): a line per refused request with its status (successes
    // are in API Gateway's access log; the API logs them at DEBUG only).
    const requests = logLines().filter((l) => l.message === "request");
    expect(requests.map((l) => [l.method, l.path, l.status])).toEqual([["POST", "/reset", 401]]);
    expect(requests[0]).toMatchObject({ level: "INFO", service: "coding-env-api" });
  }, 90_000);

  it("runs a real step as deployed: key check, reset, step and state through DynamoDB (dynalite) and the Python executor", async () => {
    // Prepare: the real parts the deployed bundle talks to, reached through the endpoint overrides
    // the bundle honours (the same SDK clients as in AWS), and a real API key in the table.
    const stack = await startLocalStack({ port: 0, dataDir: null, auth: true });
    try {
      const key = await createStackKey(stack, "bundle-test", "infra api-bundle test");
      const episodeId = `ep-bundle-${Date.now()}`;
      const json = { "content-type": "application/json", authorization: `Bearer ${key}` };

      // Act: the events API Gateway would send, to the bundle staged for deployment.
      const [reset, step, state, escaping] = await invoke(
        [
          httpApiEvent("POST", "/reset", json, JSON.stringify({ episode_id: episodeId })),
          httpApiEvent(
            "POST",
            "/step",
            json,
            JSON.stringify({ episode_id: episodeId, action: { code: "x = 6 * 7\nx" } }),
          ),
          httpApiEvent("GET", "/state", { authorization: `Bearer ${key}`, "x-episode-id": episodeId }),
          // Output the executor fits in its own 6 MB reply, but which JSON writes as 6 bytes a
          // character and the Lambda envelope escapes once more: over Lambda's response limit.
          httpApiEvent(
            "POST",
            "/step",
            json,
            JSON.stringify({ episode_id: episodeId, action: { code: "print('\\x01' * 1_000_000)" } }),
          ),
        ],
        {
          ...localStackBundleEnv(stack),
        },
      );

      // Assess
      expect(reset?.statusCode, reset?.body).toBe(200);
      expect(JSON.parse(reset?.body ?? "")).toMatchObject({
        episode_id: episodeId,
        step_count: 0,
        reward: 0,
      });
      expect(step?.statusCode, step?.body).toBe(200);
      expect(JSON.parse(step?.body ?? "")).toMatchObject({
        observation: { stdout: "42", exit_code: 0 },
        reward: 0.1,
        done: false,
        episode_id: episodeId,
        step_count: 1,
      });
      expect(state?.statusCode, state?.body).toBe(200);
      expect(JSON.parse(state?.body ?? "")).toMatchObject({
        episode_id: episodeId,
        step_count: 1,
        step_timeout_s: 20,
      });
      // The step's answer fits Lambda's 6 MB response (as its envelope counts it), cut and flagged.
      expect(escaping?.statusCode, escaping?.body.slice(0, 300)).toBe(200);
      expect(Buffer.byteLength(JSON.stringify(escaping), "utf8")).toBeLessThanOrEqual(6 * 1024 * 1024);
      const fitted = JSON.parse(escaping?.body ?? "");
      expect(fitted).toMatchObject({
        step_count: 2,
        observation: { exit_code: 0 },
        info: { stdout_truncated: true, truncated_by: "lambda_response_limit" },
      });
      expect(fitted.observation.stdout.length).toBeGreaterThan(500_000);
      // A prefix of the output: only the cell's characters, none of the escaping's.
      expect(fitted.observation.stdout.replaceAll("\u0001", "")).toBe("");
    } finally {
      await stack.stop();
    }
  }, 120_000);
});
