// vitest globalSetup of the "stack" project: builds the SDK into sdk/dist once, before any test
// file runs, as `npm install` (root postinstall) and `npm pack -w sdk` (prepare) do. The example
// and package suites read that one build; building per file would race (build.mjs empties dist/).
import { execFile } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const sdkDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");

export async function setup(): Promise<void> {
  await promisify(execFile)(process.execPath, [join(sdkDir, "scripts", "build.mjs")], { cwd: sdkDir });
}
