import { execFileSync } from "node:child_process";
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
import { publint } from "publint";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// Builds the package exactly as `npm run build -w sdk` does, into a temporary copy, and checks
// what a consumer gets: both module formats, declarations, a clean publint, zero dependencies.
const sdkDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const rootDir = resolve(sdkDir, "..");
let workDir: string;
let pkgDir: string;

beforeAll(() => {
  workDir = mkdtempSync(join(tmpdir(), "coding-env-sdk-"));
  pkgDir = join(workDir, "node_modules", "@coding-env", "sdk");
  mkdirSync(pkgDir, { recursive: true });
  copyFileSync(join(sdkDir, "package.json"), join(pkgDir, "package.json"));
  copyFileSync(join(sdkDir, "README.md"), join(pkgDir, "README.md"));
  execFileSync(process.execPath, [join(sdkDir, "scripts", "build.mjs"), "--outdir", join(pkgDir, "dist")], {
    stdio: "pipe",
  });
});
afterAll(() => {
  if (workDir) rmSync(workDir, { recursive: true, force: true });
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
    const require = createRequire(join(workDir, "index.cjs"));
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
    const { messages } = await publint({ pkgDir, pack: "npm", level: "suggestion" });
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
    writeFileSync(join(workDir, "consumer.mts"), consumer);
    writeFileSync(join(workDir, "consumer.cts"), consumer);
    writeFileSync(
      join(workDir, "tsconfig.json"),
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
    symlinkSync(join(rootDir, "node_modules", "typescript"), join(workDir, "node_modules", "typescript"));
    const tsc = join(rootDir, "node_modules", "typescript", "bin", "tsc");

    const run = () =>
      execFileSync(process.execPath, [tsc, "-p", workDir], { stdio: "pipe", encoding: "utf8" });

    expect(run).not.toThrow();
  });
});
