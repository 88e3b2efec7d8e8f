// The executor governor's store in memory (functions/src/admission/executor-governor.ts's port),
// for the unit tier: conditions evaluated as the DynamoDB adapter's are
// (store/dynamodb-executor-governor.ts), and every call counted so tests can assert what was (not)
// asked of the store.
import type { ExecutorGovernorStore, StepSlot } from "../../functions/src/admission/executor-governor.js";
import { CallCounts } from "./in-memory-repositories.js";

export class InMemoryExecutorGovernorStore implements ExecutorGovernorStore {
  readonly calls = new CallCounts();
  contendedUntil = 0;
  /** Held slots by `tenant#index`: until when, and by whom. */
  readonly slots = new Map<string, { heldUntil: number; token: string }>();
  private tokens = 0;
  /** When set, every call rejects with it (the store is unreachable). */
  failWith: Error | undefined;

  async readContendedUntil(): Promise<number> {
    this.calls.count("readContendedUntil");
    if (this.failWith) throw this.failWith;
    return this.contendedUntil;
  }

  async markContended(untilMs: number, keepFromMs: number): Promise<boolean> {
    this.calls.count("markContended");
    if (this.failWith) throw this.failWith;
    if (this.contendedUntil >= keepFromMs) return false;
    this.contendedUntil = untilMs;
    return true;
  }

  async takeStepSlot(
    tenantId: string,
    cap: number,
    untilMs: number,
    nowMs: number,
  ): Promise<StepSlot | undefined> {
    this.calls.count("takeStepSlot");
    if (this.failWith) throw this.failWith;
    for (let index = 0; index < cap; index++) {
      const key = `${tenantId}#${index}`;
      const held = this.slots.get(key);
      if (held && held.heldUntil >= nowMs) continue;
      const token = `t${++this.tokens}`;
      this.slots.set(key, { heldUntil: untilMs, token });
      return { tenantId, index, token };
    }
    return undefined;
  }

  async releaseStepSlot(slot: StepSlot): Promise<void> {
    this.calls.count("releaseStepSlot");
    if (this.failWith) throw this.failWith;
    const key = `${slot.tenantId}#${slot.index}`;
    if (this.slots.get(key)?.token === slot.token) this.slots.delete(key);
  }

  /** Slots of `tenantId` held at `nowMs`. */
  heldBy(tenantId: string, nowMs: number): number {
    let n = 0;
    for (const [key, held] of this.slots) if (key.startsWith(`${tenantId}#`) && held.heldUntil >= nowMs) n++;
    return n;
  }
}
