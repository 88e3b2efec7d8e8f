// The known package set (python-runtime/coding_env_runtime/packages.json) as the API reports it:
// `/metadata` names every listed package with the version the executor has, and an `openenv`
// episode may import any of them through additional_imports.
import { readFileSync } from "node:fs";
import { describe, expect, inject, it } from "vitest";
import { call, Episode } from "../helpers/api.js";

const baseUrl = inject("baseUrl");
const listed = Object.keys(
  (
    JSON.parse(
      readFileSync(new URL("../../python-runtime/coding_env_runtime/packages.json", import.meta.url), "utf8"),
    ) as { packages: Record<string, unknown> }
  ).packages,
).sort();

describe("the package set", () => {
  it("/metadata reports each listed package with the executor's installed version", async () => {
    const meta = await call<{ packages?: Record<string, string | null> }>(baseUrl, "GET", "/metadata");
    expect(meta.status).toBe(200);
    expect(Object.keys(meta.body.packages ?? {}).sort()).toEqual(listed);
    for (const version of Object.values(meta.body.packages ?? {})) expect(version).toMatch(/^\d+\.\d+/);
  });

  it("an openenv episode imports every listed package named in additional_imports, at that version", async () => {
    const meta = await call<{ packages: Record<string, string> }>(baseUrl, "GET", "/metadata");
    const ep = await Episode.reset(baseUrl, { additional_imports: listed });
    const code = listed.map((name) => `import ${name}; print("${name}", ${name}.__version__)`).join("\n");
    const out = await ep.run(code, { timeout_s: 60 });
    expect(out.observation.stderr).toBe("");
    expect(out.observation.exit_code).toBe(0);
    for (const name of listed)
      expect(out.observation.stdout).toContain(`${name} ${meta.body.packages[name]}`);
  });
});
