// `npm start`'s check of the known package set (python-runtime/coding_env_runtime/packages.json)
// against the Python the local executor runs: the message names what is missing and the Debian
// packages that provide it. The stack still starts (a step importing a missing package fails
// with ModuleNotFoundError); the image build is the strict check.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

/** What is missing and how to install it, or null when every listed package imports. */
export async function checkPackageSet(repoRoot: string): Promise<string | null> {
  // scripts/python.mjs belongs to the runtime; imported by URL so tsc need not type it.
  const url = pathToFileURL(join(repoRoot, "scripts", "python.mjs")).href;
  const { resolvePython } = (await import(url)) as { resolvePython(): Promise<string> };
  const python = await resolvePython();
  return new Promise((resolve) => {
    const child = spawn(python, ["-m", "coding_env_runtime.packages", "--check"], {
      cwd: join(repoRoot, "python-runtime"),
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (text: string) => {
      stderr += text;
    });
    child.on("error", (err) => resolve(`coding-env: could not check the package set: ${err.message}`));
    child.on("close", (code) => resolve(code === 0 ? null : stderr.trim() || `package check exited ${code}`));
  });
}
