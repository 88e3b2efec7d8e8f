// Worker-thread entry of the local DynamoDB: dynalite (with our transactions) on its own thread,
// so its CPU work runs beside the API's event loop instead of inside it. Loaded through
// dynalite-worker.mjs (which registers tsx in this thread). Messages from the parent:
// "stats" -> { counts, ms }, "stop" -> "stopped".
import { parentPort, workerData } from "node:worker_threads";
import { startDynalite } from "./dynalite-server.js";

const opts = workerData as { path: string | null; host: string };
const handle = await startDynalite({ path: opts.path, host: opts.host });
parentPort?.on("message", (msg: unknown) => {
  if (msg === "stats") {
    parentPort?.postMessage({
      type: "stats",
      counts: Object.fromEntries(handle.requestCounts),
      ms: Object.fromEntries(handle.requestMs),
    });
  } else if (msg === "stop") {
    void handle.stop().then(
      () => parentPort?.postMessage({ type: "stopped" }),
      (err: unknown) => parentPort?.postMessage({ type: "stopped", error: String(err) }),
    );
  }
});
parentPort?.postMessage({ type: "ready", endpoint: handle.endpoint });
