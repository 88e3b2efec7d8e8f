// The time by which the current request must be answered, carried through the async calls of one
// request (AsyncLocalStorage), so the executor client can stop waiting in time for the API to send
// its own 504 (config.ts: "Timeouts that hold cold"). Outside a request there is no deadline.
import { AsyncLocalStorage } from "node:async_hooks";

const deadlines = new AsyncLocalStorage<number>();

/** Runs `fn` with a deadline (epoch ms) visible to everything it awaits. */
export function withDeadline<T>(deadlineMs: number, fn: () => Promise<T>): Promise<T> {
  return deadlines.run(deadlineMs, fn);
}

/** The current request's deadline (epoch ms), or `undefined` outside a request that has one. */
export function currentDeadline(): number | undefined {
  return deadlines.getStore();
}
