// The local DynamoDB as a part of the stack: the front in this thread, or on its own worker thread
// (dynalite-worker.ts), behind one interface (stats, change feed, TTL sweep, stop).
import { Worker } from "node:worker_threads";
import { startDynalite } from "./dynalite-server.js";
import type { ChangeRecord } from "./dynamodb-rules.js";

export interface DynamoPartOpts {
  readonly path: string | null;
  readonly host: string;
  readonly accessKeyId: string;
  readonly batchGetMaxBytes?: number;
}

export interface DynamoPart {
  readonly endpoint: string;
  readonly exited: Promise<string>;
  stats(): Promise<{ counts: Record<string, number>; ms: Record<string, number> }>;
  onChange(listener: (records: ChangeRecord[]) => void): void;
  sweepExpired(nowMs?: number): Promise<number>;
  stop(): Promise<void>;
}

/** Starts the front in this thread. */
export async function startDynamoInThread(opts: DynamoPartOpts): Promise<DynamoPart> {
  const handle = await startDynalite(opts);
  let stopped: (why: string) => void = () => {};
  const exited = new Promise<string>((res) => {
    stopped = res;
    handle.server.once("error", (err) => res(`dynalite failed: ${err.message}`));
  });
  return {
    endpoint: handle.endpoint,
    exited,
    stats: async () => ({
      counts: Object.fromEntries(handle.requestCounts),
      ms: Object.fromEntries(handle.requestMs),
    }),
    onChange: (listener) => {
      handle.onChange(listener);
    },
    sweepExpired: (nowMs) => handle.sweepExpired(nowMs),
    stop: async () => {
      await handle.stop();
      stopped("stopped");
    },
  };
}

/** Starts the front on its own worker thread. */
export async function startDynamoWorker(opts: DynamoPartOpts): Promise<DynamoPart> {
  const worker = new Worker(new URL("./dynalite-worker.mjs", import.meta.url), { workerData: opts });
  const exited = new Promise<string>((res) => {
    worker.once("error", (err) => res(`dynalite failed: ${err.message}`));
    worker.once("exit", (code) => res(`dynalite stopped (exit code ${code})`));
  });
  const listeners: Array<(records: ChangeRecord[]) => void> = [];
  worker.on("message", (msg: { type?: string; records?: ChangeRecord[] }) => {
    if (msg.type === "records" && msg.records) for (const l of listeners) l(msg.records);
  });
  let nextId = 1;
  const waitFor = <T>(type: string, id?: number) =>
    new Promise<T>((res, rej) => {
      const onMessage = (msg: { type?: string; id?: number }) => {
        if (msg.type !== type || (id !== undefined && msg.id !== id)) return;
        worker.off("message", onMessage);
        res(msg as T);
      };
      worker.on("message", onMessage);
      void exited.then((why) => rej(new Error(why)));
    });
  const ready = await waitFor<{ endpoint: string }>("ready");
  return {
    endpoint: ready.endpoint,
    exited,
    stats: async () => {
      const got = waitFor<{ counts: Record<string, number>; ms: Record<string, number> }>("stats");
      worker.postMessage({ type: "stats" });
      const { counts, ms } = await got;
      return { counts, ms };
    },
    onChange: (listener) => {
      if (listeners.length === 0) worker.postMessage({ type: "subscribe" });
      listeners.push(listener);
    },
    sweepExpired: async (nowMs) => {
      const id = nextId++;
      const got = waitFor<{ removed: number; error?: string }>("swept", id);
      worker.postMessage({ type: "sweep", id, nowMs });
      const { removed, error } = await got;
      if (error) throw new Error(error);
      return removed;
    },
    stop: async () => {
      const stopped = waitFor<{ type: string }>("stopped");
      worker.postMessage({ type: "stop" });
      await stopped.catch(() => undefined);
      await worker.terminate();
    },
  };
}
