import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, inject, it } from "vitest";
import "../helpers/context.js";
import { onTwoInstances } from "../projects.js";
import { run } from "./run.js";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const sdkDir = join(repoRoot, "sdk-python");
const testsDir = join(sdkDir, "tests");
// Debian's interpreter (the SDK needs only the standard library and Python 3.10+).
const python = existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
const scratch = mkdtempSync(join(tmpdir(), "python-sdk-test-"));
// What `python -m unittest discover` would run: the modules named test*.py.
const testModules = readdirSync(testsDir)
  .filter((name) => /^test.*\.py$/.test(name))
  .map((name) => name.slice(0, -".py".length))
  .sort();
// test_retries runs in retries-two-instances.test.ts, every test of it (that file counts them),
// against two API instances behind one port: the same assertions, where a retry usually reaches
// the other instance. Run here too, it would only repeat them against one instance.
const runElsewhere = new Set(["test_retries"]);

afterAll(() => {
  rmSync(scratch, { recursive: true, force: true });
});

/** The fenced blocks of `lang` in a Markdown file of the repository. */
function codeBlocks(file: string, lang: string): string[] {
  const text = readFileSync(join(repoRoot, file), "utf8");
  return [...text.matchAll(new RegExp(`\`\`\`${lang}\n([\\s\\S]*?)\`\`\``, "g"))].map((m) => m[1] ?? "");
}

/** A copy of sdk-python/ in a scratch folder, so a build's files never land in the repository. */
function sdkCopy(into: string): string {
  const source = join(into, "sdk-python");
  cpSync(sdkDir, source, {
    recursive: true,
    filter: (path) => !/(^|\/)(build|dist|__pycache__|[^/]*\.egg-info)$/.test(path),
  });
  return source;
}

describe.concurrent("Python SDK", () => {
  // First: the longest test, so it starts before vitest's limit of concurrent tests is reached.
  it("installs offline into a venv as the README says (Debian's Python refuses pip outside one, PEP 668), and the quick start runs from the install", {
    timeout: 300_000,
  }, async ({ expect }) => {
    // Arrange: the documented offline commands, run where ./sdk-python is a copy
    const folder = mkdtempSync(join(scratch, "venv-"));
    sdkCopy(folder);
    const offline = codeBlocks("sdk-python/README.md", "sh").filter((block) => block.includes("--no-index"));
    expect(offline).toHaveLength(1);
    const commands = (offline[0] ?? "")
      .split("\n")
      .map((line) => line.replace(/\s+#.*$/, "").trim())
      .filter((line) => line !== "");
    expect(commands).toEqual([
      "python3 -m venv --system-site-packages .venv",
      ".venv/bin/pip install --no-index --no-build-isolation ./sdk-python",
    ]);
    const quickStart = [
      "import json, coding_env_sdk",
      "from coding_env_sdk import CodingEnv",
      "with CodingEnv() as env:",
      "    env.reset()",
      "    r = env.step('x = 6 * 7\\nx')",
      "print(json.dumps({'file': coding_env_sdk.__file__, 'version': coding_env_sdk.__version__,",
      "                  'stdout': r.observation.stdout, 'reward': r.reward}))",
    ].join("\n");
    // Act: Debian's python3 first on PATH, as on a fresh Debian machine
    const buildTmp = mkdtempSync(join(scratch, "tmp-"));
    const shell = await run("sh", ["-ec", commands.join("\n")], {
      cwd: folder,
      env: { PATH: `${dirname(python)}:${process.env.PATH ?? ""}`, TMPDIR: buildTmp },
    });
    expect(shell.status, `${shell.stdout}\n${shell.stderr}`).toBe(0);
    const imported = await run(join(folder, ".venv", "bin", "python"), ["-c", quickStart], {
      cwd: folder,
      env: { PYTHONPATH: "", CODING_ENV_URL: inject("baseUrl") },
    });
    // Assess: imported from the venv (not from the source next to it), and it works
    expect(imported.stderr).toBe("");
    expect(imported.status).toBe(0);
    const out = JSON.parse(imported.stdout.trim()) as {
      file: string;
      version: string;
      stdout: string;
      reward: number;
    };
    expect(out.file.startsWith(join(folder, ".venv"))).toBe(true);
    expect(out).toMatchObject({ version: "0.1.0", stdout: "42", reward: 0.1 });
  });

  it("has its unittest modules, and the ones not run here run in the two-instance project", ({ expect }) => {
    expect(testModules).toEqual(expect.arrayContaining(["test_client", "test_errors", "test_retries"]));
    const twoInstances = "test/python-sdk/retries-two-instances.test.ts";
    expect(onTwoInstances).toContain(twoInstances);
    const runner = readFileSync(join(repoRoot, twoInstances), "utf8");
    for (const module of runElsewhere) expect(runner).toContain(`"${module}.py"`);
  });

  for (const module of testModules.filter((name) => !runElsewhere.has(name))) {
    it(`${module} passes against the local stack, nothing skipped`, { timeout: 300_000 }, async ({
      expect,
    }) => {
      // Act: from the tests' folder, as `discover -s` would (the modules import `support`)
      const result = await run(python, ["-m", "unittest", "-v", module], {
        cwd: testsDir,
        env: { CODING_ENV_URL: inject("baseUrl"), PYTHONPATH: sdkDir },
      });
      // Assess: unittest reports on stderr; the last line is "OK" (not "OK (skipped=N)")
      const report = result.stderr;
      expect(result.status, report.slice(-4000)).toBe(0);
      expect(report).toMatch(/Ran [1-9]\d* tests?/);
      expect(report.trim().split("\n").pop()).toBe("OK");
    });
  }

  it("the README's Python examples run as written: plain HTTP with the standard library, and the SDK", {
    timeout: 120_000,
  }, async ({ expect }) => {
    const blocks = codeBlocks("README.md", "python");
    expect(blocks.length).toBeGreaterThanOrEqual(2);
    const results = await Promise.all(
      blocks.slice(0, 2).map((block) =>
        // The examples name the default local URL; the test's stack has its own port.
        run(python, ["-c", block.replaceAll("http://localhost:8000", inject("baseUrl"))], {
          cwd: scratch,
          env: { CODING_ENV_URL: inject("baseUrl"), PYTHONPATH: sdkDir },
        }),
      ),
    );
    for (const [i, result] of results.entries()) {
      expect(result.stderr, blocks[i]).toBe("");
      expect(result.stdout.trim(), blocks[i]).toBe("42 0.1");
    }
  });
});
