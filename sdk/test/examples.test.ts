import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stackUrl, tsxArgs } from "./helpers.js";

// Runs the examples as a user would (with tsx, as examples/README.md says), against the real local
// stack. quickstart.ts runs in package.test.ts, from the packed package installed into a project of
// its own.
const run = promisify(execFile);
const sdkDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const rootDir = resolve(sdkDir, "..");
const examplesDir = join(rootDir, "examples");
let workDir: string;

beforeAll(() => {
  workDir = mkdtempSync(join(tmpdir(), "coding-env-examples-"));
  // The examples import "@coding-env/sdk" (the workspace link), whose exports point at dist/:
  // built by `npm install` (root postinstall), and here once for the run (sdk/test/build.setup.ts).
});
afterAll(() => {
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...process.env, CODING_ENV_URL: stackUrl(), ...extra };
}

describe("examples/", () => {
  it("training-loop.ts runs episodes with forks and writes one trajectory per fork", async () => {
    const out = join(workDir, "trajectories.jsonl");

    const { stdout } = await run(process.execPath, tsxArgs(join(examplesDir, "training-loop.ts")), {
      cwd: rootDir,
      env: env({ EPISODES: "3", CONCURRENCY: "2", OUT: out }),
    });

    expect(stdout).toContain("rollouts ok: 3, errors: 0");
    expect(stdout).toContain("best score per episode: 1.10 1.10 1.10");
    const lines = readFileSync(out, "utf8").trim().split("\n");
    expect(lines).toHaveLength(12);
    const first = JSON.parse(lines[0] as string) as { steps: Array<{ code: string }> };
    expect(first.steps).toHaveLength(3); // setup (copied by the fork), candidate, check
  });

  it("openenv_client.py (OpenEnv's requests client shape) works unchanged", async () => {
    const { stdout } = await run("/usr/bin/python3", [join(examplesDir, "openenv_client.py")], {
      cwd: rootDir,
      env: env(),
    });

    expect(stdout).toContain("Reset complete: exit_code=0");
    expect(stdout).toContain(" → stdout: Result: 8");
    expect(stdout).toContain("State persists: x * 2 = 16");
  });

  it("deno-notebook.ipynb is a Deno notebook whose cells run in order (Deno stubbed, Node)", async () => {
    // No Deno here: run the code cells as one module under Node with a stand-in for `Deno`.
    const notebook = JSON.parse(readFileSync(join(examplesDir, "deno-notebook.ipynb"), "utf8")) as {
      metadata: { kernelspec: { name: string } };
      nbformat: number;
      cells: Array<{ cell_type: string; source: string[] }>;
    };
    expect(notebook.nbformat).toBe(4);
    expect(notebook.metadata.kernelspec.name).toBe("deno");
    const code = notebook.cells
      .filter((c) => c.cell_type === "code")
      .map((c) => c.source.join(""))
      .join(";\n");
    expect(code).toContain('from "../sdk/dist/esm/index.js"');
    const script = join(workDir, "notebook.mts");
    const sdkEntry = JSON.stringify(join(sdkDir, "dist", "esm", "index.js"));
    writeFileSync(
      script,
      [
        "const Deno = { env: { get: (n: string) => process.env[n] },",
        "  jupyter: { md: (s: TemplateStringsArray, ...v: unknown[]) => String.raw(s, ...v) } };",
        code.replace('"../sdk/dist/esm/index.js"', sdkEntry),
        'console.log("NOTEBOOK_OK", JSON.stringify(outcomes.map((o) => o.ok)));',
        "export {};",
      ].join("\n"),
    );
    const { stdout } = await run(process.execPath, tsxArgs(script), { cwd: workDir, env: env() });

    expect(stdout).toContain("NOTEBOOK_OK [true,true,true]");
  });
});
