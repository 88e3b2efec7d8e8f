import { execFile, execFileSync } from "node:child_process";
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { publint } from "publint";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stackUrl, tsxArgs } from "./helpers.js";

// What a user outside this repository gets: the tarball `npm pack -w sdk` makes (its `prepare`
// builds dist/; here the run's one build, sdk/test/build.setup.ts), installed offline into a fresh
// project of its own. Checks both module formats, declarations, a clean publint, zero
// dependencies, and the quick start against the shared stack.
const run = promisify(execFile);
const sdkDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const rootDir = resolve(sdkDir, "..");
let workDir: string;
let projectDir: string;
let pkgDir: string;
let packedFiles: string[];
let tarball: string;

beforeAll(async () => {
  workDir = mkdtempSync(join(tmpdir(), "coding-env-sdk-"));
  const { stdout } = await run(
    "npm",
    ["pack", "-w", "sdk", "--ignore-scripts", "--json", "--pack-destination", workDir],
    { cwd: rootDir },
  );
  const [packed] = JSON.parse(stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
  packedFiles = (packed?.files ?? []).map((f) => f.path);
  tarball = join(workDir, packed?.filename ?? "missing.tgz");
  projectDir = join(workDir, "project");
  mkdirSync(projectDir);
  writeFileSync(
    join(projectDir, "package.json"),
    JSON.stringify({ name: "sdk-consumer", version: "1.0.0", private: true, type: "module" }),
  );
  // No registry needed: the SDK has no dependencies.
  await run("npm", ["install", "--offline", "--no-audit", "--no-fund", tarball], { cwd: projectDir });
  pkgDir = join(projectDir, "node_modules", "@coding-env", "sdk");
});
afterAll(() => {
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

describe("the packed package, installed into a fresh project", () => {
  it("holds the build, the README and the manifest only; npm builds it on pack and on install", () => {
    expect(packedFiles).toContain("dist/esm/index.js");
    expect(packedFiles).toContain("dist/cjs/index.js");
    expect(packedFiles).toContain("README.md");
    expect(packedFiles.filter((f) => !/^(dist\/|README\.md$|package\.json$)/.test(f))).toEqual([]);
    const manifest = JSON.parse(readFileSync(join(sdkDir, "package.json"), "utf8")) as {
      scripts: Record<string, string>;
    };
    const root = JSON.parse(readFileSync(join(rootDir, "package.json"), "utf8")) as {
      scripts: Record<string, string>;
    };
    expect(manifest.scripts.prepare).toContain("scripts/build.mjs");
    // npm does not reliably run a workspace's `prepare` on `npm install`: the root's postinstall
    // builds the SDK, so the examples run on a fresh clone with no manual step.
    expect(root.scripts.postinstall).toContain("sdk/scripts/build.mjs");
  });

  // examples.test.ts runs the other examples from the repository (through the workspace link).
  it("runs the quick start (examples/quickstart.ts) against the stack", async () => {
    copyFileSync(join(rootDir, "examples", "quickstart.ts"), join(projectDir, "quickstart.ts"));
    const { stdout } = await run(process.execPath, tsxArgs("quickstart.ts"), {
      cwd: projectDir,
      env: { ...process.env, CODING_ENV_URL: stackUrl() },
    });

    expect(stdout).toContain("Reset complete: exit_code=0");
    expect(stdout).toContain(" → stdout: Hello, World!");
    expect(stdout).toContain(" → stdout: Result: 8");
    expect(stdout).toContain(" → stdout: 3.141592653589793");
    expect(stdout).toContain("ZeroDivisionError");
    expect(stdout).toMatch(/step_count=4/);
  });
});

describe("the built package", () => {
  it("has zero runtime dependencies and bundles import nothing", () => {
    const manifest = JSON.parse(readFileSync(join(sdkDir, "package.json"), "utf8")) as Record<
      string,
      unknown
    >;
    expect(manifest.dependencies).toBeUndefined();
    expect(manifest.peerDependencies).toBeUndefined();
    const esm = readFileSync(join(pkgDir, "dist", "esm", "index.js"), "utf8");
    const cjs = readFileSync(join(pkgDir, "dist", "cjs", "index.js"), "utf8");
    expect(esm).not.toMatch(/^\s*import\s/m);
    expect(cjs).not.toMatch(/\brequire\(/);
  });

  it("loads as CommonJS (require) and as ESM (import) with the same exports", async () => {
    const require = createRequire(join(projectDir, "index.cjs"));
    const cjs = require("@coding-env/sdk") as Record<string, unknown>;
    const esm = (await import(pathToFileURL(join(pkgDir, "dist", "esm", "index.js")).href)) as Record<
      string,
      unknown
    >;

    expect(Object.keys(cjs).sort()).toEqual(Object.keys(esm).sort());
    expect(typeof cjs.CodingEnv).toBe("function");
    const env = new (esm.CodingEnv as new (o: object) => { baseUrl: string })({ baseUrl: "http://h:1/" });
    expect(env.baseUrl).toBe("http://h:1");
  });

  it("is publint-clean", async () => {
    // The tarball installed above, not a second `npm pack`: a file it lacks is a missing file.
    const packed = readFileSync(tarball);
    const bytes = packed.buffer.slice(packed.byteOffset, packed.byteOffset + packed.byteLength);
    const { messages } = await publint({ pack: { tarball: bytes as ArrayBuffer }, level: "suggestion" });
    expect(messages).toEqual([]);
  });

  it("documents every public function, class, constant and method with an @example", () => {
    const declarations = /^(export declare (class|function|const) \w+| {4}(static )?(get )?[\w[\]]+\(.*\):)/;
    const missing: string[] = [];
    const typesDir = join(pkgDir, "dist", "esm");
    for (const file of readdirSync(typesDir).filter((f) => f.endsWith(".d.ts"))) {
      const lines = readFileSync(join(typesDir, file), "utf8").split("\n");
      lines.forEach((line, i) => {
        if (!declarations.test(line)) return;
        const before = lines.slice(0, i).join("\n");
        const docEnd = before.lastIndexOf("*/");
        const doc = before.slice(before.lastIndexOf("/**", docEnd), docEnd);
        const adjacent = before.slice(docEnd + 2).trim() === "";
        if (!adjacent || !doc.includes("@example")) missing.push(`${file}:${i + 1} ${line.trim()}`);
      });
    }
    expect(missing).toEqual([]);
  });

  it("type-checks for an ESM and a CommonJS consumer", () => {
    const consumer = [
      'import { CodingEnv, NotFoundError, type StepResult } from "@coding-env/sdk";',
      "export async function run(): Promise<number> {",
      '  await using env = new CodingEnv({ baseUrl: "http://localhost:8000", retry: { maxRetries: 1 } });',
      "  await env.reset();",
      '  const result: StepResult = await env.step("1+1");',
      "  try { await env.state(); } catch (err) { if (err instanceof NotFoundError) return -1; }",
      "  return result.observation.exit_code;",
      "}",
      "",
    ].join("\n");
    writeFileSync(join(projectDir, "consumer.mts"), consumer);
    writeFileSync(join(projectDir, "consumer.cts"), consumer);
    writeFileSync(
      join(projectDir, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "ES2022",
          module: "NodeNext",
          moduleResolution: "NodeNext",
          lib: ["ES2022", "ESNext.Disposable", "DOM"],
          strict: true,
          noEmit: true,
          types: [],
        },
        files: ["consumer.mts", "consumer.cts"],
      }),
    );
    symlinkSync(join(rootDir, "node_modules", "typescript"), join(projectDir, "node_modules", "typescript"));
    const tsc = join(rootDir, "node_modules", "typescript", "bin", "tsc");

    const run = () =>
      execFileSync(process.execPath, [tsc, "-p", projectDir], { stdio: "pipe", encoding: "utf8" });

    expect(run).not.toThrow();
  });
});
