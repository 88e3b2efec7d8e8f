// A per-tenant bound on the executor's concurrency across every API instance (issue 10 point 7),
// that costs nothing per step while the executor is not contended. In AWS each API Lambda instance
// serves one request at a time, so no per-process cap binds there: one tenant flooding steps could
// take the executor's whole reserved concurrency, and every other tenant would be throttled.
// A shared counter on every step would cost two writes per step, so instead:
//
// - normal mode: an instance reads a small contention flag (an eventually consistent read) at most
//   once per `checkIntervalMs` and caches it; a step does nothing else;
// - engage: an instance whose invoke was throttled (Lambda's TooManyRequestsException, answered
//   429 `executor_throttled`, nothing ran) marks the executor contended for `contentionTtlMs`,
//   with a conditional write that succeeds only when the flag ends within half of that, so many
//   throttled instances do not all write it;
// - governed mode (while the flag is on): each invoke first takes one of its tenant's `cap` step
//   slots, held until the step's deadline (an expired slot is free again) and given back when the
//   invoke returns, however it ends. At the cap the step is refused 429
//   `too_many_concurrent_steps` (as by the per-process cap; the HTTP layer paces its Retry-After),
//   and the flag is extended, so it stays on while some tenant keeps pressing its cap.
// - always (a deployment's choice, `always`): every step takes a slot, so each tenant's
//   `concurrent_steps` quota holds across instances at all times, for two writes per step.
//
// The store behind it is the port below (DynamoDB: store/dynamodb-executor-governor.ts; in memory
// for the unit tier: test/tenancy/in-memory-executor-governor.ts).
import { TooManyConcurrentStepsError } from "../core/errors.js";

/** One of a tenant's step slots, held by one step. */
export interface StepSlot {
  readonly tenantId: string;
  readonly index: number;
  /** Who holds it: a release gives back only the slot this step still holds. */
  readonly token: string;
}

/** What the governor needs of a store shared by every API instance. */
export interface ExecutorGovernorStore {
  /** Until when (epoch ms) the executor is marked contended; 0 when it never was. May be stale. */
  readContendedUntil(): Promise<number>;
  /**
   * Marks the executor contended until `untilMs`, unless it is already marked until `keepFromMs`
   * or later (then nothing is written).
   * @returns whether this call wrote the mark
   */
  markContended(untilMs: number, keepFromMs: number): Promise<boolean>;
  /**
   * Takes one of the tenant's step slots `0 .. cap-1` that is free or whose holder's time ended
   * (`heldUntil` < `nowMs`), holding it until `untilMs`.
   * @returns the slot, or undefined when every slot is held (the tenant is at its cap)
   */
  takeStepSlot(tenantId: string, cap: number, untilMs: number, nowMs: number): Promise<StepSlot | undefined>;
  /** Gives a slot back (nothing when another step has taken it since its time ended). */
  releaseStepSlot(slot: StepSlot): Promise<void>;
}

/** Options of {@link ExecutorGovernor}. */
export interface ExecutorGovernorOpts {
  readonly store: ExecutorGovernorStore;
  /** How long one read of the contention flag is trusted by this instance. @default 2000 */
  readonly checkIntervalMs?: number;
  /** How long a throttle (or a refusal at a cap) keeps the executor governed. @default 30000 */
  readonly contentionTtlMs?: number;
  /** Clock in ms. @default Date.now */
  readonly now?: () => number;
  /** Where failures of best-effort work (a slot release, a mark) are logged. @default stderr */
  readonly logError?: (message: string, err: unknown) => void;
  /**
   * Govern every step, contended or not: each tenant's cap (its `concurrent_steps` quota) then
   * holds across instances at all times, for two more writes per step. @default false
   */
  readonly always?: boolean;
}

/** Gives a step slot back (never rejects); a no-op in normal mode. */
export type ReleaseStepSlot = () => Promise<void>;

const NO_SLOT: ReleaseStepSlot = async () => {};

const defaultLogError = (message: string, err: unknown) =>
  console.error(JSON.stringify({ level: "ERROR", message, error: String(err) }));

export class ExecutorGovernor {
  private readonly store: ExecutorGovernorStore;
  private readonly checkIntervalMs: number;
  private readonly contentionTtlMs: number;
  private readonly now: () => number;
  private readonly logError: (message: string, err: unknown) => void;
  private readonly always: boolean;
  /** The flag as last read (or written) by this instance. */
  private known: { readAtMs: number; untilMs: number } | undefined;
  private pendingRead: Promise<number> | undefined;
  private pendingMark: Promise<void> | undefined;

  constructor(opts: ExecutorGovernorOpts) {
    this.store = opts.store;
    this.checkIntervalMs = opts.checkIntervalMs ?? 2_000;
    this.contentionTtlMs = opts.contentionTtlMs ?? 30_000;
    this.now = opts.now ?? Date.now;
    this.logError = opts.logError ?? defaultLogError;
    this.always = opts.always ?? false;
    if (!(this.checkIntervalMs >= 0) || !(this.contentionTtlMs > 0)) {
      throw new Error("ExecutorGovernor: checkIntervalMs >= 0 and contentionTtlMs > 0");
    }
  }

  /**
   * Before an invoke of `tenantId`: in normal mode nothing (the cached flag); while governed, one
   * of the tenant's `cap` slots, held until `untilMs` (the step's deadline).
   * @returns the slot's release, to await once the invoke has returned or failed
   * @throws TooManyConcurrentStepsError while governed and the tenant holds `cap` slots
   */
  async admit(tenantId: string, cap: number, untilMs: number): Promise<ReleaseStepSlot> {
    if (!Number.isFinite(cap)) return NO_SLOT;
    const nowMs = this.now();
    if (!this.always) {
      const known = this.known;
      const untilKnown =
        known && nowMs - known.readAtMs < this.checkIntervalMs ? known.untilMs : await this.readFlag(nowMs);
      if (untilKnown <= nowMs) return NO_SLOT;
    }
    const slot = await this.store.takeStepSlot(tenantId, Math.max(1, Math.floor(cap)), untilMs, nowMs);
    if (!slot) {
      // A tenant pressing its cap is the contention the flag is for: keep governing.
      await this.markContended();
      throw new TooManyConcurrentStepsError(cap);
    }
    return async () => {
      try {
        await this.store.releaseStepSlot(slot);
      } catch (err) {
        // The slot frees itself when its time ends.
        this.logError("could not release a step slot", err);
      }
    };
  }

  /** An invoke was throttled by the executor: the executor is contended (never rejects). */
  async throttled(): Promise<void> {
    await this.markContended();
  }

  /** Whether this instance governs steps now, from its cached flag (tests, logs). */
  governing(): boolean {
    return this.always || (this.known?.untilMs ?? 0) > this.now();
  }

  /** Reads the flag, one read at a time for all callers of this instance. */
  private readFlag(nowMs: number): Promise<number> {
    if (this.pendingRead) return this.pendingRead;
    const read = this.store
      .readContendedUntil()
      .then((untilMs) => {
        // A mark of our own may be newer than what an eventually consistent read returns.
        const best = Math.max(untilMs, this.known?.untilMs ?? 0);
        this.known = { readAtMs: nowMs, untilMs: best };
        return best;
      })
      .catch((err: unknown) => {
        // The store is unreachable: the step goes on as in normal mode (the executor still
        // throttles, and the step's own store reads fail on their own).
        this.logError("could not read the executor contention flag", err);
        // Tried again after the interval, not by every step meanwhile.
        const untilMs = this.known?.untilMs ?? 0;
        this.known = { readAtMs: nowMs, untilMs };
        return untilMs;
      })
      .finally(() => {
        this.pendingRead = undefined;
      });
    this.pendingRead = read;
    return read;
  }

  /**
   * Marks the executor contended for `contentionTtlMs`, unless this instance knows it is marked
   * for more than half of that already; the store's condition does the same across instances.
   */
  private markContended(): Promise<void> {
    const nowMs = this.now();
    const keepFromMs = nowMs + this.contentionTtlMs / 2;
    if ((this.known?.untilMs ?? 0) >= keepFromMs) return Promise.resolve();
    if (this.pendingMark) return this.pendingMark;
    const untilMs = nowMs + this.contentionTtlMs;
    const mark = this.store
      .markContended(untilMs, keepFromMs)
      .then((wrote) => {
        // Written by us, or found marked at least until keepFromMs by another instance.
        this.known = {
          readAtMs: nowMs,
          untilMs: wrote ? untilMs : Math.max(keepFromMs, this.known?.untilMs ?? 0),
        };
      })
      .catch((err: unknown) => this.logError("could not mark the executor contended", err))
      .finally(() => {
        this.pendingMark = undefined;
      });
    this.pendingMark = mark;
    return mark;
  }
}
