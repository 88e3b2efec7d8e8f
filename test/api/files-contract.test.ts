// The files routes and the `display` lists as /openapi.json documents them: the examples Swagger UI
// offers succeed when tried against the real stack, and every documented refusal is what the
// server answers, in the one error shape (traversal 400, unknown file 404, too large 413,
// not JSON 415, wrong shape 422).
import { describe, expect, inject, it } from "vitest";
import { call, Episode, errorCode } from "../helpers/api.js";
import { undescribedFields } from "../helpers/openapi.js";

const baseUrl = inject("baseUrl");

type Json = Record<string, unknown>;
interface Parameter {
  name: string;
  in: string;
  schema: Json & { example?: unknown };
}
interface Operation {
  parameters?: Parameter[];
  requestBody?: { required?: boolean; content: Record<string, { example?: unknown; schema: Json }> };
  responses: Record<string, { description: string; content?: Record<string, { schema: Json }> }>;
}
interface OpenApiDoc {
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Json & { properties?: Record<string, Json> }> };
}

async function openApi(): Promise<OpenApiDoc> {
  const r = await call<OpenApiDoc>(baseUrl, "GET", "/openapi.json");
  expect(r.status).toBe(200);
  return r.body;
}

const FILE = "/episodes/{id}/files/{path}";

describe("files routes in /openapi.json", () => {
  it("documents the raw-bytes download, the upload body and every refusal in the one error shape", async () => {
    const doc = await openApi();
    const read = doc.paths[FILE]?.get;
    const write = doc.paths[FILE]?.put;
    const list = doc.paths["/episodes/{id}/files"]?.get;
    expect(read?.responses["200"]?.content?.["application/octet-stream"]?.schema).toMatchObject({
      type: "string",
      format: "binary",
    });
    expect(write?.requestBody?.required).toBe(true);
    expect(write?.requestBody?.content["application/json"]?.schema).toEqual({
      $ref: "#/components/schemas/FileUpload",
    });
    expect(list?.responses["200"]?.content?.["application/json"]?.schema).toEqual({
      $ref: "#/components/schemas/FileList",
    });
    expect(Object.keys(read?.responses ?? {})).toEqual(expect.arrayContaining(["400", "404", "413"]));
    expect(Object.keys(write?.responses ?? {})).toEqual(
      expect.arrayContaining(["400", "404", "409", "413", "415", "422"]),
    );
    expect(read?.responses["400"]?.description).toContain("invalid_path");
    expect(read?.responses["404"]?.description).toContain("file_not_found");
    expect(write?.responses["415"]?.description).toContain("unsupported_media_type");
    for (const op of [read, write, list]) {
      for (const [status, res] of Object.entries(op?.responses ?? {})) {
        if (Number(status) >= 400) {
          expect(res.content?.["application/json"]?.schema, status).toEqual({
            $ref: "#/components/schemas/ErrorResponse",
          });
        }
      }
    }
    const upload = doc.components.schemas.FileUpload;
    expect(upload?.additionalProperties).toBe(false);
    expect(String(upload?.properties?.content?.description)).toMatch(/1048576 bytes/);
  });

  it("the examples succeed when tried: upload the example body at the example path, list it, download it", async () => {
    // Prepare: what Swagger UI's "Try it out" fills in (the episode id is the user's own)
    const doc = await openApi();
    const pathExample = doc.paths[FILE]?.put?.parameters?.find((p) => p.name === "path")?.schema.example;
    const bodyExample = doc.paths[FILE]?.put?.requestBody?.content["application/json"]?.example as {
      content: string;
    };
    expect(typeof pathExample).toBe("string");
    const ep = await Episode.reset(baseUrl, {});
    // Act
    const put = await call(baseUrl, "PUT", `/episodes/${ep.id}/files/${pathExample}`, bodyExample);
    const listed = await call(baseUrl, "GET", `/episodes/${ep.id}/files`);
    const got = await fetch(`${baseUrl}/episodes/${ep.id}/files/${pathExample}`);
    // Swagger UI percent-encodes a path parameter, "/" included.
    const encoded = await fetch(
      `${baseUrl}/episodes/${ep.id}/files/${encodeURIComponent(String(pathExample))}`,
    );
    // Assess
    expect(put.status).toBe(200);
    expect(put.body).toEqual({
      episode_id: ep.id,
      path: pathExample,
      size: Buffer.byteLength(bodyExample.content),
      step_count: 1,
    });
    expect(listed.body).toEqual({
      episode_id: ep.id,
      files: [{ path: pathExample, size: Buffer.byteLength(bodyExample.content) }],
    });
    expect(got.status).toBe(200);
    expect(got.headers.get("content-type")).toBe("application/octet-stream");
    expect(got.headers.get("content-disposition")).toMatch(/^attachment; filename\*=UTF-8''/);
    expect(await got.text()).toBe(bodyExample.content);
    expect(encoded.status).toBe(200);
    expect(await encoded.text()).toBe(bodyExample.content);
  });

  it("refuses an upload as documented: not JSON 415, malformed 400, wrong shape or bad base64 422", async () => {
    const ep = await Episode.reset(baseUrl, {});
    const url = `/episodes/${ep.id}/files/a.txt`;
    const plain = await call(baseUrl, "PUT", url, "hello", { "content-type": "text/plain" });
    const malformed = await call(baseUrl, "PUT", url, "{", { "content-type": "application/json" });
    const extra = await call(baseUrl, "PUT", url, { content: "x", mode: "0777" });
    const badBase64 = await call(baseUrl, "PUT", url, { content: "not base64!", encoding: "base64" });
    const badEncoding = await call(baseUrl, "PUT", url, { content: "x", encoding: "latin-1" });
    expect([plain.status, errorCode(plain)]).toEqual([415, "unsupported_media_type"]);
    expect([malformed.status, errorCode(malformed)]).toEqual([400, "invalid_json"]);
    for (const r of [extra, badBase64, badEncoding]) {
      expect([r.status, errorCode(r)]).toEqual([422, "validation_error"]);
      expect(r.body).toMatchObject({ detail: [{ loc: expect.arrayContaining(["body"]) }] });
    }
    expect(badBase64.body).toMatchObject({ detail: [{ loc: ["body", "content"] }] });
    // Nothing was written by any of them.
    expect((await call(baseUrl, "GET", `/episodes/${ep.id}/files`)).body).toEqual({
      episode_id: ep.id,
      files: [],
    });
  });
});

describe("the files and display schemas", () => {
  it("describe every field", async () => {
    const { schemas } = (await openApi()).components;
    const missing: string[] = [];
    for (const name of [
      "FileEntry",
      "FileList",
      "FileUpload",
      "FileWritten",
      "DisplayOutput",
      "HistoryLine",
    ]) {
      expect(schemas[name], name).toBeDefined();
      expect(typeof schemas[name]?.description, name).toBe("string");
      missing.push(...undescribedFields(schemas[name] as Json, name));
    }
    expect(missing).toEqual([]);
  });
});

describe("display in /openapi.json", () => {
  it("is a bounded list of MIME bundles at the top level of a step, in history records and JSONL lines", async () => {
    const { schemas } = (await openApi()).components;
    const ref = { $ref: "#/components/schemas/DisplayOutput" };
    for (const name of ["StepResponse", "HistoryStep"]) {
      expect(schemas[name]?.properties?.display, name).toMatchObject({
        type: "array",
        items: ref,
        maxItems: 21,
      });
    }
    expect(schemas.CodeObservation?.properties?.display).toBeUndefined();
    expect(schemas.HistoryLine?.properties?.display).toEqual(schemas.HistoryStep?.properties?.display);
    expect(schemas.HistoryLine?.required).toEqual(
      expect.arrayContaining(["episode_id", "step", "observation"]),
    );
    expect(schemas.DisplayOutput?.required).toEqual(["data", "metadata"]);
  });
});
