// Rich outputs: a step's `display` (Jupyter MIME bundles) at the top level of the response, never in
// `observation`; kept in the history and its JSONL export.
import { describe, expect, inject, it } from "vitest";
import { call, Episode } from "../helpers/api.js";

const baseUrl = inject("baseUrl");
const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47]);

describe("display outputs", () => {
  it("a DataFrame as an HTML table, and the history keeps it", async () => {
    const ep = await Episode.reset(baseUrl, { policy: "full" });
    const out = await ep.run("import pandas as pd\ndisplay(pd.DataFrame({'a': [1, 2]}))");
    expect(Object.keys(out.observation).sort()).toEqual(["exit_code", "stderr", "stdout"]);
    expect(out.display).toHaveLength(1);
    expect(out.display?.[0]?.data["text/html"]).toContain("<table");
    const plain = await ep.run("1 + 1");
    expect(plain.display).toBeUndefined();
    const history = await call<{ steps: Array<{ display?: unknown[] }> }>(
      baseUrl,
      "GET",
      `/episodes/${ep.id}/history`,
    );
    expect(history.body.steps[0]?.display).toEqual(out.display);
    expect(history.body.steps[1]?.display).toBeUndefined();
    const jsonl = await call(baseUrl, "GET", `/episodes/${ep.id}/history?format=jsonl`);
    const first = JSON.parse(jsonl.text.split("\n")[0] ?? "{}") as { display?: unknown };
    expect(first.display).toEqual(out.display);
  });

  it("a matplotlib figure as PNG without plt.show()", async (ctx) => {
    const ep = await Episode.reset(baseUrl, { policy: "full" });
    const probe = await ep.run("import importlib.util\nimportlib.util.find_spec('matplotlib') is not None");
    if (probe.observation.stdout !== "true")
      ctx.skip("matplotlib is not installed (apt-get install python3-matplotlib)");
    const out = await ep.run("import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])", { timeout_s: 60 });
    expect(out.observation.exit_code).toBe(0);
    expect(out.display).toHaveLength(1);
    const png = Buffer.from(out.display?.[0]?.data["image/png"] ?? "", "base64");
    expect(png.subarray(0, 4)).toEqual(PNG_MAGIC);
  });
});
