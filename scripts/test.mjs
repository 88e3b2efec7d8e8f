// `npm test`: every check and test of the repository, in as few minutes as two cores allow, ending
// with one line of its own: `tests: N passed, N failed, N skipped (…)`.
//
// The Python runtime's unittest suite starts at once; the page is built meanwhile, once (the type
// check, the API tests and the CDK synth all read it). Then the other parts join it side by side:
// vitest (the longest: it starts streaming at once), `cdk synth` (its bundles are what the bundle
// tests run) and the static checks (Biome, one tsc program over the repository and the SDK, so
// shared files are checked once) one after another, at a low CPU priority (no test waits for
// them). Output of the two shorter parts is held back and printed whole when each ends, so no
// part's lines interleave with another's.
//
// Extra arguments go to vitest (e.g. `npm test -- test/api/episodes.test.ts`); with any, only
// vitest runs.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { setPriority, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const bin = (name) => join(repoRoot, "node_modules", ".bin", name);
// The AWS SDK's notice that its 2027 releases need Node 22: noise in every test's output.
const env = { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true" };

/**
 * Runs one command; `live` streams its output, otherwise it is returned for printing later. A
 * `background` one runs at nice 10 (its children too): on two cores it takes the CPU vitest, the
 * longest part, leaves idle while its suites wait, instead of slowing it down.
 */
function run(label, cmd, args, { live = false, background = false, childEnv = env } = {}) {
  const started = performance.now();
  return new Promise((done) => {
    const child = spawn(cmd, args, { cwd: repoRoot, env: childEnv, stdio: live ? "inherit" : "pipe" });
    if (background && child.pid !== undefined) {
      try {
        setPriority(child.pid, 10);
      } catch {
        // Only the order in which the parts get the CPU is lost.
      }
    }
    let output = "";
    child.stdout?.on("data", (chunk) => {
      output += chunk;
    });
    child.stderr?.on("data", (chunk) => {
      output += chunk;
    });
    const finish = (code) =>
      done({ label, code, output, seconds: Math.round((performance.now() - started) / 100) / 10 });
    child.on("error", (err) => {
      output += `${err.message}\n`;
      finish(1);
    });
    child.on("close", (code, signal) => finish(code ?? (signal ? 1 : 0)));
  });
}

/** Runs the steps in order, each whatever the one before gave (they check different things), in
 * the background (nice 10): no test waits for them. A step may be a part already running (its
 * result is awaited in turn). */
async function sequence(label, steps) {
  const started = performance.now();
  const results = [];
  for (const step of steps) {
    results.push(await (Array.isArray(step) ? run(...step, { background: true }) : step));
  }
  const failed = results.find((r) => r.code !== 0);
  return {
    label,
    code: failed ? failed.code : 0,
    output: results.map((r) => `> ${r.label} (${r.seconds} s)\n${r.output}`).join(""),
    // From the first step's start to the last one's end (a step already running, the synth, overlaps).
    seconds: Math.round((performance.now() - started) / 100) / 10,
    steps: results.map((r) => `${r.label} ${r.code === 0 ? "ok" : "FAILED"}`),
  };
}

function printHeld(result) {
  process.stdout.write(`\n──── ${result.label} (${result.seconds} s) ────\n${result.output}`);
  if (!result.output.endsWith("\n")) process.stdout.write("\n");
}

/** unittest's closing lines: `Ran N tests in …` then `OK (skipped=s)` or `FAILED (failures=f, errors=e, skipped=s)`. */
function unittestCounts(output) {
  const ran = [...output.matchAll(/^Ran (\d+) tests? in /gm)].at(-1);
  const total = ran ? Number(ran[1]) : 0;
  const tail = ran ? output.slice(ran.index) : "";
  const count = (name) => Number(new RegExp(`\\b${name}=(\\d+)`).exec(tail)?.[1] ?? 0);
  const skipped = count("skipped");
  const failed = count("failures") + count("errors") + count("unexpected successes");
  // No `Ran` line at all (an import error before any test ran) counts as one failure.
  return { passed: total - skipped - failed, failed: ran ? failed : 1, skipped };
}

/** vitest's JSON report (`--reporter=json`). */
function vitestCounts(reportPath, code) {
  try {
    const report = JSON.parse(readFileSync(reportPath, "utf8"));
    const failedFiles = report.testResults.filter(
      (f) => f.status === "failed" && f.assertionResults.length === 0,
    );
    return {
      passed: report.numPassedTests,
      // A file that failed to load has no test results: count it as one failure.
      failed: report.numFailedTests + failedFiles.length,
      skipped: report.numPendingTests + report.numTodoTests,
    };
  } catch {
    return { passed: 0, failed: code === 0 ? 0 : 1, skipped: 0 };
  }
}

const vitestArgs = process.argv.slice(2);
const reportDir = mkdtempSync(join(tmpdir(), "coding-env-test-"));
const reportPath = join(reportDir, "vitest.json");
const started = performance.now();

// The Python suite needs no page build: it starts at once, alongside the build (it is the part that
// waits most, on timeouts and sandbox start-ups, so it should not wait for anything else).
const pythonRun =
  vitestArgs.length > 0
    ? undefined
    : run("python unittest", process.execPath, ["scripts/run-python-tests.mjs"]);
const web = await run("build:web", process.execPath, ["web/build.mjs"]);
if (web.code !== 0) {
  printHeld(web);
  process.stdout.write("tests: 0 passed, 1 failed, 0 skipped (build:web FAILED)\n");
  process.exit(1);
}

// The one `cdk synth` of the run (the CLI, the app from cdk.json, as a user runs it) starts with
// vitest, at the normal priority: the bundle tests read its cloud assembly (the staged bundles and
// the template; infra/test/synth.ts) instead of synthesizing the app once more. It writes its exit
// code next to the assembly when it ends. Without aws-cdk-lib's built-in CloudFormation rule check
// (`--no-validation`): it only ever warns, so it could fail nothing here, and it cost 10 of the
// synth's 17 CPU-s; cdk-nag still runs and fails the synth on a finding.
const cdkOut = join(reportDir, "cdk.out");
const synthRun =
  vitestArgs.length > 0
    ? undefined
    : run("synth", process.execPath, [
        bin("cdk"),
        "synth",
        "--quiet",
        "--no-validation",
        "--output",
        cdkOut,
      ]).then((r) => {
        writeFileSync(`${cdkOut}.exit`, String(r.code));
        return r;
      });
// vitest's main process hosts the shared stacks (the API and the local DynamoDB): a 64 MB young
// generation, as `npm start` gives the stack, spares it most of its garbage collection.
const vitestRun = run(
  "vitest",
  process.execPath,
  [
    "--max-semi-space-size=64",
    join(repoRoot, "node_modules", "vitest", "vitest.mjs"),
    "run",
    "--reporter=default",
    "--reporter=json",
    `--outputFile.json=${reportPath}`,
    ...vitestArgs,
  ],
  { live: true, childEnv: synthRun ? { ...env, CODING_ENV_CDK_OUT: cdkOut } : env },
);
const others =
  vitestArgs.length > 0
    ? []
    : [
        pythonRun.then((r) => {
          printHeld(r);
          return r;
        }),
        sequence("checks", [
          ["lint", bin("biome"), ["check", "."]],
          // One checker: the run keeps both cores busy anyway, and each extra checker redoes the shared
          // work (7 CPU-s with one, 10-11 with the default four).
          ["typecheck", bin("tsc"), ["-p", "tsconfig.json", "--noEmit", "--checkers", "1"]],
          synthRun,
        ]).then((r) => {
          printHeld(r);
          return r;
        }),
      ];
const [vitest, ...rest] = await Promise.all([vitestRun, ...others]);
const python = rest.find((r) => r.label === "python unittest");
const checks = rest.find((r) => r.label === "checks");
const ts = vitestCounts(reportPath, vitest.code);
rmSync(reportDir, { recursive: true, force: true });
const py = python ? unittestCounts(python.output) : { passed: 0, failed: 0, skipped: 0 };
// A failing runner whose report shows no failed test (a crash, a timeout) still fails the run.
if (vitest.code !== 0 && ts.failed === 0) ts.failed = 1;
if (python && python.code !== 0 && py.failed === 0) py.failed = 1;
// Each failed check (lint, a type check, synth) counts as one failure.
const checkFailures = checks ? checks.steps.filter((s) => s.endsWith("FAILED")).length : 0;
const passed = ts.passed + py.passed;
const failed = ts.failed + py.failed + checkFailures;
const minutes = Math.round((performance.now() - started) / 6000) / 10;
const parts = [
  `vitest ${ts.passed}/${ts.passed + ts.failed} in ${vitest.seconds} s`,
  ...(python ? [`unittest ${py.passed}/${py.passed + py.failed} in ${python.seconds} s`] : []),
  ...(checks ? [`${checks.steps.join(", ")} in ${checks.seconds} s`] : []),
];
process.stdout.write(
  `\ntests: ${passed} passed, ${failed} failed, ${ts.skipped + py.skipped} skipped (${parts.join("; ")}; ${minutes} min)\n`,
);
process.exit(failed === 0 ? 0 : 1);
