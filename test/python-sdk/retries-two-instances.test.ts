// The Python SDK's retry suite (sdk-python/tests/test_retries.py: 503/429/409 answers, dropped
// connections, a lost response) against the "two-instances" project's stack: two API instances behind
// one port, requests alternating between them as between Lambda instances. A retry then usually
// reaches the other instance, which must replay the stored result, never run the step again.
// (The whole SDK suite runs against the one-instance stack in python-sdk.test.ts.)
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, inject, it } from "vitest";
import "../helpers/context.js";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const python = existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";

describe("Python SDK retries on two API instances", () => {
  it("passes its retry suite, nothing skipped", { timeout: 300_000 }, () => {
    // Act
    const result = spawnSync(python, ["-m", "unittest", "-v", "test_retries"], {
      cwd: join(repoRoot, "sdk-python", "tests"),
      encoding: "utf8",
      timeout: 240_000,
      env: {
        ...process.env,
        PYTHONDONTWRITEBYTECODE: "1",
        PYTHONPATH: join(repoRoot, "sdk-python"),
        CODING_ENV_URL: inject("baseUrl"),
      },
    });
    // Assess: unittest reports on stderr; the last line is "OK" (not "OK (skipped=N)")
    const report = result.stderr;
    expect(result.status, report.slice(-4000)).toBe(0);
    expect(report).toMatch(/Ran [1-9]\d* tests/);
    expect(report.trim().split("\n").pop()).toBe("OK");
  });
});
