// What the API benchmarks share: one keep-alive HTTP client, percentiles, a local stack in its own
// process, and per-process CPU time from /proc (less sensitive to a busy machine than wall time).
import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

export const agent = new Agent({ keepAlive: true, maxSockets: 256 });

export interface Reply {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

export function send(
  method: "GET" | "POST",
  baseUrl: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Reply> {
  const data = body === undefined ? "" : JSON.stringify(body);
  return new Promise((res, rej) => {
    const req = request(
      `${baseUrl}${path}`,
      {
        method,
        agent,
        headers: {
          ...(body === undefined
            ? {}
            : { "content-type": "application/json", "content-length": Buffer.byteLength(data) }),
          ...headers,
        },
      },
      (resp) => {
        const chunks: Buffer[] = [];
        resp.on("data", (c: Buffer) => chunks.push(c));
        resp.on("end", () =>
          res({
            status: resp.statusCode ?? 0,
            body: Buffer.concat(chunks).toString("utf8"),
            headers: resp.headers,
          }),
        );
      },
    );
    req.on("error", rej);
    req.end(data);
  });
}

export function post(
  baseUrl: string,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<Reply> {
  return send("POST", baseUrl, path, body, headers);
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const idx = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, idx)] as number;
}

/** The median (the mean of the two middle values for an even count); NaN for none. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

/** Every process in the tree under rootPid (rootPid included), from /proc. */
export function processTree(rootPid: number): number[] {
  const parents = new Map<number, number>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      parents.set(Number(name), ppid);
    } catch {
      /* exited meanwhile */
    }
  }
  const inTree = new Set([rootPid]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, ppid] of parents) {
      if (!inTree.has(pid) && inTree.has(ppid)) {
        inTree.add(pid);
        grew = true;
      }
    }
  }
  return [...inTree];
}

const clockTicksPerS = 100; // USER_HZ on Linux

/**
 * CPU milliseconds (user + system) used so far by a process tree, children that were waited for
 * included (a forked worker that already exited counts through its parent's cutime/cstime).
 */
export function treeCpuMs(rootPid: number): number {
  let ticks = 0;
  for (const pid of processTree(rootPid)) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      // fields after the command: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
      ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
    } catch {
      /* exited */
    }
  }
  return (ticks * 1000) / clockTicksPerS;
}

export function loadAverage(): [number, number, number] {
  const [a, b, c] = readFileSync("/proc/loadavg", "utf8").split(" ").map(Number);
  return [a as number, b as number, c as number];
}

/** The node flags `npm start` runs the stack with (`tsx <flags> scripts/start-local.ts` in package.json). */
function startNodeFlags(root: string): string[] {
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
    scripts?: { start?: string };
  };
  const m = /\btsx((?: --[^\s]+)*) scripts\/start-local\.ts/.exec(pkg.scripts?.start ?? "");
  return (m?.[1] ?? "").split(" ").filter(Boolean);
}

/**
 * `npm start`'s entry point (with its node flags) in its own process (so its CPU is its own), on a free port.
 * dataDir null: in memory; a path: LevelDB files there (durable, as `npm start`). `root`: the
 * checkout to start (another one for A/B runs). @default this repository
 */
export async function startStackProcess(
  opts: { dataDir?: string | null; env?: Record<string, string>; nodeArgs?: string[]; root?: string } = {},
): Promise<{ child: ChildProcess; baseUrl: string }> {
  const dataDir = opts.dataDir === undefined || opts.dataDir === null ? ":memory:" : opts.dataDir;
  const root = opts.root ?? repoRoot;
  const child = spawn(
    process.execPath,
    [
      ...startNodeFlags(root),
      ...(opts.nodeArgs ?? []),
      "--import",
      "tsx",
      join(root, "scripts/start-local.ts"),
    ],
    {
      cwd: root,
      // No per-request console line (as the reference runs without its access log).
      env: {
        ...process.env,
        PORT: "0",
        CODING_ENV_DATA_DIR: dataDir,
        CODING_ENV_LOG_REQUESTS: "off",
        ...opts.env,
      },
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  const baseUrl = await new Promise<string>((res, rej) => {
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.on("line", (line) => {
      const m = /API\s+(http:\/\/\S+)/.exec(line);
      if (m?.[1]) res(m[1]);
    });
    child.once("exit", (code) => rej(new Error(`stack exited early (code ${code})`)));
  });
  return { child, baseUrl };
}

export async function stopProcess(child: ChildProcess, signal: NodeJS.Signals = "SIGINT"): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill(signal);
  await exited;
}
