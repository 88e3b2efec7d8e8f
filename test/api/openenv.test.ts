// OpenEnv's own coding_env test cases, translated to our HTTP API (real stack, real executor).
import { describe, expect, inject, it } from "vitest";
import { call, Episode, type StepBody } from "../helpers/api.js";

const baseUrl = inject("baseUrl");

describe("OpenEnv coding_env behaviour", () => {
  it("reset gives a fresh episode with an empty observation and reward 0.0", async () => {
    // Act
    const r = await call<StepBody>(baseUrl, "POST", "/reset", {});
    // Assess
    expect(r.status).toBe(200);
    expect(r.body.observation).toEqual({ stdout: "", stderr: "", exit_code: 0 });
    expect(r.body.reward).toBe(0);
    expect(r.body.done).toBe(false);
    expect(r.body.step_count).toBe(0);
    expect(r.body.episode_id).toMatch(/^ep_[0-9a-f]{24}$/);
    expect(r.headers.get("set-cookie")).toMatch(
      new RegExp(`^coding_env_episode=${r.body.episode_id}; Path=/; HttpOnly; SameSite=Lax$`),
    );
  });

  it("each reset has a new episode id", async () => {
    const ids = new Set<string>();
    for (let i = 0; i < 5; i++) ids.add((await Episode.reset(baseUrl)).id);
    expect(ids.size).toBe(5);
  });

  it("variables persist across steps", async () => {
    const ep = await Episode.reset(baseUrl);
    await ep.run("x = 41");
    const out = await ep.run("x + 1");
    expect(out.observation).toEqual({ stdout: "42", stderr: "", exit_code: 0 });
  });

  it("reset clears variables, functions and imports (same id reused)", async () => {
    // Prepare
    const ep = await Episode.reset(baseUrl, { episode_id: "openenv-reset-clears" });
    await ep.run("x = 1\ndef f():\n    return 2\nimport math as m");
    expect((await ep.run("print(x, f(), m.floor(2.5))")).observation.stdout.trim()).toBe("1 2 2");
    // Act
    await Episode.reset(baseUrl, { episode_id: "openenv-reset-clears" });
    // Assess
    for (const name of ["x", "f", "m"]) {
      const out = await ep.run(name);
      expect(out.observation.exit_code).toBe(1);
      expect(out.observation.stderr).toContain("NameError");
    }
    expect((await ep.state()).step_count).toBe(3);
  });

  it("step_count counts steps since reset and /state reports it", async () => {
    const ep = await Episode.reset(baseUrl);
    for (let i = 1; i <= 3; i++) expect((await ep.run(`a${i} = ${i}`)).step_count).toBe(i);
    const state = await call(baseUrl, "GET", `/state?episode_id=${ep.id}`);
    expect(state.body).toMatchObject({ episode_id: ep.id, step_count: 3, last_exit_code: 0 });
  });

  it.each([
    ["x = 5", 0.1, undefined],
    ["import os", -0.9, "import\\s+os"],
    ["import subprocess", -0.9, "import\\s+subprocess"],
    ["eval('1')", -0.9, "eval\\("],
    ["exec('1')", -0.9, "exec\\("],
    ["__import__('math')", -0.9, "__import__"],
    ["open('f')", -0.9, "open\\("],
    [`x = ${"1 + ".repeat(29)}1`, 0.0, undefined],
    ["print('unclosed", -0.1, undefined],
    ["import os\nprint('unclosed", -1.1, "import\\s+os"],
  ])("reward of %j is %d", async (code, reward, violation) => {
    const ep = await Episode.reset(baseUrl);
    const out = await ep.run(code);
    expect(out.reward).toBeCloseTo(reward, 10);
    expect(out.metadata?.last_code).toBe(code);
    expect(out.metadata?.safety_violation).toBe(violation);
  });

  it("a 120-character safe line scores 0.0 and a 100-character one 0.1", async () => {
    const ep = await Episode.reset(baseUrl);
    const long = `s = '${"a".repeat(114)}'`;
    expect(long.length).toBe(120);
    expect((await ep.run(long)).reward).toBeCloseTo(0.0, 10);
    const exact = `s = '${"a".repeat(94)}'`;
    expect(exact.length).toBe(100);
    expect((await ep.run(`\n${exact}  \n\n`)).reward).toBeCloseTo(0.1, 10);
  });

  it.each([
    ["raise ValueError('boom')", "ValueError"],
    ["1/0", "ZeroDivisionError"],
    ["def broken(:\n  pass", "SyntaxError"],
    ["import numpy", "numpy"],
    ["undefined_name", "NameError"],
  ])("errors are data: %j exits 1 with %s in stderr", async (code, marker) => {
    const ep = await Episode.reset(baseUrl);
    const r = await ep.step(code);
    expect(r.status).toBe(200);
    expect(r.body.observation.exit_code).toBe(1);
    expect(r.body.observation.stderr).toContain(marker);
    expect(Object.keys(r.body.observation).sort()).toEqual(["exit_code", "stderr", "stdout"]);
  });

  it("the observation object carries only OpenEnv's fields; extras are top-level", async () => {
    const ep = await Episode.reset(baseUrl);
    const out = await ep.run("print('hi')");
    expect(Object.keys(out.observation).sort()).toEqual(["exit_code", "stderr", "stdout"]);
    expect(out).toMatchObject({ episode_id: ep.id, step_count: 1, done: false });
    expect(out.info).toMatchObject({ timed_out: false, stdout_truncated: false, stderr_truncated: false });
  });

  it("allowed imports work and additional_imports extends the allow-list", async () => {
    const plain = await Episode.reset(baseUrl);
    expect((await plain.run("import math\nmath.factorial(5)")).observation.stdout).toBe("120");
    expect((await plain.run("import json")).observation.exit_code).toBe(1);
    const extended = await Episode.reset(baseUrl, { additional_imports: ["json"] });
    expect((await extended.run("import json\njson.dumps([1])")).observation.exit_code).toBe(0);
    expect((await extended.state()).additional_imports).toEqual(["json"]);
  });

  it("/health, /schema and /metadata answer as OpenEnv's server does", async () => {
    const health = await call(baseUrl, "GET", "/health");
    expect(health.body).toEqual({ status: "healthy", auth_required: false });
    const schema = await call<Record<string, { properties: Record<string, unknown> }>>(
      baseUrl,
      "GET",
      "/schema",
    );
    expect(Object.keys(schema.body).sort()).toEqual(["action", "observation", "state"]);
    expect(Object.keys(schema.body.action?.properties ?? {})).toContain("code");
    expect(Object.keys(schema.body.observation?.properties ?? {}).sort()).toEqual([
      "exit_code",
      "stderr",
      "stdout",
    ]);
    expect(Object.keys(schema.body.state?.properties ?? {})).toEqual(
      expect.arrayContaining(["episode_id", "step_count", "last_exit_code"]),
    );
    const meta = await call(baseUrl, "GET", "/metadata");
    expect(meta.body).toMatchObject({ name: "coding_env" });
    expect(typeof meta.body.description).toBe("string");
  });

  it("/openapi.json lists every route and /docs loads Swagger UI from this server", async () => {
    const doc = await call<{ openapi: string; paths: Record<string, unknown> }>(
      baseUrl,
      "GET",
      "/openapi.json",
    );
    expect(doc.body.openapi).toBe("3.1.0");
    expect(Object.keys(doc.body.paths)).toEqual(
      expect.arrayContaining([
        "/reset",
        "/step",
        "/state",
        "/health",
        "/episodes/{id}",
        "/episodes/{id}/history",
        "/episodes/{id}/fork",
      ]),
    );
    const docs = await call(baseUrl, "GET", "/docs");
    expect(docs.text).toContain('src="/docs/swagger-ui-bundle.js"');
    expect(docs.text).toContain("/openapi.json");
    const bundle = await fetch(`${baseUrl}/docs/swagger-ui-bundle.js`);
    expect(bundle.status).toBe(200);
    expect(bundle.headers.get("content-type")).toContain("javascript");
    await bundle.arrayBuffer();
  });

  it("serves the web page at /web and /web/", async () => {
    for (const path of ["/web", "/web/"]) {
      const r = await fetch(`${baseUrl}${path}`);
      expect(r.status).toBe(200);
      expect(r.headers.get("content-type")).toContain("text/html");
      expect(await r.text()).toMatch(/<html|<!doctype/i);
    }
  });
});

describe("OpenEnv fidelity (its current HTTP server and coding_env models)", () => {
  it("rewards are JSON floats on the wire: 0.0 on reset, -1.0 for an unsafe long step, also in the history", async () => {
    // Prepare
    const reset = await call<StepBody>(baseUrl, "POST", "/reset", {});
    const id = reset.body.episode_id;
    // Act: `import os` (-1.0) in code over 100 characters (no +0.1) is exactly -1
    const code = `import os\n# ${"x".repeat(100)}`;
    const step = await call<StepBody>(baseUrl, "POST", "/step", { action: { code }, episode_id: id });
    const history = await call(baseUrl, "GET", `/episodes/${id}/history`);
    const jsonl = await fetch(`${baseUrl}/episodes/${id}/history?format=jsonl`);
    // Assess: the raw text, since JSON.parse cannot tell -1 from -1.0
    expect(reset.text).toContain('"reward":0.0');
    expect(step.body.reward).toBe(-1);
    expect(step.text).toContain('"reward":-1.0');
    expect(history.text).toContain('"reward":-1.0');
    expect(await jsonl.text()).toContain('"reward":-1.0');
  });

  it("an action with unknown fields is refused with 422, as the reference's CodeAction (extra=forbid)", async () => {
    const ep = await Episode.reset(baseUrl);
    const r = await call(baseUrl, "POST", "/step", { action: { code: "1", lint: true }, episode_id: ep.id });
    expect(r.status).toBe(422);
    expect(r.body).toMatchObject({
      error: { code: "validation_error" },
      detail: [{ loc: ["body", "action"], type: "unrecognized_keys" }],
    });
    // Unknown members of the step request itself are allowed (StepRequest extra=allow).
    const ok = await call(baseUrl, "POST", "/step", {
      action: { code: "1" },
      render: true,
      episode_id: ep.id,
    });
    expect(ok.status).toBe(200);
  });

  it("/schema says so: CodeAction allows no additional properties", async () => {
    const r = await call<{ action: { additionalProperties?: unknown } }>(baseUrl, "GET", "/schema");
    expect(r.body.action.additionalProperties).toBe(false);
  });

  it("GET /state with no episode answers the reference's empty state (200, episode_id null)", async () => {
    const r = await call(baseUrl, "GET", "/state");
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ episode_id: null, step_count: 0, last_exit_code: 0 });
  });

  it("GET / leads to the page", async () => {
    const r = await fetch(`${baseUrl}/`, { redirect: "manual" });
    expect(r.status).toBe(302);
    expect(r.headers.get("location")).toBe("/web");
  });
});
