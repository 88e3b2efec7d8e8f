// Builds the SDK into dist/: ESM (dist/esm), CommonJS (dist/cjs, marked by its own package.json)
// and type declarations next to each. Usage: node scripts/build.mjs [--outdir <dir>]
import { execFileSync } from "node:child_process";
import { cpSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const sdkDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const outFlag = process.argv.indexOf("--outdir");
const outDir = outFlag === -1 ? join(sdkDir, "dist") : resolve(process.argv[outFlag + 1] ?? "");
const entry = join(sdkDir, "src", "index.ts");
const typesDir = join(outDir, "types");

rmSync(outDir, { recursive: true, force: true });

const common = {
  entryPoints: [entry],
  bundle: true,
  platform: "neutral",
  target: "es2022",
  sourcemap: true,
  legalComments: "none",
  logLevel: "warning",
};
await build({ ...common, format: "esm", outfile: join(outDir, "esm", "index.js") });
await build({ ...common, format: "cjs", outfile: join(outDir, "cjs", "index.js") });
// dist/cjs/*.js (and *.d.ts) are CommonJS although the package is "type": "module".
writeFileSync(join(outDir, "cjs", "package.json"), `${JSON.stringify({ type: "commonjs" }, null, 2)}\n`);

const require = createRequire(import.meta.url);
// By path: TypeScript 7's package exports no `bin/tsc`.
const tsc = join(dirname(require.resolve("typescript/package.json")), "bin", "tsc");
execFileSync(process.execPath, [tsc, "-p", join(sdkDir, "tsconfig.build.json"), "--outDir", typesDir], {
  stdio: "inherit",
});
for (const format of ["esm", "cjs"]) {
  for (const file of readdirSync(typesDir)) cpSync(join(typesDir, file), join(outDir, format, file));
}
rmSync(typesDir, { recursive: true, force: true });
console.log(`built ${outDir}`);
