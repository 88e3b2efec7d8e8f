// The local stand-in for a DynamoDB stream's Lambda trigger: collects the front's change records
// and hands them to the consumer in batches on a timer, in order. A batch that fails is retried
// (before any newer record), as a stream shard blocks on a failing batch in AWS.
import type { ChangeRecord } from "./dynamodb-rules.js";

export interface StreamPumpOpts {
  /** Called with each batch, one batch at a time. */
  readonly process: (records: readonly ChangeRecord[]) => Promise<void>;
  /** @default 1000 */
  readonly intervalMs?: number;
  /** Largest batch (Lambda's DynamoDB stream batch size goes up to 10,000). @default 1000 */
  readonly maxBatch?: number;
  /** Where a failed batch is reported (it is retried on the next tick). @default stderr */
  readonly onError?: (err: unknown) => void;
}

export interface StreamPump {
  /** Queues records (the front's change listener). */
  push(records: readonly ChangeRecord[]): void;
  /** Processes everything queued so far (tests, and stop). */
  flush(): Promise<void>;
  stop(): Promise<void>;
}

export function startStreamPump(opts: StreamPumpOpts): StreamPump {
  const queue: ChangeRecord[] = [];
  const maxBatch = opts.maxBatch ?? 1000;
  let running: Promise<void> | null = null;
  const onError =
    opts.onError ??
    ((err: unknown) => process.stderr.write(`coding-env: stream batch failed (retried): ${String(err)}\n`));

  const drain = async (): Promise<void> => {
    while (queue.length > 0) {
      const batch = queue.slice(0, maxBatch);
      await opts.process(batch);
      queue.splice(0, batch.length);
    }
  };
  const tick = (): Promise<void> => {
    running ??= drain()
      .catch(onError)
      .finally(() => {
        running = null;
      });
    return running;
  };
  const timer = setInterval(() => void tick(), opts.intervalMs ?? 1000);
  timer.unref();
  return {
    push: (records) => {
      queue.push(...records);
    },
    flush: async () => {
      // A tick under way may have started before the newest records: wait for it, then drain the
      // rest as the one batch runner, so a timer tick meanwhile does not hand the same records to
      // the consumer a second time (a batch leaves the queue only once it is processed).
      while (running) await running;
      const flushing = drain();
      running = flushing
        .catch(() => undefined)
        .finally(() => {
          running = null;
        });
      await flushing;
    },
    stop: async () => {
      clearInterval(timer);
      while (running) await running;
      await drain().catch(onError);
    },
  };
}
