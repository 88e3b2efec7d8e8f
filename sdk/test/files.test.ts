import { afterEach, describe, expect, it } from "vitest";
import { BadRequestError, CodingEnv } from "../src/index.js";
import { stackUrl } from "./helpers.js";

// files(), readFile(), writeFile() and a step's display against the real local stack.
const opened: CodingEnv[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((env) => env.close().catch(() => undefined)));
});

describe("episode files and display through the SDK", () => {
  it("writes, lists and reads files (bytes round-trip), and a step sees them", async () => {
    const env = new CodingEnv({ baseUrl: stackUrl() });
    opened.push(env);
    await env.reset({ policy: "full" });
    const bytes = new Uint8Array([0, 128, 255, 10]);
    const written = await env.writeFile("dir/a b.bin", bytes);
    expect(written).toMatchObject({ path: "dir/a b.bin", size: 4, step_count: 1 });
    await env.writeFile("t.txt", "héllo");
    expect(await env.files()).toEqual([
      { path: "dir/a b.bin", size: 4 },
      { path: "t.txt", size: 6 },
    ]);
    expect(await env.readFile("dir/a b.bin")).toEqual(bytes);
    expect(new TextDecoder().decode(await env.readFile("t.txt"))).toBe("héllo");
    const seen = await env.step("list(open('dir/a b.bin', 'rb').read())");
    expect(seen.observation.stdout).toBe("[0, 128, 255, 10]");
    await expect(env.writeFile("../x", "no")).rejects.toBeInstanceOf(BadRequestError);
  });

  it("a step's display bundles are on the result", async () => {
    const env = new CodingEnv({ baseUrl: stackUrl() });
    opened.push(env);
    await env.reset();
    const result = await env.step("class R:\n    def _repr_html_(self): return '<i>x</i>'\ndisplay(R())");
    expect(result.display?.[0]?.data["text/html"]).toBe("<i>x</i>");
  });
});
