// Runs a command of the Python SDK's suites to its end without blocking the vitest worker, so a
// file's tests (unittest processes, pip, the README's commands) run side by side.
import { spawn } from "node:child_process";

export interface Ran {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * `command args` in `cwd`, with this process's environment plus `env` (no bytecode written, no pip
 * version check), killed after `timeoutMs`.
 * @example const { status, stderr } = await run("/usr/bin/python3", ["-m", "unittest", "test_x"], { cwd, env: {} });
 */
export function run(
  command: string,
  args: string[],
  { cwd, env }: { cwd: string; env: Record<string, string> },
  timeoutMs = 240_000,
): Promise<Ran> {
  return new Promise((done, fail) => {
    const child = spawn(command, args, {
      cwd,
      timeout: timeoutMs,
      env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1", PIP_DISABLE_PIP_VERSION_CHECK: "1", ...env },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    child.on("error", fail);
    child.on("close", (status) => done({ status, stdout, stderr }));
  });
}
