// A fair queue of slots shared by tenants (issue 10 point 7). Used twice: in front of a step's
// first store read (admission, step-admission.ts) and in front of each executor call
// (executor/fair-share.ts). The rules:
//   - at most `maxRunning` holders at once, all tenants together;
//   - at most `tenantMaxRunning` of them belong to one tenant, so a tenant that floods never holds
//     every slot: another tenant finds one free, or takes the next one that frees;
//   - a tenant's further callers wait in its own queue (FIFO within the tenant), at most
//     `tenantMaxWaiting` of them; beyond it, and past `maxWaitMs` or the caller's deadline, the call
//     is refused (429 `too_many_concurrent_steps` with Retry-After) and nothing ran;
//   - a freed slot goes to the waiting tenant with the fewest holders (rotation among equals), so
//     a tenant with nothing running is served before any of a flooding tenant's waiting callers.
// A caller therefore waits behind at most one freed slot per tenant ahead of it in the rotation,
// never behind another tenant's queue.
import { TooManyConcurrentStepsError } from "../core/errors.js";

/** Limits of a {@link FairQueue}. */
export interface FairQueueLimits {
  /** Holders at once, all tenants. */
  readonly maxRunning: number;
  /** Holders of one tenant at once. */
  readonly tenantMaxRunning: number;
  /** Callers of one tenant waiting for a slot. */
  readonly tenantMaxWaiting: number;
  /** Longest wait for a slot (ms); a caller's deadline, when sooner, wins. @default 10000 */
  readonly maxWaitMs?: number;
}

/** How recently another tenant must have asked for a slot for the lowered per-tenant cap to apply. */
export const CONTENTION_WINDOW_MS = 2_000;

/** Gives the slot back; calling it again does nothing. */
export type ReleaseSlot = () => void;

/** Counts of the queue, for tests and benchmarks. */
export interface FairQueueStats {
  readonly running: number;
  readonly waiting: number;
  readonly tenants: number;
  /** Calls refused so far (queue full or waited too long). */
  readonly refused: number;
}

interface Waiter {
  start(): void;
}

/** One tenant's holders and waiting callers. */
interface Lane {
  running: number;
  readonly waiting: Waiter[];
  /** Whether the lane is in the rotation of lanes with waiting callers. */
  queued: boolean;
}

export class FairQueue {
  private readonly lanes = new Map<string, Lane>();
  private readonly rotation: string[] = [];
  private running = 0;
  private refused = 0;
  private readonly maxWaitMs: number;
  /** The per-tenant cap in force: `limits.tenantMaxRunning`, or less while the process is busy. */
  private tenantMaxRunning: number;
  /** When each tenant last asked for a slot (epoch ms), to tell whether tenants share the queue. */
  private readonly lastAskedMs = new Map<string, number>();

  constructor(private readonly limits: FairQueueLimits) {
    for (const [name, value] of Object.entries(limits)) {
      if (!(typeof value === "number" && value >= 1)) throw new Error(`FairQueue: ${name} must be >= 1`);
    }
    this.maxWaitMs = limits.maxWaitMs ?? 10_000;
    this.tenantMaxRunning = limits.tenantMaxRunning;
  }

  /**
   * Lowers (or restores) the per-tenant cap, between 1 and the configured one (load-governor.ts).
   * Holders over a lowered cap finish; their tenant's next callers wait until it is under it.
   */
  setTenantMaxRunning(n: number): void {
    const before = this.tenantMaxRunning;
    this.tenantMaxRunning = Math.max(1, Math.min(this.limits.tenantMaxRunning, Math.floor(n)));
    if (this.tenantMaxRunning > before) {
      // Lanes left the rotation at the old cap: those with waiting callers may go on now.
      for (const [tenantId, lane] of this.lanes) if (lane.waiting.length > 0) this.enqueue(tenantId, lane);
    }
    this.dispatch();
  }

  /** The per-tenant cap in force. */
  currentTenantMaxRunning(): number {
    return this.tenantMaxRunning;
  }

  /**
   * The cap a tenant meets now: the lowered one only while another tenant asked for a slot within
   * `CONTENTION_WINDOW_MS`. A tenant alone keeps the configured cap however busy the process is
   * (nobody to be fair to: holding it back would only leave capacity idle), and a tenant that
   * steps one at a time, with pauses between its steps, still counts as present.
   */
  private tenantCap(): number {
    if (this.tenantMaxRunning >= this.limits.tenantMaxRunning) return this.tenantMaxRunning;
    const since = Date.now() - CONTENTION_WINDOW_MS;
    for (const [tenantId, at] of this.lastAskedMs) if (at < since) this.lastAskedMs.delete(tenantId);
    return this.lastAskedMs.size > 1 ? this.tenantMaxRunning : this.limits.tenantMaxRunning;
  }

  /**
   * Takes a slot for `tenantId`, waiting its turn when none is free to it.
   * @param deadlineMs epoch ms past which the caller no longer wants the slot
   * @throws TooManyConcurrentStepsError when the tenant's queue is full or the wait ran out
   */
  async acquire(tenantId: string, deadlineMs?: number): Promise<ReleaseSlot> {
    this.lastAskedMs.delete(tenantId); // re-inserted last: the map stays in asking order
    this.lastAskedMs.set(tenantId, Date.now());
    let lane = this.lanes.get(tenantId);
    if (!lane) {
      lane = { running: 0, waiting: [], queued: false };
      this.lanes.set(tenantId, lane);
    }
    // At once only when nobody of this tenant waits ahead (no overtaking within a tenant). Another
    // tenant waits only while every slot is taken or it is at its own cap, so none is passed over.
    if (
      lane.waiting.length === 0 &&
      lane.running < this.tenantCap() &&
      this.running < this.limits.maxRunning
    ) {
      this.take(lane);
      return this.releaser(tenantId, lane);
    }
    if (lane.waiting.length >= this.limits.tenantMaxWaiting) {
      this.forgetIfIdle(tenantId, lane);
      throw this.refusal();
    }
    const owned = lane;
    const waitMs = Math.min(
      this.maxWaitMs,
      deadlineMs === undefined ? Number.POSITIVE_INFINITY : deadlineMs - Date.now(),
    );
    await new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        start: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(
        () => {
          const i = owned.waiting.indexOf(waiter);
          if (i >= 0) owned.waiting.splice(i, 1);
          this.forgetIfIdle(tenantId, owned);
          reject(this.refusal());
        },
        Math.max(0, waitMs),
      );
      owned.waiting.push(waiter);
      this.enqueue(tenantId, owned);
      this.dispatch();
    });
    return this.releaser(tenantId, owned);
  }

  stats(): FairQueueStats {
    let waiting = 0;
    for (const lane of this.lanes.values()) waiting += lane.waiting.length;
    return { running: this.running, waiting, tenants: this.lanes.size, refused: this.refused };
  }

  /** Holders and waiting callers of one tenant. */
  tenantStats(tenantId: string): { running: number; waiting: number } {
    const lane = this.lanes.get(tenantId);
    return { running: lane?.running ?? 0, waiting: lane?.waiting.length ?? 0 };
  }

  private refusal(): TooManyConcurrentStepsError {
    this.refused += 1;
    return new TooManyConcurrentStepsError(this.limits.tenantMaxRunning + this.limits.tenantMaxWaiting);
  }

  private take(lane: Lane): void {
    lane.running += 1;
    this.running += 1;
  }

  private releaser(tenantId: string, lane: Lane): ReleaseSlot {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      lane.running -= 1;
      this.running -= 1;
      if (lane.waiting.length > 0) this.enqueue(tenantId, lane);
      else this.forgetIfIdle(tenantId, lane);
      this.dispatch();
    };
  }

  private enqueue(tenantId: string, lane: Lane): void {
    if (lane.queued) return;
    lane.queued = true;
    this.rotation.push(tenantId);
  }

  /**
   * Gives each free slot to the waiting tenant with the fewest holders (the first in the rotation
   * among equals), which then goes to the back of the rotation.
   */
  private dispatch(): void {
    const cap = this.tenantCap();
    while (this.running < this.limits.maxRunning && this.rotation.length > 0) {
      let best = -1;
      let bestRunning = Number.POSITIVE_INFINITY;
      for (let i = 0; i < this.rotation.length; i++) {
        const tenantId = this.rotation[i] as string;
        const lane = this.lanes.get(tenantId);
        if (!lane || lane.waiting.length === 0 || lane.running >= cap) {
          // Its waiters gave up, or it is at its own cap: out of the rotation until one of its
          // holders releases (the releaser puts it back).
          this.rotation.splice(i, 1);
          i -= 1;
          if (lane) {
            lane.queued = false;
            this.forgetIfIdle(tenantId, lane);
          }
          continue;
        }
        if (lane.running < bestRunning) {
          best = i;
          bestRunning = lane.running;
        }
      }
      if (best < 0) return;
      const tenantId = this.rotation.splice(best, 1)[0] as string;
      const lane = this.lanes.get(tenantId) as Lane;
      const waiter = lane.waiting.shift() as Waiter;
      this.take(lane);
      if (lane.waiting.length > 0) this.rotation.push(tenantId);
      else lane.queued = false;
      waiter.start();
    }
  }

  private forgetIfIdle(tenantId: string, lane: Lane): void {
    if (lane.running === 0 && lane.waiting.length === 0 && !lane.queued) this.lanes.delete(tenantId);
  }
}
