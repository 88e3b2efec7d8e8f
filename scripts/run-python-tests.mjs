// Runs the Python runtime's unittest suite with the resolved interpreter; exits with its status.
//
// The test classes run side by side in a few processes (python-runtime/tests/module_runner.py),
// each taking the next class when it is done, the longest first: most of the suite waits (on
// sandbox start-ups, timeouts, child processes) rather than computes, so this shortens it without
// costing more CPU. A class that sets `RUN_ALONE = True` runs first, with nothing beside it; one
// that sets `RUN_FIRST = True` (a long one) starts before the others. Classes listed as run
// together (the Lambda-mode ones sharing a harness) run one after another in one process.
// A failing class's lines are printed when it ends; the last lines are unittest's own summary
// over all of them (`Ran N tests in …`, then `OK (skipped=s)` or `FAILED (…)`).
//
//   node scripts/run-python-tests.mjs                       every test
//   node scripts/run-python-tests.mjs -k timeout -v         unittest's -k and -v
//   node scripts/run-python-tests.mjs tests.test_hash_seed  only these modules
//   node scripts/run-python-tests.mjs --jobs 1              one process (default 3, or
//                                                           CODING_ENV_PYTHON_TEST_JOBS)
// Any other argument (say `-p`) runs `python -m unittest discover` with it in one process.
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { resolvePython } from "./python.mjs";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const testsDir = join(repoRoot, "python-runtime", "tests");
const runnerScript = join(testsDir, "module_runner.py");
/** Each class's last duration, to start the longest first next time. */
const timesFile = join(repoRoot, "node_modules", ".cache", "coding-env", "python-test-seconds.json");

let python;
try {
  python = await resolvePython();
} catch (error) {
  console.error(`coding-env: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}

/** @returns {{ runnerArgs: string[], modules: string[], jobs: number } | undefined} undefined: not ours */
function parseArgs(args) {
  const runnerArgs = [];
  const modules = [];
  let jobs = Number(process.env.CODING_ENV_PYTHON_TEST_JOBS ?? 3);
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "-k" && i + 1 < args.length) runnerArgs.push(arg, args[++i]);
    else if (arg === "-v") runnerArgs.push(arg);
    else if (arg === "--jobs" && i + 1 < args.length) jobs = Number(args[++i]);
    else if (/^tests\.test_\w+$/.test(arg)) modules.push(arg);
    else return undefined;
  }
  return { runnerArgs, modules, jobs: Number.isInteger(jobs) && jobs > 0 ? jobs : 3 };
}

const parsed = parseArgs(process.argv.slice(2));
if (parsed === undefined) {
  const run = spawnSync(
    python,
    [
      "-m",
      "unittest",
      "discover",
      "-s",
      "python-runtime/tests",
      "-t",
      "python-runtime",
      ...process.argv.slice(2),
    ],
    { cwd: repoRoot, stdio: "inherit" },
  );
  process.exit(run.status ?? 1);
}

/** @returns {Record<string, number>} */
function readTimes() {
  try {
    return JSON.parse(readFileSync(timesFile, "utf8"));
  } catch {
    return {};
  }
}

/** @typedef {{ name: string, tests: number, alone: boolean, first: boolean, together?: string }} Entry
 * one test class, or several (space-separated names) that run together */

/** @returns {Entry[]} the test classes of `modules` (with -k: those with a matching test) */
function listClasses(modules) {
  const listed = spawnSync(python, [runnerScript, ...parsed.runnerArgs, "--list", ...modules], {
    cwd: repoRoot,
    encoding: "utf8",
    maxBuffer: 16 * 2 ** 20,
  });
  if (listed.status !== 0) {
    process.stdout.write(`${listed.stdout}${listed.stderr}\nRan 0 tests in 0s\n\nFAILED (errors=1)\n`);
    process.exit(1);
  }
  /** @type {Entry[]} */
  const classes = listed.stdout
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line));
  /** @type {Map<string, Entry>} */
  const groups = new Map();
  const entries = [];
  for (const entry of classes) {
    const group = entry.together === undefined ? undefined : groups.get(entry.together);
    if (group !== undefined) {
      group.name += ` ${entry.name}`;
      group.tests += entry.tests;
      group.first ||= entry.first;
    } else {
      if (entry.together !== undefined) groups.set(entry.together, entry);
      entries.push(entry);
    }
  }
  return entries;
}

const all = readdirSync(testsDir)
  .filter((name) => /^test_\w+\.py$/.test(name))
  .map((name) => `tests.${name.slice(0, -3)}`)
  .sort();
const times = readTimes();
const listed = listClasses(parsed.modules.length > 0 ? parsed.modules : all);
// The longest first: those marked so, then by the last run's duration, else (a new class, a fresh
// checkout) by its number of tests at the known classes' rate.
const known = listed.filter((e) => times[e.name] !== undefined);
const knownTests = known.reduce((n, e) => n + e.tests, 0);
const perTest = knownTests > 0 ? known.reduce((n, e) => n + times[e.name], 0) / knownTests : 1;
const cost = (entry) => times[entry.name] ?? entry.tests * perTest;
const entries = listed.sort((a, b) => Number(b.first) - Number(a.first) || cost(b) - cost(a));
const total = entries.reduce((n, e) => n + e.tests, 0);
/** @type {Array<Record<string, any>>} */
const results = [];
const started = performance.now();

/** One runner process taking classes from `queue`; resolves when it has exited (the queue
 * empty, or it died: then another takes the rest). */
function runner(queue) {
  return new Promise((done) => {
    const child = spawn(python, [runnerScript, ...parsed.runnerArgs], {
      cwd: repoRoot,
      stdio: ["pipe", "pipe", "pipe"],
    });
    let current;
    let stray = "";
    const next = () => {
      current = queue.shift();
      if (current === undefined) child.stdin.end();
      else child.stdin.write(`${current.name}\n`);
    };
    child.stderr.on("data", (chunk) => {
      stray += chunk;
    });
    createInterface({ input: child.stdout }).on("line", (line) => {
      report(JSON.parse(line), stray);
      stray = "";
      next();
    });
    // Not "close": a process a test left behind may hold the pipes open.
    child.on("exit", (code, signal) => {
      if (current === undefined) {
        done();
        return;
      }
      report(
        {
          name: current.name,
          ran: current.tests,
          failures: 0,
          errors: current.tests,
          skipped: 0,
          unexpected_successes: 0,
          seconds: 0,
          ok: false,
          output: `the test process ended (${signal ?? `exit code ${code}`}) while running ${current.name}\n`,
        },
        stray,
      );
      current = undefined;
      if (queue.length > 0) runner(queue).then(done);
      else done();
    });
    next();
  });
}

function report(result, stray) {
  results.push(result);
  if (parsed.runnerArgs.includes("-v") || !result.ok) {
    const status = result.ok ? "ok" : "FAILED";
    process.stdout.write(
      `\n${result.name}: ${status} (${result.ran} tests, ${result.seconds} s)\n${result.output}`,
    );
    if (stray) process.stdout.write(stray);
  }
}

for (const entry of entries.filter((e) => e.alone)) await runner([entry]);
const queue = entries.filter((e) => !e.alone);
const jobs = Math.min(parsed.jobs, queue.length);
await Promise.all(Array.from({ length: jobs }, () => runner(queue)));

const sum = (key) => results.reduce((n, r) => n + r[key], 0);
const seconds = (performance.now() - started) / 1000;
const slowest = [...results]
  .sort((a, b) => b.seconds - a.seconds)
  .slice(0, 5)
  .map((r) => {
    const [name, ...more] = r.name.split(" ");
    return `${name.slice("tests.".length)}${more.length > 0 ? ` (+${more.length} classes)` : ""} ${r.seconds} s`;
  });
const counts = [
  ["failures", sum("failures")],
  ["errors", sum("errors")],
  ["skipped", sum("skipped")],
  ["unexpected successes", sum("unexpected_successes")],
].filter(([, n]) => n > 0);
const ok = results.every((r) => r.ok) && results.length === entries.length && sum("ran") >= total;
const detail = counts.length > 0 ? ` (${counts.map(([k, n]) => `${k}=${n}`).join(", ")})` : "";
process.stdout.write(
  `\nslowest: ${slowest.join(", ")}\n${"-".repeat(70)}\n` +
    `Ran ${sum("ran")} tests in ${seconds.toFixed(3)}s (${entries.reduce((n, e) => n + e.name.split(" ").length, 0)} classes, ${jobs} processes side by side; ${sum("seconds").toFixed(1)} s of classes)\n\n` +
    `${ok ? "OK" : "FAILED"}${detail}\n`,
);
if (parsed.runnerArgs.length === 0) {
  try {
    mkdirSync(dirname(timesFile), { recursive: true });
    const latest = Object.fromEntries(results.filter((r) => r.ok).map((r) => [r.name, r.seconds]));
    writeFileSync(timesFile, `${JSON.stringify({ ...times, ...latest })}\n`);
  } catch {
    // Only the order of the next run is lost.
  }
}
process.exit(ok ? 0 : 1);
