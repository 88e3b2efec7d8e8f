// The page has no HTTP client of its own (issue 12: one contract; the page uses the SDK): no file of
// web/src sends a request itself, and the SDK is what the page imports for the API.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const srcDir = join(process.cwd(), "web", "src");
const sources = readdirSync(srcDir)
  .filter((name) => name.endsWith(".ts"))
  .map((name) => ({ name, text: readFileSync(join(srcDir, name), "utf8") }));

describe("the page's API calls", () => {
  it("are made by the SDK only: no fetch, XMLHttpRequest, sendBeacon or WebSocket in web/src", () => {
    const own = sources.flatMap(({ name, text }) =>
      [/\bfetch\s*\(/, /XMLHttpRequest/, /sendBeacon/, /new\s+WebSocket/, /EventSource/]
        .filter((pattern) => pattern.test(text))
        .map((pattern) => `${name}: ${pattern}`),
    );

    expect(sources.length).toBeGreaterThan(0);
    expect(own).toEqual([]);
    expect(sources.find((s) => s.name === "app.ts")?.text).toContain('from "../../sdk/src/index.js"');
  });
});
