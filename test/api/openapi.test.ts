// /openapi.json is a document a deployment's users can work from in Swagger UI (/docs): Authorize
// with either key scheme, every error status in the one error shape, fields that say what they are,
// and examples that succeed when tried against the real stack.
import { describe, expect, inject, it } from "vitest";
import { createApp } from "../../functions/src/app.js";
import { configFromEnv } from "../../functions/src/config.js";
import { isPublicRequest } from "../../functions/src/http/middleware.js";
import { call } from "../helpers/api.js";
import { undescribedFields } from "../helpers/openapi.js";

const baseUrl = inject("baseUrl");

type Json = Record<string, unknown>;
interface Operation {
  security?: Json[];
  requestBody?: { content: Record<string, { example?: unknown; schema: Json }> };
  responses: Record<string, { content?: Record<string, { schema: Json }> }>;
}
interface OpenApiDoc {
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Json>; securitySchemes: Record<string, Json> };
}

async function openApi(): Promise<OpenApiDoc> {
  const r = await call<OpenApiDoc>(baseUrl, "GET", "/openapi.json");
  expect(r.status).toBe(200);
  return r.body;
}

/**
 * Every route the API serves, as `METHOD /openapi/{path}`, read from the app itself (not a list in
 * this file), so a route added later is checked without anyone remembering to name it here.
 */
function servedRoutes(): { method: string; path: string }[] {
  const app = createApp({
    config: configFromEnv({}),
    episodes: {} as never, // no request is made: only the routes are read
    upgradeWebSocket: (() => () => undefined) as never,
    webAssets: { "/web": { contentType: "text/html", body: "" } },
  });
  const routes = new Map<string, { method: string; path: string }>();
  for (const r of app.routes) {
    if (r.method === "ALL") continue; // middleware and the 405 fallbacks
    const path = r.path.replace(/:(\w+)(\{[^}]*\})?/g, "{$1}");
    routes.set(`${r.method} ${path}`, { method: r.method, path });
  }
  return [...routes.values()];
}

/** Served but not operations of the API: pages, the document itself, and OpenEnv's WebSocket. */
const NOT_OPERATIONS = new Set([
  "GET /",
  "GET /docs",
  "GET /openapi.json",
  "GET /web",
  "GET /web/",
  "GET /ws",
]);
const keyRoutes = servedRoutes().filter(
  (r) => !NOT_OPERATIONS.has(`${r.method} ${r.path}`) && !isPublicRequest(r.method, r.path),
);
const publicRoutes = servedRoutes().filter(
  (r) => !NOT_OPERATIONS.has(`${r.method} ${r.path}`) && isPublicRequest(r.method, r.path),
);
/** The routes that call the executor (a step, or the episode's files read or written through it). */
const EXECUTOR_ROUTES = [
  "POST /step",
  "GET /episodes/{id}/files",
  "GET /episodes/{id}/files/{path}",
  "PUT /episodes/{id}/files/{path}",
];
function operation(doc: OpenApiDoc, route: { method: string; path: string }): Operation | undefined {
  return doc.paths[route.path]?.[route.method.toLowerCase()];
}

describe("OpenAPI document", () => {
  it("has Bearer and X-API-Key security schemes; key routes accept either, public routes none", async () => {
    const doc = await openApi();
    expect(doc.components.securitySchemes).toMatchObject({
      bearerAuth: { type: "http", scheme: "bearer" },
      apiKeyHeader: { type: "apiKey", in: "header", name: "X-API-Key" },
    });
    expect(keyRoutes.map((r) => `${r.method} ${r.path}`)).toEqual(
      expect.arrayContaining(["POST /step", "GET /episodes", "GET /episodes/{id}/files"]),
    );
    for (const route of keyRoutes) {
      const where = `${route.method} ${route.path}`;
      expect(operation(doc, route), where).toBeDefined();
      expect(operation(doc, route)?.security, where).toEqual([{ bearerAuth: [] }, { apiKeyHeader: [] }]);
    }
    expect(publicRoutes.length).toBeGreaterThanOrEqual(3);
    for (const route of publicRoutes) expect(operation(doc, route)?.security, route.path).toEqual([]);
  });

  it("documents every error status, each with the one error shape", async () => {
    const doc = await openApi();
    const step = doc.paths["/step"]?.post;
    expect(Object.keys(step?.responses ?? {})).toEqual(
      expect.arrayContaining([
        "400",
        "401",
        "403",
        "404",
        "409",
        "413",
        "415",
        "421",
        "422",
        "429",
        "500",
        "502",
        "504",
      ]),
    );
    for (const route of keyRoutes) {
      expect(Object.keys(operation(doc, route)?.responses ?? {}), `${route.method} ${route.path}`).toEqual(
        expect.arrayContaining(["401", "403", "421", "429", "500"]),
      );
    }
    for (const route of EXECUTOR_ROUTES) {
      const [method = "", path = ""] = route.split(" ");
      expect(Object.keys(operation(doc, { method, path })?.responses ?? {}), route).toEqual(
        expect.arrayContaining(["502", "504"]),
      );
    }
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const op of Object.values(ops)) {
        for (const [status, res] of Object.entries(op.responses)) {
          if (Number(status) >= 400) {
            expect(res.content?.["application/json"]?.schema, `${path} ${status}`).toEqual({
              $ref: "#/components/schemas/ErrorResponse",
            });
          }
        }
      }
    }
  });

  it("describes every field of the wire schemas", async () => {
    const doc = await openApi();
    const missing: string[] = [];
    for (const name of [
      "ResetRequest",
      "StepRequest",
      "CodeAction",
      "CodeObservation",
      "CodeState",
      "StepResponse",
      "StepInfo",
      "HistoryStep",
      "ErrorResponse",
    ]) {
      const schema = doc.components.schemas[name];
      expect(schema, name).toBeDefined();
      missing.push(...undescribedFields(schema as Json, name));
    }
    expect(missing).toEqual([]);
  });

  it("points to nothing a deployment's users do not have (no repository files)", async () => {
    const text = (await call(baseUrl, "GET", "/openapi.json")).text;
    expect(text).not.toMatch(/docs\/|\.md\b|\.\.\/|functions\/src|\.ts\b/);
  });

  it("the request examples succeed when tried: reset with its example, then step with its example", async () => {
    // Prepare: the examples Swagger UI puts in "Try it out"
    const doc = await openApi();
    const resetExample = doc.paths["/reset"]?.post?.requestBody?.content["application/json"]?.example;
    const stepExample = doc.paths["/step"]?.post?.requestBody?.content["application/json"]?.example;
    expect(resetExample).toEqual({});
    expect(stepExample).toEqual({ action: { code: "print(1)" } });
    // Act: as the browser does, the cookie /reset sets carries the episode
    const reset = await call(baseUrl, "POST", "/reset", resetExample);
    const cookie = (reset.headers.get("set-cookie") ?? "").split(";")[0] ?? "";
    const step = await call<{ observation: { stdout: string; exit_code: number } }>(
      baseUrl,
      "POST",
      "/step",
      stepExample,
      { cookie },
    );
    // Assess
    expect(reset.status).toBe(200);
    expect(step.status).toBe(200);
    expect(step.body.observation).toMatchObject({ stdout: "1\n", exit_code: 0 });
  });

  it("validates with the documented schema: a limit the document states is the one enforced", async () => {
    const doc = await openApi();
    const requestId = (doc.components.schemas.StepRequest?.properties as Record<string, Json> | undefined)
      ?.request_id;
    expect(requestId?.maxLength).toBe(255);
    const ep = await call<{ episode_id: string }>(baseUrl, "POST", "/reset", {});
    const over = await call(baseUrl, "POST", "/step", {
      action: { code: "1" },
      request_id: "r".repeat(256),
      episode_id: ep.body.episode_id,
    });
    expect(over.status).toBe(422);
    expect(over.body).toMatchObject({ detail: [{ loc: ["body", "request_id"] }] });
  });
});
