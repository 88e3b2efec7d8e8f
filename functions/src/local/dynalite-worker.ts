// Worker-thread entry of the local DynamoDB: the front (dynalite with our transactions) on its own
// thread, so its CPU work runs beside the API's event loop instead of inside it. Loaded through
// dynalite-worker.mjs (which registers tsx in this thread). Messages from the parent:
// {type:"stats"} -> {type:"stats", counts, ms}; {type:"subscribe"} -> {type:"records", records}
// for every applied write; {type:"sweep", id, nowMs} -> {type:"swept", id, removed};
// {type:"stop"} -> {type:"stopped"}.
import { parentPort, workerData } from "node:worker_threads";
import { startDynalite } from "./dynalite-server.js";

const opts = workerData as {
  path: string | null;
  host: string;
  accessKeyId: string;
  batchGetMaxBytes?: number;
};
const handle = await startDynalite(opts);
parentPort?.on("message", (msg: { type?: string; id?: number; nowMs?: number }) => {
  switch (msg.type) {
    case "stats":
      parentPort?.postMessage({
        type: "stats",
        counts: Object.fromEntries(handle.requestCounts),
        ms: Object.fromEntries(handle.requestMs),
      });
      break;
    case "subscribe":
      handle.onChange((records) => parentPort?.postMessage({ type: "records", records }));
      break;
    case "sweep":
      void handle.sweepExpired(msg.nowMs).then(
        (removed) => parentPort?.postMessage({ type: "swept", id: msg.id, removed }),
        (err: unknown) =>
          parentPort?.postMessage({ type: "swept", id: msg.id, removed: 0, error: String(err) }),
      );
      break;
    case "stop":
      void handle.stop().then(
        () => parentPort?.postMessage({ type: "stopped" }),
        (err: unknown) => parentPort?.postMessage({ type: "stopped", error: String(err) }),
      );
      break;
  }
});
parentPort?.postMessage({ type: "ready", endpoint: handle.endpoint });
