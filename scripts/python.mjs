// Finds (or prepares) a Python interpreter the runtime (executor) accepts: Python 3.10+ that
// imports cloudpickle and, when run as root, one the sandbox's unprivileged users can reach and
// run (the executor drops each worker to its own uid; an interpreter under /root, like pyenv's,
// makes it refuse to start).
//
// Order: CODING_ENV_PYTHON, the cached answer, python3/python on PATH and /usr/bin/python3; then,
// as root on Debian, `apt-get install -y python3-cloudpickle` (Debian's python3 gains it); then a
// venv with pip (.python-runtime/venv, or /opt/coding-env/python-venv when root and the checkout is
// unreachable) made only from an interpreter that is itself acceptable; else an error that says
// what was tried and how to fix it. The answer is cached in node_modules/.cache/coding-env/python.json.
//
// Example:
//   import { resolvePython } from "./python.mjs";
//   const python = await resolvePython(); // "/usr/bin/python3"

import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, realpathSync, statSync, writeFileSync } from "node:fs";
import { delimiter, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const minimumMinor = 10;
/** The uid/gid probes run as when root: the sandbox's workers are unprivileged like `nobody`. */
const NOBODY = 65534;

// Prints: version ok (0/1), cloudpickle importable (0/1), how many of numpy/pandas/sympy, sys.executable.
const probeScript = [
  "import sys, importlib.util",
  `ok = int(sys.version_info >= (3, ${minimumMinor}))`,
  "try:",
  "    import cloudpickle",
  "    has = 1",
  "except Exception:",
  "    has = 0",
  'extras = sum(importlib.util.find_spec(m) is not None for m in ("numpy", "pandas", "sympy"))',
  "print(ok, has, extras)",
  "print(sys.executable)",
].join("\n");

/**
 * @typedef {object} ResolveOpts Every field is optional; the defaults describe this machine.
 * @property {Record<string, string | undefined>} [env] environment (PATH, CODING_ENV_PYTHON, PIP_*);
 *   @default process.env
 * @property {boolean} [isRoot] whether the executor will run as root (and so drop to unprivileged
 *   uids); @default the current process's uid is 0
 * @property {string} [systemPython] the distribution's interpreter, always a candidate and the one
 *   apt-get installs python3-cloudpickle for; @default "/usr/bin/python3"
 * @property {string | null} [aptGet] apt-get to run when root and nothing else has cloudpickle, or
 *   null for never; @default "/usr/bin/apt-get" when root on Debian, else null
 * @property {string} [venvDir] where a venv is made when needed; @default
 *   `<repo>/.python-runtime/venv`, or `/opt/coding-env/python-venv` when root and the checkout is
 *   not reachable by unprivileged users
 * @property {string | null} [cacheFile] where the answer is cached, or null for no cache;
 *   @default `<repo>/node_modules/.cache/coding-env/python.json`
 */

/**
 * @typedef {object} Inspected
 * @property {string} path sys.executable
 * @property {boolean} versionOk Python 3.10+
 * @property {boolean} hasCloudpickle
 * @property {number} extras how many of numpy/pandas/sympy it has (user code in "full" episodes wants them)
 */

/**
 * Runs the probe with `candidate`.
 * @param {string} candidate
 * @param {Record<string, string | undefined>} env
 * @returns {Inspected | undefined} undefined when it does not run as Python at all
 */
function inspect(candidate, env) {
  const run = spawnSync(candidate, ["-c", probeScript], {
    encoding: "utf8",
    timeout: 20_000,
    env: { ...env, PYTHONNOUSERSITE: "1" },
  });
  if (run.status !== 0 || typeof run.stdout !== "string") return undefined;
  const [flags, path] = run.stdout.trim().split("\n").slice(-2);
  if (!flags || !path || !existsSync(path)) return undefined;
  const [ok, has, extras] = flags.split(" ").map(Number);
  return { path, versionOk: ok === 1, hasCloudpickle: has === 1, extras: extras || 0 };
}

/**
 * The first directory from `dir` up to / that other users cannot enter, if any.
 * @param {string} dir an existing directory (its real path)
 * @returns {string | undefined}
 */
function blockedFrom(dir) {
  for (let current = dir; ; ) {
    try {
      if ((statSync(current).mode & 0o001) === 0) return current;
    } catch {
      return current;
    }
    const parent = dirname(current);
    if (parent === current) return undefined;
    current = parent;
  }
}

/**
 * The directory (of `path`'s real location) that unprivileged users cannot enter, if any: the
 * executor makes exactly this check (runtime.py `_check_interpreter_reachable`).
 * @param {string} path
 * @returns {string | undefined}
 */
function blockingDir(path) {
  try {
    return blockedFrom(dirname(realpathSync(path)));
  } catch {
    return dirname(path);
  }
}

/**
 * Why the executor (running as root) would refuse `python`, or undefined when it accepts it:
 * the interpreter's directories must be enterable by others, and an unprivileged user must be able
 * to run it and import cloudpickle (its standard library and site-packages readable too).
 * @param {string} python
 * @param {Record<string, string | undefined>} env
 * @returns {string | undefined}
 */
function refusalAsRoot(python, env) {
  const blocked = blockingDir(python);
  if (blocked !== undefined) return `under ${blocked}, which the sandbox's unprivileged users cannot enter`;
  const run = spawnSync(python, ["-c", "import cloudpickle"], {
    encoding: "utf8",
    timeout: 20_000,
    cwd: "/",
    uid: NOBODY,
    gid: NOBODY,
    env: { PATH: env.PATH ?? "/usr/bin:/bin", PYTHONNOUSERSITE: "1", HOME: "/" },
  });
  if (run.status === 0) return undefined;
  const last = (run.stderr ?? run.error?.message ?? "").trim().split("\n").pop() ?? "";
  return `an unprivileged user (uid ${NOBODY}) cannot run it and import cloudpickle${last ? ` (${last})` : ""}`;
}

/** @param {string} name @param {Record<string, string | undefined>} env @returns {string[]} */
function onPath(name, env) {
  const found = [];
  for (const dir of (env.PATH ?? "").split(delimiter)) {
    if (!dir) continue;
    const full = join(dir, name);
    if (existsSync(full)) found.push(full);
  }
  return found;
}

/** @param {string | null} cacheFile */
function readCache(cacheFile) {
  if (cacheFile === null) return undefined;
  try {
    const cached = JSON.parse(readFileSync(cacheFile, "utf8"));
    return typeof cached.python === "string" ? cached.python : undefined;
  } catch {
    return undefined;
  }
}

/** @param {string | null} cacheFile @param {string} python */
function writeCache(cacheFile, python) {
  if (cacheFile === null) return;
  try {
    mkdirSync(dirname(cacheFile), { recursive: true });
    writeFileSync(cacheFile, `${JSON.stringify({ python, checkedAt: new Date().toISOString() })}\n`);
  } catch {
    // A read-only node_modules only costs a re-probe next time.
  }
}

/**
 * Where a venv is made when one is needed: inside the checkout, unless (as root) the sandbox's
 * users could not reach it there (a checkout under /root).
 *
 * @example
 * defaultVenvDir(true); // "<checkout>/.python-runtime/venv", or "/opt/coding-env/python-venv"
 *
 * @param {boolean} isRoot
 * @param {string} [checkout] the repository's root; @default this checkout
 * @returns {string}
 */
export function defaultVenvDir(isRoot, checkout = repoRoot) {
  const repoVenv = join(checkout, ".python-runtime", "venv");
  if (!isRoot) return repoVenv;
  let existing = repoVenv;
  while (!existsSync(existing)) existing = dirname(existing);
  return blockedFrom(realpathSync(existing)) === undefined ? repoVenv : "/opt/coding-env/python-venv";
}

/**
 * Fills in the defaults of {@link ResolveOpts}.
 * @param {ResolveOpts} opts
 */
function withDefaults(opts) {
  const isRoot = opts.isRoot ?? (typeof process.getuid === "function" && process.getuid() === 0);
  const debianAptGet =
    isRoot && existsSync("/etc/debian_version") && existsSync("/usr/bin/apt-get") ? "/usr/bin/apt-get" : null;
  return {
    env: opts.env ?? process.env,
    isRoot,
    systemPython: opts.systemPython ?? "/usr/bin/python3",
    aptGet: opts.aptGet === undefined ? debianAptGet : opts.aptGet,
    venvDir: opts.venvDir ?? defaultVenvDir(isRoot),
    cacheFile:
      opts.cacheFile === undefined
        ? join(repoRoot, "node_modules", ".cache", "coding-env", "python.json")
        : opts.cacheFile,
  };
}

/**
 * The absolute path of a Python 3.10+ interpreter that imports cloudpickle and that the executor
 * accepts (as root: reachable and runnable by unprivileged users), found or prepared.
 *
 * @example
 * const python = await resolvePython(); // "/usr/bin/python3"
 * const forTest = await resolvePython({ env: { PATH: "/tmp/fake/bin" }, aptGet: null, cacheFile: null });
 *
 * @param {ResolveOpts} [opts]
 * @returns {Promise<string>}
 * @throws {Error} when none can be found or prepared; the message says what was tried and how to fix it.
 */
export async function resolvePython(opts = {}) {
  const o = withDefaults(opts);
  /** @param {string} python @returns {string | undefined} why the executor would refuse it */
  const refusal = (python) => (o.isRoot ? refusalAsRoot(python, o.env) : undefined);

  const override = o.env.CODING_ENV_PYTHON;
  if (override) {
    const found = inspect(override, o.env);
    if (!found?.versionOk || !found.hasCloudpickle) {
      throw new Error(
        `CODING_ENV_PYTHON=${override} cannot run "import cloudpickle" (Python 3.${minimumMinor}+ with cloudpickle is required). ` +
          "Install cloudpickle for it (pip install cloudpickle) or unset CODING_ENV_PYTHON.",
      );
    }
    const why = refusal(found.path);
    if (why) {
      throw new Error(
        `CODING_ENV_PYTHON=${override} is ${why}; run as root, the executor refuses it. Use a system-wide ` +
          "Python (on Debian/Ubuntu: apt-get install python3-cloudpickle, then CODING_ENV_PYTHON=/usr/bin/python3) or unset CODING_ENV_PYTHON.",
      );
    }
    return found.path;
  }

  const cached = readCache(o.cacheFile);
  if (cached) {
    const found = inspect(cached, o.env);
    if (found?.versionOk && found.hasCloudpickle && !refusal(found.path)) return found.path;
  }

  /** @type {string[]} what was rejected and why, for the final message */
  const rejected = [];
  const candidates = [
    ...new Set([...onPath("python3", o.env), ...onPath("python", o.env), o.systemPython]),
  ].filter((c) => existsSync(c));
  /** Interpreters the executor would accept as such (they may lack cloudpickle): venv bases. */
  const acceptableBases = [];
  let best;
  for (const candidate of candidates) {
    const found = inspect(candidate, o.env);
    if (!found) {
      rejected.push(`${candidate}: does not run`);
      continue;
    }
    if (!found.versionOk) {
      rejected.push(`${candidate}: older than Python 3.${minimumMinor}`);
      continue;
    }
    // A missing cloudpickle makes the nobody-probe fail too: check the location first.
    const blocked = o.isRoot ? blockingDir(found.path) : undefined;
    if (blocked !== undefined) {
      rejected.push(`${candidate}: under ${blocked}, which the sandbox's unprivileged users cannot enter`);
      continue;
    }
    if (!found.hasCloudpickle) {
      rejected.push(`${candidate}: no cloudpickle`);
      acceptableBases.push(found.path);
      continue;
    }
    const why = refusal(found.path);
    if (why) {
      rejected.push(`${candidate}: ${why}`);
      continue;
    }
    acceptableBases.push(found.path);
    // Prefer an interpreter that also has numpy/pandas/sympy; else any with cloudpickle.
    if (!best || found.extras > best.extras) best = found;
  }
  if (best) {
    writeCache(o.cacheFile, best.path);
    return best.path;
  }

  const accepted = (/** @type {string | undefined} */ python) => {
    if (python === undefined) return undefined;
    const found = inspect(python, o.env);
    return found?.versionOk && found.hasCloudpickle && !refusal(found.path) ? found.path : undefined;
  };
  // As root on Debian the distribution's own package is the sturdy answer (no venv to keep up).
  const prepared =
    (o.isRoot && o.aptGet !== null && tryApt(o.aptGet, o.env) ? accepted(o.systemPython) : undefined) ??
    tryVenv(o.venvDir, acceptableBases, o.env, accepted);
  if (prepared) {
    writeCache(o.cacheFile, prepared);
    return prepared;
  }
  const asRoot = o.isRoot
    ? " Run as root, the executor needs an interpreter outside /root that unprivileged users can run " +
      "(pyenv's or a venv under /root will not do)."
    : "";
  throw new Error(
    `No usable Python 3.${minimumMinor}+ with cloudpickle was found (${rejected.join("; ") || "none on PATH"}), ` +
      `and none could be prepared (apt-get: ${o.isRoot && o.aptGet !== null ? "failed" : "not available"}; ` +
      `venv at ${o.venvDir}: ${acceptableBases.length > 0 ? "pip could not install cloudpickle" : "no acceptable interpreter to make it from"}).${asRoot} ` +
      "Fix one of: on Debian/Ubuntu `sudo apt-get install python3-cloudpickle`; `pip install cloudpickle` for a system-wide python3; " +
      "or set CODING_ENV_PYTHON to an interpreter that has it. Then run `node scripts/setup-python.mjs`.",
  );
}

/**
 * `apt-get install python3-cloudpickle` (after `apt-get update` if the first try fails).
 * @param {string} aptGet @param {Record<string, string | undefined>} env @returns {boolean} installed
 */
function tryApt(aptGet, env) {
  const aptEnv = { ...env, DEBIAN_FRONTEND: "noninteractive" };
  const install = () =>
    spawnSync(aptGet, ["install", "-y", "-qq", "python3-cloudpickle"], {
      stdio: "ignore",
      env: aptEnv,
      timeout: 600_000,
    }).status === 0;
  if (install()) return true;
  spawnSync(aptGet, ["update", "-qq"], { stdio: "ignore", env: aptEnv, timeout: 600_000 });
  return install();
}

/**
 * A venv at `venvDir` with cloudpickle from pip, made from the first of `bases` that works. A venv
 * already there that one of `bases` made, whose pip runs (an earlier run's, whose pip could not
 * reach an index), gets the install without being made again: `python -m venv` (ensurepip) costs seconds
 * of CPU and would make the same venv.
 * @param {string} venvDir
 * @param {string[]} bases interpreters the executor accepts (reachable ones when root)
 * @param {Record<string, string | undefined>} env passed to pip (PIP_INDEX_URL, PIP_FIND_LINKS...)
 * @param {(python: string | undefined) => string | undefined} accepted
 * @returns {string | undefined}
 */
function tryVenv(venvDir, bases, env, accepted) {
  const venvPython = join(venvDir, "bin", "python");
  const install = () =>
    spawnSync(
      venvPython,
      ["-m", "pip", "install", "--quiet", "--retries", "1", "--timeout", "15", "cloudpickle"],
      {
        stdio: "ignore",
        env,
        timeout: 300_000,
      },
    ).status === 0
      ? accepted(venvPython)
      : undefined;
  /** The base an existing venv was made from, when it is one of `bases` and its pip runs. */
  let reused;
  if (existsSync(venvPython)) {
    const ok = accepted(venvPython);
    if (ok) return ok;
    const base = bases.find((b) => sameFile(b, venvPython));
    // A pip that does not run (removed, or its interpreter replaced by another minor version) means
    // a broken venv: it is made again below, not reused.
    const pipRuns =
      base !== undefined &&
      spawnSync(venvPython, ["-m", "pip", "--version"], { stdio: "ignore", env, timeout: 60_000 }).status ===
        0;
    reused = pipRuns ? base : undefined;
    if (reused !== undefined) {
      const installed = install();
      if (installed) return installed;
    }
  }
  for (const base of bases) {
    // A new venv from it (or from a link to it) would be the one pip just failed in.
    if (reused !== undefined && sameFile(base, reused)) continue;
    // --clear: a venv left over from an unacceptable base (say pyenv's) is replaced, not reused.
    const created = spawnSync(base, ["-m", "venv", "--clear", venvDir], {
      stdio: "ignore",
      env,
      timeout: 120_000,
    });
    if (created.status !== 0 || !existsSync(venvPython)) continue;
    const installed = install();
    if (installed) return installed;
  }
  return undefined;
}

/** Whether `a` and `b` are the same file once links are followed (a venv's python links to its base's). */
function sameFile(/** @type {string} */ a, /** @type {string} */ b) {
  try {
    return realpathSync(a) === realpathSync(b);
  } catch {
    return false;
  }
}
