import { CodingEnv, type CodingEnvOpts, type ResetOpts, type StepOpts } from "./client.js";
import type { StepResult } from "./result.js";
import type { CodeAction } from "./types.js";

/** Options of the batch helpers. */
export interface BatchOpts {
  /** Most calls in flight at once. @default 8 */
  readonly concurrency?: number;
  /** Stops starting new items when aborted (items in flight finish). @default none */
  readonly signal?: AbortSignal;
}

/** The outcome of one item: its value, or the error it threw. Results keep the input order. */
export type Settled<T> =
  | { readonly ok: true; readonly index: number; readonly value: T }
  | { readonly ok: false; readonly index: number; readonly error: unknown };

const DEFAULT_CONCURRENCY = 8;

/**
 * Runs `fn` over `items` with at most `concurrency` calls in flight and returns every outcome in
 * input order; one failure does not stop the others.
 *
 * @example
 * ```ts
 * const outcomes = await mapConcurrent(envs, (env) => env.history(), { concurrency: 4 });
 * const trajectories = outcomes.filter((o) => o.ok).map((o) => o.value);
 * ```
 */
export async function mapConcurrent<T, R>(
  items: readonly T[],
  fn: (item: T, index: number) => Promise<R>,
  opts: BatchOpts = {},
): Promise<Settled<R>[]> {
  const concurrency = opts.concurrency ?? DEFAULT_CONCURRENCY;
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new RangeError(`concurrency must be an integer >= 1, got ${concurrency}`);
  }
  const outcomes: Settled<R>[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      if (opts.signal?.aborted) {
        outcomes[index] = { ok: false, index, error: opts.signal.reason };
        continue;
      }
      try {
        outcomes[index] = { ok: true, index, value: await fn(items[index] as T, index) };
      } catch (error) {
        outcomes[index] = { ok: false, index, error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  return outcomes;
}

/**
 * Steps many episodes concurrently (one step each) with bounded parallelism: the inner loop of a
 * training run. `actions` is one action per env, or a function choosing each env's action.
 *
 * @example
 * ```ts
 * const outcomes = await stepBatch(envs, (env, i) => `print(${i} * 2)`, { concurrency: 4 });
 * for (const o of outcomes) {
 *   if (o.ok) console.log(o.index, o.value.observation.stdout, o.value.reward);
 *   else console.error(o.index, o.error);
 * }
 * ```
 */
export function stepBatch(
  envs: readonly CodingEnv[],
  actions: readonly (CodeAction | string)[] | ((env: CodingEnv, index: number) => CodeAction | string),
  opts: BatchOpts & Omit<StepOpts, "requestId" | "signal"> = {},
): Promise<Settled<StepResult>[]> {
  if (typeof actions !== "function" && actions.length !== envs.length) {
    throw new RangeError(
      `stepBatch needs one action per env: ${envs.length} envs, ${actions.length} actions`,
    );
  }
  const stepOpts: StepOpts = opts.timeoutS === undefined ? {} : { timeoutS: opts.timeoutS };
  return mapConcurrent(
    envs,
    (env, index) => {
      const action =
        typeof actions === "function" ? actions(env, index) : (actions[index] as CodeAction | string);
      return env.step(action, stepOpts);
    },
    opts,
  );
}

/**
 * Opens `count` episodes concurrently (a client each, `reset()` done). If any reset fails, the
 * episodes already opened are deleted and the first error is thrown.
 *
 * @example
 * ```ts
 * const envs = await createEpisodes(16, { baseUrl }, { policy: "full" }, { concurrency: 4 });
 * try { ... } finally { await Promise.all(envs.map((env) => env.close())); }
 * ```
 */
export async function createEpisodes(
  count: number,
  envOpts: CodingEnvOpts = {},
  resetOpts: Omit<ResetOpts, "episodeId"> = {},
  opts: BatchOpts = {},
): Promise<CodingEnv[]> {
  if (!Number.isInteger(count) || count < 0)
    throw new RangeError(`count must be an integer >= 0, got ${count}`);
  const envs = Array.from({ length: count }, () => new CodingEnv(envOpts));
  const outcomes = await mapConcurrent(envs, (env) => env.reset(resetOpts), opts);
  const failed = outcomes.find((o) => !o.ok);
  if (failed !== undefined && !failed.ok) {
    await mapConcurrent(envs, (env) => env.close(), opts);
    throw failed.error;
  }
  return envs;
}
