// N API instances behind the stack's one port, as many API Lambda instances serve one API Gateway:
// each instance is a child process with its own EpisodeService and caches (api-instance.ts), and a
// small proxy here sends each request (not each connection: keep-alive clients would stick to one
// instance) to the next instance in turn. WebSocket upgrades are piped to an instance whole.
import { type ChildProcess, fork } from "node:child_process";
import { once } from "node:events";
import {
  Agent,
  createServer,
  type IncomingMessage,
  request,
  type Server,
  type ServerResponse,
} from "node:http";
import { type AddressInfo, connect, type Socket } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { LocalCredentials } from "../deps.js";
import { bundledEntry } from "./entry-bundle.js";

/** What an instance is started with (sent to it over IPC). */
export interface InstanceStart {
  readonly env: Record<string, string | undefined>;
  readonly dynamodbEndpoint: string;
  readonly executorEndpoint: string;
  readonly credentials: LocalCredentials;
  readonly publicHost: string;
  readonly instanceName: string;
}

export interface ApiInstances {
  readonly server: Server;
  readonly port: number;
  readonly pids: readonly number[];
  /** Settles when an instance stops on its own. */
  readonly exited: Promise<string>;
  close(): Promise<void>;
}

export interface ApiInstancesOpts {
  readonly count: number;
  readonly host: string;
  readonly port: number;
  readonly repoRoot: string;
  readonly start: Omit<InstanceStart, "instanceName">;
}

interface Instance {
  readonly child: ChildProcess;
  readonly port: number;
}

async function startInstance(opts: ApiInstancesOpts, index: number): Promise<Instance> {
  // api-instance.ts as one module (built once per content, entry-bundle.ts): no tsx in each instance.
  const entry = await bundledEntry(
    join(fileURLToPath(new URL(".", import.meta.url)), "api-instance.ts"),
    opts.repoRoot,
  );
  const child = fork(entry, [], {
    cwd: opts.repoRoot,
    // The young generation `npm start` gives the stack's process (package.json): with many steps
    // in flight, 16 MB filled every ~28 steps and each scavenge copied every in-flight request;
    // 64 MB cut the API's CPU per step by ~1 ms at 64 concurrent episodes (GC helpers 0.7 -> 0.45 ms).
    execArgv: ["--max-semi-space-size=64", "--enable-source-maps"],
    env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true" },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const start: InstanceStart = { ...opts.start, instanceName: String(index) };
  const port = await new Promise<number>((res, rej) => {
    child.once("error", rej);
    child.once("exit", (code) =>
      rej(new Error(`API instance ${index} exited (code ${code}) before listening`)),
    );
    child.on("message", (msg: { type?: string; port?: number; message?: string }) => {
      if (msg.type === "listening" && msg.port) res(msg.port);
      if (msg.type === "failed") rej(new Error(`API instance ${index} failed to start: ${msg.message}`));
    });
    child.send({ type: "start", start });
  });
  child.removeAllListeners("exit");
  return { child, port };
}

function badGateway(res: ServerResponse, err: Error): void {
  if (res.headersSent) {
    res.destroy(err);
    return;
  }
  const body = JSON.stringify({
    error: { code: "bad_gateway", message: `API instance unreachable: ${err.message}` },
  });
  res.writeHead(502, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

/** Starts `count` API instances and the proxy in front of them. */
export async function startApiInstances(opts: ApiInstancesOpts): Promise<ApiInstances> {
  const started = await Promise.allSettled(
    Array.from({ length: opts.count }, (_, i) => startInstance(opts, i)),
  );
  const instances = started.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
  const failed = started.find((s) => s.status === "rejected");
  if (failed) {
    for (const instance of instances) instance.child.kill("SIGKILL");
    throw (failed as PromiseRejectedResult).reason;
  }
  let closing = false;
  const exited = new Promise<string>((res) => {
    for (const [i, instance] of instances.entries()) {
      instance.child.once("exit", (code, signal) => {
        if (!closing) res(`API instance ${i} exited (code ${code}, signal ${signal})`);
      });
    }
  });

  const agent = new Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY });
  let next = 0;
  const pick = (): Instance => instances[next++ % instances.length] as Instance;

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const target = pick();
    const forward = request(
      {
        host: "127.0.0.1",
        port: target.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
        agent,
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    forward.on("error", (err) => badGateway(res, err));
    req.pipe(forward);
  });
  server.on("upgrade", (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const target = pick();
    const upstream = connect(target.port, "127.0.0.1", () => {
      const lines = [`${req.method} ${req.url} HTTP/${req.httpVersion}`];
      for (let i = 0; i < req.rawHeaders.length; i += 2)
        lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      upstream.write(`${lines.join("\r\n")}\r\n\r\n`);
      if (head.length > 0) upstream.write(head);
      socket.pipe(upstream).pipe(socket);
    });
    upstream.on("error", () => socket.destroy());
    socket.on("error", () => upstream.destroy());
  });
  server.keepAliveTimeout = 65_000;
  server.listen(opts.port, opts.host);
  try {
    await once(server, "listening");
  } catch (err) {
    for (const instance of instances) instance.child.kill("SIGKILL");
    throw err;
  }
  return {
    server,
    port: (server.address() as AddressInfo).port,
    pids: instances.map((i) => i.child.pid ?? 0),
    exited,
    close: async () => {
      closing = true;
      await new Promise<void>((res) => {
        server.close(() => res());
        server.closeAllConnections();
      });
      agent.destroy();
      await Promise.all(
        instances.map(async ({ child }) => {
          if (child.exitCode !== null || child.signalCode !== null) return;
          const gone = once(child, "exit");
          child.kill("SIGTERM");
          const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
          await gone;
          clearTimeout(timer);
        }),
      );
    },
  };
}
