// The local executor process: the Python runtime behind its Lambda Invoke-API server (or, in
// "lambda" mode, the Lambda-mode harness with the same command-line contract). It dies with the
// stack however the stack ends:
// - it leads its own process group, and stop() signals the group (SIGTERM, then SIGKILL);
// - it is started through a tiny exec wrapper that sets the parent-death signal (Linux prctl
//   PR_SET_PDEATHSIG = SIGKILL), so a stack killed with SIGKILL takes it down too; its zygote and
//   workers then follow it (they die when their control channel to it closes, or by their own
//   parent-death signal).
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";
import { API_ENV } from "../config.js";

/** How the executor runs: the local Invoke server, or the Lambda-mode harness. */
export type ExecutorMode = "local" | "lambda";

export interface ExecutorOpts {
  readonly repoRoot: string;
  readonly mode: ExecutorMode;
  /** Forward the executor's log lines to this process's stderr. */
  readonly log: boolean;
  readonly maxWarmWorkers: number;
  /** The start-up secret: the executor refuses requests signed with any other access key id. */
  readonly accessKeyId: string;
  /**
   * Lambda mode: the local S3's endpoint (`http://127.0.0.1:<port>`), the one host address the
   * harness's environments reach (its stand-in for the VPC's S3 gateway endpoint). Unset: the
   * environments see their loopback only. The local server (root mode) reaches it anyway.
   */
  readonly s3Endpoint?: string;
  /**
   * Emulates Lambda's reserved concurrency: at most this many invocations at once, then Lambda's
   * throttle (429 TooManyRequestsException). Lambda mode: the harness's environments. @default none
   */
  readonly reservedConcurrency?: number;
}

export interface ExecutorProcess {
  readonly child: ChildProcess;
  readonly endpoint: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderrTail: string }>;
}

// Sets PR_SET_PDEATHSIG (1) to SIGKILL (9), gives up if the parent is already gone, then becomes
// the executor (the signal setting survives exec).
const DIE_WITH_PARENT = [
  "import ctypes, os, sys",
  "libc = ctypes.CDLL(None, use_errno=True)",
  "libc.prctl(1, 9, 0, 0, 0)",
  "os.getppid() == int(sys.argv[1]) or os._exit(70)",
  "os.execv(sys.executable, [sys.executable, *sys.argv[2:]])",
].join("\n");

const RESOLVED_PYTHON = Symbol.for("coding-env.resolvedPython");

/**
 * The interpreter each environment resolved to in this process: resolving probes the interpreter
 * in two child processes (~0.45 s of CPU), and a process that starts many stacks (the tests) would
 * pay it on every start. Keyed by what the choice depends on. Kept on the process's global object,
 * not in this module: a process that loads this module afresh (the test runner does, per file)
 * still resolves once.
 */
const processGlobals = globalThis as { [RESOLVED_PYTHON]?: Map<string, Promise<string>> };
const resolvedPython = processGlobals[RESOLVED_PYTHON] ?? new Map<string, Promise<string>>();
processGlobals[RESOLVED_PYTHON] = resolvedPython;

function resolvePython(repoRoot: string): Promise<string> {
  const key = [repoRoot, process.env.PATH, process.env[API_ENV.python]].join("\0");
  let resolved = resolvedPython.get(key);
  if (resolved === undefined) {
    // scripts/python.mjs belongs to the runtime; imported by URL so tsc need not type it.
    const url = pathToFileURL(join(repoRoot, "scripts", "python.mjs")).href;
    resolved = import(url).then((mod: { resolvePython(): Promise<string> }) => mod.resolvePython());
    // A failure is not kept: the next start tries again (and reports why).
    resolved.catch(() => resolvedPython.delete(key));
    resolvedPython.set(key, resolved);
  }
  return resolved;
}

/** Starts the executor and waits for its `LISTENING <url>` line. */
export async function startExecutor(opts: ExecutorOpts): Promise<ExecutorProcess> {
  const python = await resolvePython(opts.repoRoot);
  const runtimeDir = join(opts.repoRoot, "python-runtime");
  const target =
    opts.mode === "lambda"
      ? [
          join(runtimeDir, "harness", "lambda_env.py"),
          "--host",
          "127.0.0.1",
          "--port",
          "0",
          ...(opts.s3Endpoint ? ["--s3-gateway", opts.s3Endpoint] : []),
          ...(opts.reservedConcurrency ? ["--max-environments", String(opts.reservedConcurrency)] : []),
        ]
      : [
          "-m",
          "coding_env_runtime.local_server",
          "--host",
          "127.0.0.1",
          "--port",
          "0",
          "--max-warm-workers",
          String(opts.maxWarmWorkers),
          ...(opts.reservedConcurrency ? ["--reserved-concurrency", String(opts.reservedConcurrency)] : []),
        ];
  const child = spawn(python, ["-c", DIE_WITH_PARENT, String(process.pid), ...target], {
    cwd: opts.repoRoot,
    env: {
      ...process.env,
      PYTHONPATH: runtimeDir,
      PYTHONUNBUFFERED: "1",
      // The one key id the executor accepts (the Python side reads it as options.LOCAL_ACCESS_KEY_ENV).
      [API_ENV.localAccessKeyId]: opts.accessKeyId,
    },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true, // its own process group: stop() signals all of it, Ctrl-C in a terminal does not
  });
  const tail: string[] = [];
  const remember = (line: string) => {
    tail.push(line);
    if (tail.length > 40) tail.shift();
    if (!opts.log) return;
    const held = stopped.get(child);
    if (held) held.push(line);
    else process.stderr.write(`[executor] ${line}\n`);
  };
  createInterface({ input: child.stderr as NodeJS.ReadableStream }).on("line", remember);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderrTail: string }>(
    (res) => {
      child.once("exit", (code, signal) => res({ code, signal, stderrTail: tail.join("\n") }));
    },
  );
  const endpoint = await new Promise<string>((res, rej) => {
    const timer = setTimeout(() => {
      killGroup(child, "SIGKILL");
      rej(new Error(`the Python executor did not report LISTENING within 60 s\n${tail.join("\n")}`));
    }, 60_000);
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.on("line", (line) => {
      const m = /^LISTENING (http:\/\/\S+)/.exec(line.trim());
      if (m?.[1]) {
        clearTimeout(timer);
        res(m[1]);
      } else remember(line);
    });
    child.once("error", (err) => {
      clearTimeout(timer);
      rej(new Error(`could not start the Python executor (${python}): ${err.message}`));
    });
    void exited.then(({ code, signal, stderrTail }) => {
      clearTimeout(timer);
      rej(
        new Error(
          `the Python executor exited (code ${code}, signal ${signal}) before listening\n${stderrTail}`,
        ),
      );
    });
  });
  return { child, endpoint, exited };
}

/**
 * Executors being stopped, with the log lines they printed since: held back (a spare interpreter
 * still starting when its executor goes prints a BrokenPipeError traceback, noise under the
 * launcher's "port in use" or "stopping" line), and printed only if the executor then exits with
 * an error of its own (not the signal it was stopped with).
 */
const stopped = new WeakMap<ChildProcess, string[]>();

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    child.kill(signal); // the group is gone already
  }
}

/** SIGTERM to the executor's process group, SIGKILL to it after 5 s; resolves once it exited. */
export async function stopExecutor(exe: Pick<ExecutorProcess, "child" | "exited">): Promise<void> {
  const { child } = exe;
  const held: string[] = [];
  stopped.set(child, held);
  if (child.exitCode === null && child.signalCode === null) {
    killGroup(child, "SIGTERM");
    const timer = setTimeout(() => killGroup(child, "SIGKILL"), 5_000);
    const { code } = await exe.exited;
    clearTimeout(timer);
    if (code !== null && code !== 0) for (const line of held) process.stderr.write(`[executor] ${line}\n`);
  }
  // Anything of it still in its group (it exited first) goes too.
  killGroup(child, "SIGKILL");
}
