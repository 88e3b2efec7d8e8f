// The Python SDK (sdk-python/) against the real local stack: its unittest suite, and a
// `pip install` of the folder (offline, with the interpreter's own setuptools) that imports and runs.
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, inject, it } from "vitest";
import "../helpers/context.js";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const sdkDir = join(repoRoot, "sdk-python");
// Debian's interpreter (the SDK needs only the standard library and Python 3.10+).
const python = existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
const scratch = mkdtempSync(join(tmpdir(), "python-sdk-test-"));

afterAll(() => {
  rmSync(scratch, { recursive: true, force: true });
});

function run(args: string[], env: Record<string, string>, cwd = repoRoot, timeoutMs = 240_000) {
  return spawnSync(python, args, {
    cwd,
    encoding: "utf8",
    timeout: timeoutMs,
    env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1", PIP_DISABLE_PIP_VERSION_CHECK: "1", ...env },
  });
}

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

describe("Python SDK", () => {
  it("passes its unittest suite against the local stack, nothing skipped", { timeout: 300_000 }, () => {
    // Act
    const result = run(["-m", "unittest", "discover", "-s", "sdk-python/tests", "-v"], {
      CODING_ENV_URL: inject("baseUrl"),
      PYTHONPATH: sdkDir,
    });
    // Assess: unittest reports on stderr; the last line is "OK" (or "OK (skipped=N)")
    const report = result.stderr;
    expect(result.status, report.slice(-4000)).toBe(0);
    expect(report).toMatch(/Ran \d+ tests/);
    expect(report.trim().split("\n").pop()).toBe("OK");
  });

  it("installs with pip offline (setuptools as the only build backend) and imports from the install", {
    timeout: 300_000,
  }, () => {
    // Arrange: a copy, so the build's files never land in the repository
    const source = sdkCopy(scratch);
    const target = join(scratch, "site");
    // Act
    const install = run(
      [
        "-m",
        "pip",
        "install",
        "--no-index",
        "--no-build-isolation",
        "--no-cache-dir",
        "--target",
        target,
        source,
      ],
      {},
      scratch,
    );
    // Assess
    expect(install.status, `${install.stdout}\n${install.stderr}`).toBe(0);
    const quickStart = [
      "import json, coding_env_sdk",
      "from coding_env_sdk import CodingEnv",
      "with CodingEnv() as env:",
      "    env.reset()",
      "    r = env.step('x = 6 * 7\\nx')",
      "print(json.dumps({'file': coding_env_sdk.__file__, 'version': coding_env_sdk.__version__,",
      "                  'stdout': r.observation.stdout, 'reward': r.reward}))",
    ].join("\n");
    const imported = run(
      ["-c", quickStart],
      { PYTHONPATH: target, CODING_ENV_URL: inject("baseUrl") },
      scratch,
    );
    expect(imported.stderr).toBe("");
    expect(imported.status).toBe(0);
    const out = JSON.parse(imported.stdout.trim()) as {
      file: string;
      version: string;
      stdout: string;
      reward: number;
    };
    expect(out.file.startsWith(target)).toBe(true);
    expect(out).toMatchObject({ version: "0.1.0", stdout: "42", reward: 0.1 });
  });

  it("the README's venv install works with Debian's Python, which refuses pip outside a venv (PEP 668)", {
    timeout: 300_000,
  }, () => {
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
    // Act: Debian's python3 first on PATH, as on a fresh Debian machine
    const shell = spawnSync("sh", ["-ec", commands.join("\n")], {
      cwd: folder,
      encoding: "utf8",
      timeout: 240_000,
      env: {
        ...process.env,
        PATH: `${dirname(python)}:${process.env.PATH ?? ""}`,
        PIP_DISABLE_PIP_VERSION_CHECK: "1",
      },
    });
    const imported = spawnSync(
      join(folder, ".venv", "bin", "python"),
      ["-c", "import coding_env_sdk; print(coding_env_sdk.__file__)"],
      {
        cwd: folder,
        encoding: "utf8",
      },
    );
    // Assess: installed into the venv, not next to the source
    expect(shell.status, `${shell.stdout}\n${shell.stderr}`).toBe(0);
    expect(imported.stdout.trim().startsWith(join(folder, ".venv"))).toBe(true);
  });

  it("the README's Python examples run as written: plain HTTP with the standard library, and the SDK", {
    timeout: 120_000,
  }, () => {
    const blocks = codeBlocks("README.md", "python");
    expect(blocks.length).toBeGreaterThanOrEqual(2);
    for (const block of blocks.slice(0, 2)) {
      // The examples name the default local URL; the test's stack has its own port.
      const code = block.replaceAll("http://localhost:8000", inject("baseUrl"));
      const result = run(["-c", code], { CODING_ENV_URL: inject("baseUrl"), PYTHONPATH: sdkDir }, scratch);
      expect(result.stderr, block).toBe("");
      expect(result.stdout.trim(), block).toBe("42 0.1");
    }
  });
});
