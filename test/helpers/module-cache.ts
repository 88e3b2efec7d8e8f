// Where vitest keeps the repository's transformed modules between runs (its experimental
// `fsModuleCache`, set in vitest.config.ts): the TypeScript and SSR transforms of every module a
// run imports cost vitest's main process ~8 CPU-s; with the cache a run transforms only the files
// that changed since.
//
// vitest keys a cached module by its content, the config file and the lockfile. A transform also
// holds its imports resolved (`./b.js` became `/functions/src/b.ts`), and that depends on other
// files: which source files exist (a renamed `b.ts` must not be imported through a stale importer,
// vitest-dev/vitest#11246), tsconfig.json, the package.json files and the installed packages.
// Those make up the name of the cache's folder here: any change to them starts a new, empty
// folder. Folders no run has used for a day are removed (not sooner: a run in progress may still
// read one).
import { createHash } from "node:crypto";
import {
  accessSync,
  constants,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
} from "node:fs";
import { join } from "node:path";

/** Not sources: packages, generated output and data (folders of these names anywhere, and paths). */
const SKIPPED_DIRS = new Set([
  "node_modules",
  ".git",
  "cdk.out",
  ".data",
  ".python-runtime",
  ".venv",
  "__pycache__",
]);
const SKIPPED_PATHS = new Set(["test-results", "bench/results"]);
/** Files a module can import (the rest cannot change how an import resolves). */
const IMPORTABLE = /\.(?:[cm]?[jt]sx?|json)$/;
const UNUSED_FOR_MS = 24 * 60 * 60 * 1000;

/** What the transforms' import resolution reads besides the module itself, as one hash. */
function resolutionKey(root: string): string {
  const hash = createHash("sha256");
  const walk = (dir: string, rel: string): void => {
    const entries = readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const entry of entries) {
      const path = `${rel}${entry.name}`;
      if (SKIPPED_DIRS.has(entry.name) || SKIPPED_PATHS.has(path)) continue;
      if (entry.isDirectory()) walk(join(dir, entry.name), `${path}/`);
      else if (IMPORTABLE.test(entry.name)) {
        hash.update(`${path}\n`);
        if (entry.name === "package.json" || entry.name === "tsconfig.json") {
          hash.update(readFileSync(join(dir, entry.name)));
        }
      }
    }
  };
  walk(root, "");
  // The installed packages: a transform holds paths into node_modules, and vitest's own lockfile
  // check misses an install that leaves package-lock.json alone (`npm install --no-save`, `npm link`)
  // and, in 4.1, a second lockfile change in a row (vitest-dev/vitest#11193).
  for (const lock of ["package-lock.json", join("node_modules", ".package-lock.json")]) {
    try {
      hash.update(`\0${lock}\0`).update(readFileSync(join(root, lock)));
    } catch {
      hash.update(`\0${lock}\0absent`);
    }
  }
  return hash.digest("hex").slice(0, 16);
}

/**
 * The folder for this state of the sources (created, and marked as used), or undefined when it
 * cannot be written (a read-only node_modules: vitest would fail the run on its first write).
 */
export function moduleCacheDir(root: string): string | undefined {
  const parent = join(root, "node_modules", ".cache", "coding-env", "vitest-modules");
  const dir = join(parent, resolutionKey(root));
  try {
    mkdirSync(dir, { recursive: true });
    accessSync(dir, constants.W_OK);
    const now = new Date();
    utimesSync(dir, now, now);
  } catch {
    return undefined;
  }
  for (const name of readdirSync(parent)) {
    const other = join(parent, name);
    try {
      if (other !== dir && Date.now() - statSync(other).mtimeMs > UNUSED_FOR_MS) {
        rmSync(other, { recursive: true, force: true });
      }
    } catch {
      // Another run removed it first.
    }
  }
  return dir;
}
