// A process entry of the local stack (an API instance, a script) as one ES module built by esbuild,
// for `node` to run without tsx. Through tsx, a process start compiled each TypeScript module and
// sent every import, the AWS SDK's ~1,000 files too, through its loader thread: about 1.1 CPU-s
// before an API instance listened, 0.55 from a bundle of the repository's own modules.
//
// The packages are in the bundle too, resolved as the Lambda bundle resolves them
// (infra/lib/function-defaults.ts: ES module builds first, `require` from a banner): Node loading
// them from node_modules resolved, read, format-detected and export-scanned ~1,200 files one by one,
// 0.6 -> 0.37 CPU-s per API instance start (2-core machine, 2026-12-02, medians of 8 interleaved).
// A package imported by a computed name (the optional `ws`) is still imported from node_modules.
// Each module keeps its own `import.meta.url` (and `.dirname`, `.filename`): its source file's, so
// paths found from it (a worker's file, the repository root) are the same as under tsx. Bundles are
// kept under node_modules/.cache/coding-env/ by what went into them (the repository's files by
// content, a package's files by size and times, which an install changes): a run builds an entry
// once, and again only after one of its files changed.
import { createHash } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { dirname, join, relative, sep } from "node:path";
import { pathToFileURL } from "node:url";
import { type BuildOptions, build, version as esbuildVersion, type Plugin } from "esbuild";

/** What a bundle was built from: its inputs (relative to the repository) and their content's hash. */
interface Manifest {
  readonly inputs: readonly string[];
  readonly hash: string;
  readonly bundle: string;
}

/** Options that change the output: part of the hash, so a change here rebuilds. */
const OPTIONS = {
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  mainFields: ["module", "main"],
  // CommonJS packages bundled into an ES module still call require().
  banner: {
    js: 'import { createRequire as __entryCreateRequire } from "node:module"; const require = __entryCreateRequire(import.meta.url);',
  },
  // Less text for V8 to scan at each start; names stay, and the source map leads to the sources.
  minifyWhitespace: true,
  sourcemap: "linked",
  sourcesContent: false,
  logLevel: "silent",
} satisfies BuildOptions;
const OPTIONS_KEY = JSON.stringify({ OPTIONS, esbuildVersion, scheme: 2 });

/** Keep bundles of an entry for this long after they are replaced: a process may be about to run one. */
const STALE_MS = 60 * 60 * 1000;

/** Checks and builds under way, by entry. */
const building = new Map<string, Promise<string>>();

/**
 * The path of a bundle of `entry` (an absolute path to a .ts file of the repository at `repoRoot`),
 * built now unless one built from the same content is cached. Run it with `--enable-source-maps`
 * for stack traces that name the TypeScript sources.
 */
export function bundledEntry(entry: string, repoRoot: string): Promise<string> {
  // Instances starting together share one check (and build); a later start checks again.
  let pending = building.get(entry);
  if (!pending) {
    pending = cachedOrBuilt(entry, repoRoot).finally(() => building.delete(entry));
    building.set(entry, pending);
  }
  return pending;
}

/** A file of an installed package (under a node_modules folder), relative to the repository. */
function isPackageFile(input: string): boolean {
  return input.split(sep).includes("node_modules");
}

/**
 * What the hash takes of a package's file: its size and times, not its content. Reading and
 * hashing the ~1,200 files of the packages at each check would cost more than the stack's start
 * saves; an install or an edit writes the file, which changes its ctime.
 */
function stampOf(path: string): string {
  const { size, mtimeMs, ctimeMs, ino } = statSync(path);
  return `${size}:${mtimeMs}:${ctimeMs}:${ino}`;
}

/** An input as the hash takes it: an own file's content, a package file's stamp. */
function fingerprintOf(path: string, input: string): Buffer | string {
  return isPackageFile(input) ? stampOf(path) : readFileSync(path);
}

function hashOf(
  repoRoot: string,
  inputs: readonly string[],
  fingerprint: (path: string, input: string) => Buffer | string,
): string {
  // The repository's own path too: the bundle names its files (import.meta.url), and a second
  // checkout may share this node_modules (a symbolic link), hence this cache.
  const hash = createHash("sha256").update(OPTIONS_KEY).update(`\0${repoRoot}`);
  // What esbuild reads besides the inputs: the compiler settings, and the packages' layout (an
  // install that moves or replaces packages rewrites npm's lock stamp).
  for (const file of ["tsconfig.json", join("node_modules", ".package-lock.json")]) {
    hash
      .update(`\0${file}\0`)
      .update(existsSync(join(repoRoot, file)) ? stampOf(join(repoRoot, file)) : "absent");
  }
  for (const input of inputs) hash.update(`\0${input}\0`).update(fingerprint(join(repoRoot, input), input));
  return hash.digest("hex").slice(0, 16);
}

async function cachedOrBuilt(entry: string, repoRoot: string): Promise<string> {
  const cacheDir = join(repoRoot, "node_modules", ".cache", "coding-env");
  // functions/src/local/api-instance.ts: functions+src+local+api-instance
  const name = relative(repoRoot, entry)
    .replace(/\.[^./]+$/, "")
    .replaceAll("/", "+");
  const manifestPath = join(cacheDir, `${name}.json`);
  try {
    // The last build's inputs as they are now: a bundle of exactly this content may exist (that
    // build's, or an earlier one's when an edit was undone). The hash covers the inputs' names
    // too, and the same files with the same content import the same files.
    const manifest = JSON.parse(readFileSync(manifestPath, "utf8")) as Manifest;
    const hash = hashOf(repoRoot, manifest.inputs, fingerprintOf);
    const bundleName = `${name}-${hash}.mjs`;
    const bundle = join(cacheDir, bundleName);
    if (existsSync(bundle)) {
      // Current again, or still in use: a build of other sources (another process, another
      // checkout) removes bundles untouched for STALE_MS, perhaps just before this one runs.
      if (hash !== manifest.hash || Date.now() - statSync(bundle).mtimeMs > STALE_MS / 2) {
        utimesSync(bundle, new Date(), new Date());
      }
      if (hash !== manifest.hash)
        writeManifest(manifestPath, { inputs: manifest.inputs, hash, bundle: bundleName });
      return bundle;
    }
  } catch {
    // No manifest yet, or one of its inputs is gone: build.
  }
  return await buildEntry(entry, repoRoot, cacheDir, name, manifestPath);
}

async function buildEntry(
  entry: string,
  repoRoot: string,
  cacheDir: string,
  name: string,
  manifestPath: string,
): Promise<string> {
  // The hash covers exactly the bytes esbuild compiled, read once here (a file edited during the
  // build cannot leave a bundle filed under content it was not built from), and a package file's
  // stamp taken before it was read.
  const fingerprints = new Map<string, Buffer | string>();
  const ownUrls: Plugin = {
    name: "own-import-meta-url",
    setup(b) {
      b.onLoad({ filter: /\.(ts|mts|cts|js|mjs|cjs|json)$/ }, (args) => {
        const input = relative(repoRoot, args.path);
        const stamp = isPackageFile(input) ? stampOf(args.path) : undefined;
        const bytes = readFileSync(args.path);
        fingerprints.set(input, stamp ?? bytes);
        if (args.path.endsWith(".json")) return { contents: bytes, loader: "json" };
        const source = bytes
          .toString("utf8")
          .replaceAll("import.meta.url", JSON.stringify(pathToFileURL(args.path).href))
          .replaceAll("import.meta.dirname", JSON.stringify(dirname(args.path)))
          .replaceAll("import.meta.filename", JSON.stringify(args.path));
        const loader = args.path.endsWith("ts") ? "ts" : "js";
        return { contents: source, loader, resolveDir: dirname(args.path) };
      });
    },
  };
  const result = await build({
    ...OPTIONS,
    entryPoints: [entry],
    absWorkingDir: repoRoot,
    outfile: join(cacheDir, `${name}.mjs`),
    write: false,
    plugins: [ownUrls],
  });
  const inputs = [...fingerprints.keys()].sort();
  const hash = hashOf(repoRoot, inputs, (_path, input) => fingerprints.get(input) as Buffer | string);
  const bundleName = `${name}-${hash}.mjs`;
  const bundle = join(cacheDir, bundleName);
  mkdirSync(cacheDir, { recursive: true });
  // Written under temporary names and renamed: a concurrent build of the same entry writes the same
  // bytes, and a reader sees a whole file or none.
  const temp = `.${process.pid}-${Date.now()}`;
  for (const file of result.outputFiles) {
    const target = file.path.endsWith(".map") ? `${bundle}.map` : bundle;
    const text = file.path.endsWith(".map")
      ? file.text
      : file.text.replace(/\/\/# sourceMappingURL=\S+\s*$/, `//# sourceMappingURL=${bundleName}.map\n`);
    writeFileSync(target + temp, text);
    renameSync(target + temp, target);
  }
  writeManifest(manifestPath, { inputs, hash, bundle: bundleName });
  removeStale(cacheDir, name, bundleName);
  return bundle;
}

function writeManifest(path: string, manifest: Manifest): void {
  const temp = `${path}.${process.pid}-${Date.now()}`;
  writeFileSync(temp, JSON.stringify(manifest));
  renameSync(temp, path);
}

/** Removes this entry's bundles (and maps) other than `keep` that are older than STALE_MS. */
function removeStale(cacheDir: string, name: string, keep: string): void {
  const now = Date.now();
  for (const file of readdirSync(cacheDir)) {
    if (!file.startsWith(`${name}-`) || file.startsWith(keep)) continue;
    const path = join(cacheDir, file);
    try {
      if (now - statSync(path).mtimeMs > STALE_MS) unlinkSync(path);
    } catch {
      // Removed by another process meanwhile.
    }
  }
}
