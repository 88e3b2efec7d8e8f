// The Python SDK's retry suite (sdk-python/tests/test_retries.py: 503/429/409 answers, dropped
// connections, a lost response) against the "two-instances" project's stack: two API instances behind
// one port, requests alternating between them as between Lambda instances. A retry then usually
// reaches the other instance, which must replay the stored result, never run the step again.
// (The SDK's other modules run against the one-instance stack in python-sdk.test.ts; this module
// runs only here.) One process per test class, side by side: the classes mostly wait (Retry-After,
// sleeping cells).
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, inject, it } from "vitest";
import "../helpers/context.js";
import { run } from "./run.js";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const python = existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
const testsDir = join(repoRoot, "sdk-python", "tests");
const source = readFileSync(join(testsDir, "test_retries.py"), "utf8");
const testClasses = [...source.matchAll(/^class (\w+)\(unittest\.TestCase\):/gm)].map((m) => m[1] ?? "");
// Each class's tests are counted as they run; together they must be every test of the module.
const testsInModule = [...source.matchAll(/^ {4}def test_\w+\(/gm)].length;
const ranByClass = new Map<string, number>();

/** `python -m unittest -v test_retries.<cls>` on the two-instance stack: its exit status and report. */
async function runClass(cls: string): Promise<{ status: number | null; report: string }> {
  const { status, stdout, stderr } = await run(python, ["-m", "unittest", "-v", `test_retries.${cls}`], {
    cwd: testsDir,
    env: { PYTHONPATH: join(repoRoot, "sdk-python"), CODING_ENV_URL: inject("baseUrl") },
  });
  return { status, report: stdout + stderr };
}

describe("Python SDK retries on two API instances", () => {
  describe.concurrent("each test class of test_retries passes, nothing skipped", () => {
    for (const cls of testClasses) {
      it(cls, { timeout: 300_000 }, async ({ expect }) => {
        // Act
        const { status, report } = await runClass(cls);
        // Assess: unittest reports on stderr; the last line is "OK" (not "OK (skipped=N)")
        expect(status, report.slice(-4000)).toBe(0);
        const ran = /^Ran (\d+) tests? in /m.exec(report);
        expect(Number(ran?.[1])).toBeGreaterThan(0);
        expect(report.trim().split("\n").pop()).toBe("OK");
        ranByClass.set(cls, Number(ran?.[1]));
      });
    }
  });

  it("ran every test of the module", () => {
    expect(testClasses.length).toBeGreaterThanOrEqual(2);
    expect([...ranByClass.values()].reduce((a, b) => a + b, 0)).toBe(testsInModule);
  });
});
