// A history page and each part of the JSON Lines export fit Lambda's 6 MB response, counted as sent
// (a control character is 6 bytes of JSON), however large the steps' code and outputs were; the
// export's parts chain by X-Next-Cursor, and the SDK joins them into one stream.
import { describe, expect, inject, it } from "vitest";
import { CodingEnv } from "../../sdk/src/index.js";
import { call, Episode } from "../helpers/api.js";

const baseUrl = inject("baseUrl");
const LAMBDA_RESPONSE_BYTES = 6 * 1024 * 1024;
const PAGE_BYTES = 4 * 1024 * 1024;
const EXPORT_PART_BYTES = 5 * 1024 * 1024;
const STEPS = 8;

// 300 K characters that JSON writes as \u0001 (6 bytes each): 1.8 MB per copy of the code, and
// each record carries two (`code` and `metadata.last_code`).
const escapingCode = `s = '${"\u0001".repeat(300_000)}'\nprint(len(s))`;

describe("history sizes as sent", () => {
  it("pages and export parts of steps with escaping code stay within Lambda's response limit", async () => {
    const ep = await Episode.reset(baseUrl);
    for (let i = 0; i < STEPS; i++) {
      const out = await ep.run(escapingCode);
      expect(out.observation.stdout.trim()).toBe("300000");
    }

    const pages: Array<{ bytes: number; steps: Array<{ step: number; history_truncated?: boolean }> }> = [];
    let cursor: string | null = null;
    do {
      const path: string = `/episodes/${ep.id}/history${cursor ? `?cursor=${encodeURIComponent(cursor)}` : ""}`;
      const page = await call<{ steps: Array<{ step: number }>; next_cursor: string | null }>(
        baseUrl,
        "GET",
        path,
      );
      expect(page.status).toBe(200);
      pages.push({ bytes: Buffer.byteLength(page.text, "utf8"), steps: page.body.steps });
      cursor = page.body.next_cursor;
    } while (cursor);
    expect(pages.length).toBeGreaterThan(1);
    for (const page of pages) expect(page.bytes).toBeLessThanOrEqual(PAGE_BYTES + 1024);
    const stepsSeen = pages.flatMap((p) => p.steps);
    expect(stepsSeen.map((s) => s.step)).toEqual(Array.from({ length: STEPS }, (_, i) => i + 1));
    // The code was cut for the history (the step's own response kept it whole) and says so.
    expect(stepsSeen.every((s) => s.history_truncated === true)).toBe(true);

    const parts: number[] = [];
    const lines: Array<{ step: number; episode_id: string }> = [];
    let next: string | null = null;
    do {
      const query: string = `format=jsonl${next ? `&cursor=${encodeURIComponent(next)}` : ""}`;
      const res = await fetch(`${baseUrl}/episodes/${ep.id}/history?${query}`);
      expect(res.status).toBe(200);
      const text = await res.text();
      parts.push(Buffer.byteLength(text, "utf8"));
      for (const line of text.split("\n").filter(Boolean)) lines.push(JSON.parse(line));
      next = res.headers.get("x-next-cursor");
      if (next) expect(res.headers.get("link")).toContain(`cursor=${next}>; rel="next"`);
    } while (next);
    expect(parts.length).toBeGreaterThan(1);
    for (const bytes of parts) expect(bytes).toBeLessThanOrEqual(EXPORT_PART_BYTES);
    expect(Math.max(...parts)).toBeLessThan(LAMBDA_RESPONSE_BYTES);
    expect(lines.map((l) => l.step)).toEqual(Array.from({ length: STEPS }, (_, i) => i + 1));
    expect(new Set(lines.map((l) => l.episode_id))).toEqual(new Set([ep.id]));

    // The SDK follows the parts: one stream, every step once, in order.
    const env = new CodingEnv({ baseUrl });
    const bound = env.withEpisode(ep.id);
    const exported: number[] = [];
    for await (const step of bound.exportHistory()) exported.push(step.step);
    expect(exported).toEqual(Array.from({ length: STEPS }, (_, i) => i + 1));
  });

  it("an export cursor that is not one of this incarnation's is refused with 422", async () => {
    const ep = await Episode.reset(baseUrl);
    await ep.run("x = 1");
    const foreign = Buffer.from("another-incarnation.1", "utf8").toString("base64url");
    const res = await call(baseUrl, "GET", `/episodes/${ep.id}/history?format=jsonl&cursor=${foreign}`);
    expect(res.status).toBe(422);
  });
});
