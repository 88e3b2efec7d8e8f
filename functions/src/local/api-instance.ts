// Child-process entry of one API instance (api-instances.ts forks its bundle): waits for its
// start message, serves the API on a free loopback port, reports the port, and exits when the stack
// goes (SIGTERM, or its IPC channel closing because the stack died).
import { configFromEnv } from "../config.js";
import type { InstanceStart } from "./api-instances.js";
import { type ApiServer, startApiServer } from "./api-server.js";

let api: ApiServer | undefined;

async function start(opts: InstanceStart): Promise<void> {
  try {
    api = await startApiServer({
      config: configFromEnv(opts.env),
      env: opts.env,
      dynamodbEndpoint: opts.dynamodbEndpoint,
      executorEndpoint: opts.executorEndpoint,
      credentials: opts.credentials,
      host: "127.0.0.1",
      port: 0,
      publicHost: opts.publicHost,
      instanceName: opts.instanceName,
    });
    process.send?.({ type: "listening", port: api.port });
  } catch (err) {
    process.send?.({ type: "failed", message: (err as Error).message });
    process.exit(1);
  }
}

async function stop(): Promise<void> {
  const force = setTimeout(() => process.exit(0), 5_000);
  force.unref();
  await api?.close().catch(() => undefined);
  process.exit(0);
}

process.on("message", (msg: { type?: string; start?: InstanceStart }) => {
  if (msg.type === "start" && msg.start) void start(msg.start);
});
process.on("disconnect", () => void stop());
process.on("SIGTERM", () => void stop());
process.on("SIGINT", () => {
  /* the stack stops its instances itself (Ctrl-C reaches the whole terminal's process group) */
});
