// Finds (or prepares) a Python interpreter that can import cloudpickle, for the Python runtime.
//
// Order: CODING_ENV_PYTHON, the cached answer, python3/python on PATH and /usr/bin/python3, a
// venv with pip (.python-runtime/venv), then `apt-get install -y python3-cloudpickle` when root on
// Debian. The answer is cached in node_modules/.cache/coding-env/python.json.
//
// Example:
//   import { resolvePython } from "./python.mjs";
//   const python = await resolvePython(); // "/usr/bin/python3"

import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, realpathSync, statSync, writeFileSync } from "node:fs";
import { delimiter, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const cacheFile = join(repoRoot, "node_modules", ".cache", "coding-env", "python.json");
const venvDir = join(repoRoot, ".python-runtime", "venv");
const minimumMinor = 10;

// Prints the number of optional packages (numpy, pandas, sympy) present, then sys.executable.
const probeScript = [
  "import sys, importlib.util, cloudpickle",
  `assert sys.version_info >= (3, ${minimumMinor}), "Python 3.${minimumMinor}+ is required"`,
  'print(sum(importlib.util.find_spec(m) is not None for m in ("numpy", "pandas", "sympy")))',
  "print(sys.executable)",
].join("\n");

/**
 * Checks that `candidate` runs, is Python 3.10+ and imports cloudpickle.
 * @param {string} candidate
 * @returns {{ path: string, extras: number } | undefined} its absolute path and how many of
 *   numpy/pandas/sympy it has (user code in "full" episodes wants them)
 */
function inspect(candidate) {
  const run = spawnSync(candidate, ["-c", probeScript], {
    encoding: "utf8",
    timeout: 20_000,
    env: { ...process.env, PYTHONNOUSERSITE: "1" },
  });
  if (run.status !== 0 || typeof run.stdout !== "string") return undefined;
  const [extras, path] = run.stdout.trim().split("\n").slice(-2);
  return path && existsSync(path) ? { path, extras: Number(extras) || 0 } : undefined;
}

/**
 * When root, the runtime runs user code as unprivileged uids that must be able to enter every
 * directory above the interpreter (an interpreter under /root, like pyenv's, is unusable).
 * @param {string} path
 */
function reachableByOthers(path) {
  let dir = dirname(realpathSync(path));
  for (;;) {
    try {
      if ((statSync(dir).mode & 0o001) === 0) return false;
    } catch {
      return false;
    }
    const parent = dirname(dir);
    if (parent === dir) return true;
    dir = parent;
  }
}

const isRoot = typeof process.getuid === "function" && process.getuid() === 0;

/** @param {string} candidate @returns {string | undefined} */
function probe(candidate) {
  return inspect(candidate)?.path;
}

/** @param {string} name @returns {string[]} every executable called `name` on PATH */
function onPath(name) {
  const found = [];
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (!dir) continue;
    const full = join(dir, name);
    if (existsSync(full)) found.push(full);
  }
  return found;
}

function readCache() {
  try {
    const cached = JSON.parse(readFileSync(cacheFile, "utf8"));
    return typeof cached.python === "string" ? cached.python : undefined;
  } catch {
    return undefined;
  }
}

/** @param {string} python */
function writeCache(python) {
  try {
    mkdirSync(dirname(cacheFile), { recursive: true });
    writeFileSync(cacheFile, `${JSON.stringify({ python, checkedAt: new Date().toISOString() })}\n`);
  } catch {
    // A read-only node_modules only costs a re-probe next time.
  }
}

/** @param {string[]} bases interpreters that may create a venv @returns {string | undefined} */
function tryVenv(bases) {
  const venvPython = join(venvDir, "bin", "python");
  if (existsSync(venvPython)) {
    const ok = probe(venvPython);
    if (ok) return ok;
  }
  for (const base of bases) {
    const created = spawnSync(base, ["-m", "venv", venvDir], { stdio: "ignore", timeout: 120_000 });
    if (created.status !== 0 || !existsSync(venvPython)) continue;
    const installed = spawnSync(
      venvPython,
      ["-m", "pip", "install", "--quiet", "--retries", "1", "--timeout", "15", "cloudpickle"],
      { stdio: "ignore", timeout: 300_000 },
    );
    if (installed.status === 0) {
      const ok = probe(venvPython);
      if (ok) return ok;
    }
  }
  return undefined;
}

function tryApt() {
  if (!isRoot || !existsSync("/etc/debian_version") || !existsSync("/usr/bin/apt-get")) {
    return undefined;
  }
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  let install = spawnSync("apt-get", ["install", "-y", "-qq", "python3-cloudpickle"], {
    stdio: "ignore",
    env,
    timeout: 600_000,
  });
  if (install.status !== 0) {
    spawnSync("apt-get", ["update", "-qq"], { stdio: "ignore", env, timeout: 600_000 });
    install = spawnSync("apt-get", ["install", "-y", "-qq", "python3-cloudpickle"], {
      stdio: "ignore",
      env,
      timeout: 600_000,
    });
  }
  return install.status === 0 ? probe("/usr/bin/python3") : undefined;
}

/**
 * The absolute path of a Python 3.10+ interpreter that can import cloudpickle, found or prepared.
 * @returns {Promise<string>}
 * @throws {Error} when none can be found or prepared; the message says how to fix it.
 */
export async function resolvePython() {
  const override = process.env.CODING_ENV_PYTHON;
  if (override) {
    const ok = probe(override);
    if (ok) return ok;
    throw new Error(
      `CODING_ENV_PYTHON=${override} cannot run "import cloudpickle" (Python 3.${minimumMinor}+ with cloudpickle is required). ` +
        "Install cloudpickle for it (pip install cloudpickle) or unset CODING_ENV_PYTHON.",
    );
  }
  const cached = readCache();
  if (cached && probe(cached)) return cached;

  const candidates = [...onPath("python3"), ...onPath("python"), "/usr/bin/python3"];
  const unique = [...new Set(candidates)].filter((c) => existsSync(c));
  // Prefer an interpreter that also has numpy/pandas/sympy; else any with cloudpickle.
  let best;
  for (const candidate of unique) {
    const found = inspect(candidate);
    if (!found || (isRoot && !reachableByOthers(found.path))) continue;
    if (!best || found.extras > best.extras) best = found;
  }
  if (best) {
    writeCache(best.path);
    return best.path;
  }
  const prepared = tryVenv(unique) ?? tryApt();
  if (prepared) {
    writeCache(prepared);
    return prepared;
  }
  throw new Error(
    `No Python 3.${minimumMinor}+ with cloudpickle was found (tried: ${unique.join(", ") || "none on PATH"}), ` +
      "and none could be prepared. Fix one of: `pip install cloudpickle` for your python3; " +
      "on Debian/Ubuntu `sudo apt-get install python3-cloudpickle`; or set CODING_ENV_PYTHON to an interpreter that has it. " +
      "Then run `node scripts/setup-python.mjs`.",
  );
}
