// How an answer is measured as Lambda's response counts it (core/response-size.ts), and what the
// Lambda entry does with a result over the limit (http/fit-lambda-result.ts): a step's answer is
// cut and flagged, anything else is a 413 `response_too_large`, never a 5xx, base64 bodies included.
import { describe, expect, it } from "vitest";
import {
  envelopeBytes,
  envelopeBytesWithin,
  envelopeJsonBytes,
  LAMBDA_RESPONSE_BYTES,
  LAMBDA_RESPONSE_LIMIT_BYTES,
  PAGED_RESPONSE_BYTES,
} from "../../functions/src/core/response-size.js";
import { fitLambdaResult, isContentTypeBinary } from "../../functions/src/http/fit-lambda-result.js";
import { toWireJson } from "../../functions/src/http/wire-json.js";
import { fitFileList } from "../../functions/src/routes/files.js";

/** What a body adds to Lambda's result as the runtime serializes it. */
const inResult = (body: string) =>
  Buffer.byteLength(JSON.stringify({ statusCode: 200, body }), "utf8") -
  Buffer.byteLength(JSON.stringify({ statusCode: 200, body: "" }), "utf8");

/** The whole result's size as Lambda counts it. */
const resultBytes = (result: object) => Buffer.byteLength(JSON.stringify(result), "utf8");

describe("envelopeBytes", () => {
  it("counts a body as the string member of Lambda's result: quotes 2, an escaped control character 7, a newline 2", () => {
    expect(envelopeBytes('{"a":"b"}')).toBe(13);
    expect(envelopeBytes(JSON.stringify("\u0001"))).toBe(2 * 2 + 7);
    expect(envelopeBytes("x\n")).toBe(3);
    expect(envelopeBytes("é€😀")).toBe(2 + 3 + 4);
    for (const text of ['{"s":"\\"\\\\\\u0001"}', "plain", "\u2028\ud800", "a\tb\u0000"]) {
      expect(envelopeBytes(text)).toBe(inResult(text));
    }
    expect(envelopeJsonBytes({ s: '"' })).toBe(inResult(JSON.stringify({ s: '"' })));
  });

  it("envelopeBytesWithin agrees with the exact count on either side of the limit", () => {
    const quotes = JSON.stringify('"'.repeat(1000)); // 2002 bytes of JSON, 4004 in the result
    expect(envelopeBytes(quotes)).toBe(4004);
    expect(envelopeBytesWithin(quotes, 4004)).toBe(true);
    expect(envelopeBytesWithin(quotes, 4003)).toBe(false);
    const control = "\u0001".repeat(100); // raw control characters: 6 bytes each
    expect(envelopeBytesWithin(control, 600)).toBe(true);
    expect(envelopeBytesWithin(control, 599)).toBe(false);
  });
});

describe("fitLambdaResult", () => {
  const headers = { "content-type": "application/json" };

  it("returns a result that fits unchanged", () => {
    const result = { statusCode: 200, headers, body: '{"ok":true}', isBase64Encoded: false };
    expect(fitLambdaResult(result)).toBe(result);
  });

  it("a JSON answer that is not a step and passes the limit only once escaped again is a 413 response_too_large, not a 500", () => {
    // 4 MiB of raw JSON (a history page of quotes): 8 MiB in the result.
    const page = JSON.stringify({ episode_id: "ep", steps: [{ stdout: '"'.repeat(2 * 1024 * 1024) }] });
    expect(Buffer.byteLength(page)).toBeLessThan(LAMBDA_RESPONSE_LIMIT_BYTES);
    const refused: unknown[] = [];
    const fitted = fitLambdaResult(
      { statusCode: 200, headers: { ...headers, link: "<x>" }, body: page, isBase64Encoded: false },
      (r) => refused.push(r),
    );
    expect(fitted.statusCode).toBe(413);
    expect(JSON.parse(fitted.body)).toMatchObject({
      error: { code: "response_too_large", details: { limit_bytes: LAMBDA_RESPONSE_LIMIT_BYTES } },
    });
    expect(JSON.parse(fitted.body).error.message).toMatch(/smaller `limit`/);
    expect(fitted.headers).toEqual({ "content-type": "application/json" });
    expect(refused).toEqual([{ statusCode: 200, bodyBytes: envelopeBytes(page), isBase64Encoded: false }]);
  });

  it("a base64 body is measured too: over the limit it is a 413 in JSON, not passed to Lambda", () => {
    const bytes = Buffer.alloc(4_800_000, 7); // 6.4 MB once base64-encoded
    const fitted = fitLambdaResult({
      statusCode: 200,
      headers: { "content-type": "application/x-ndjson", "x-next-cursor": "abc" },
      body: bytes.toString("base64"),
      isBase64Encoded: true,
    });
    expect(fitted.statusCode).toBe(413);
    expect(fitted.isBase64Encoded).toBe(false);
    expect(fitted.headers).toEqual({ "content-type": "application/json" });
    expect(JSON.parse(fitted.body).error.code).toBe("response_too_large");
    expect(resultBytes(fitted)).toBeLessThan(LAMBDA_RESPONSE_BYTES);
    // Under the limit a base64 body passes as it is.
    const small = {
      statusCode: 200,
      body: Buffer.alloc(3_000_000).toString("base64"),
      isBase64Encoded: true,
    };
    expect(fitLambdaResult(small)).toBe(small);
  });

  it("a step's answer over the limit is cut in its output and flagged, within the limit", () => {
    const step = {
      observation: { stdout: "\u0001".repeat(1_000_000), stderr: "", exit_code: 0 },
      reward: 0,
      done: false,
      episode_id: "ep",
      step_count: 1,
      metadata: {},
      info: {},
    };
    const fitted = fitLambdaResult({ statusCode: 200, headers, body: JSON.stringify(step) });
    expect(fitted.statusCode).toBe(200);
    expect(resultBytes(fitted)).toBeLessThanOrEqual(LAMBDA_RESPONSE_LIMIT_BYTES);
    expect(JSON.parse(fitted.body).info).toMatchObject({
      stdout_truncated: true,
      truncated_by: "lambda_response_limit",
    });
  });

  it("the JSON Lines export is sent as text; octet-stream stays binary", () => {
    expect(isContentTypeBinary("application/x-ndjson")).toBe(false);
    expect(isContentTypeBinary("application/x-ndjson; charset=utf-8")).toBe(false);
    expect(isContentTypeBinary("application/json")).toBe(false);
    expect(isContentTypeBinary("application/octet-stream")).toBe(true);
  });
});

describe("fitFileList", () => {
  it("keeps a usual list as it is", () => {
    const list = { episode_id: "ep", files: [{ path: "out.csv", size: 6 }] };
    expect(fitFileList(list)).toBe(list);
  });

  it("cuts a list of 1000 control-character paths (6.7 MB escaped again) in path order, within the page size, flagged", () => {
    const dir = ["\u0001".repeat(250), "\u0001".repeat(250), "\u0001".repeat(250)].join("/");
    const files = Array.from({ length: 1000 }, (_, i) => ({
      path: `${dir}/${"\u0001".repeat(196)}${String(i).padStart(4, "0")}`,
      size: 0,
    }));
    const list = { episode_id: "ep", files };
    expect(envelopeJsonBytes(list)).toBeGreaterThan(LAMBDA_RESPONSE_BYTES);
    const fitted = fitFileList(list);
    expect(fitted.truncated).toBe(true);
    expect(envelopeBytes(toWireJson(fitted))).toBeLessThanOrEqual(PAGED_RESPONSE_BYTES);
    expect(fitted.files.length).toBeGreaterThan(700);
    expect(fitted.files).toEqual(files.slice(0, fitted.files.length));
    // As many as fit: one more would not.
    const oneMore = { ...fitted, files: files.slice(0, fitted.files.length + 1) };
    expect(envelopeBytes(toWireJson(oneMore))).toBeGreaterThan(PAGED_RESPONSE_BYTES);
  });
});
