// The local DynamoDB front's locks: a readers-writer lock that keeps reads out of a transaction's
// commit, and per-item state (which transaction holds an item; the order of single writes).
/** A readers-writer lock: many readers at once, or one transaction's commit alone. */
export class ReadersWriterLock {
  private readers = 0;
  private writer = false;
  private readonly waiting: Array<{ exclusive: boolean; resolve: () => void }> = [];

  async shared(): Promise<() => void> {
    if (!this.writer && this.waiting.length === 0) {
      this.readers++;
      return () => this.releaseShared();
    }
    await new Promise<void>((resolve) => this.waiting.push({ exclusive: false, resolve }));
    return () => this.releaseShared();
  }

  async exclusive(): Promise<() => void> {
    if (!this.writer && this.readers === 0) {
      this.writer = true;
      return () => this.releaseExclusive();
    }
    await new Promise<void>((resolve) => this.waiting.push({ exclusive: true, resolve }));
    return () => this.releaseExclusive();
  }

  private releaseShared(): void {
    this.readers--;
    this.drain();
  }

  private releaseExclusive(): void {
    this.writer = false;
    this.drain();
  }

  private drain(): void {
    while (this.waiting.length > 0 && !this.writer) {
      const next = this.waiting[0];
      if (!next) break;
      if (next.exclusive) {
        if (this.readers > 0) break;
        this.waiting.shift();
        this.writer = true;
        next.resolve();
        break;
      }
      this.waiting.shift();
      this.readers++;
      next.resolve();
    }
  }
}

/**
 * Per-item state, as DynamoDB keeps it: which transaction holds an item (others conflict with it
 * instead of waiting), and a mutex that orders the single writes on one item.
 */
export class ItemLocks {
  private readonly held = new Map<string, number>();
  private readonly mutexes = new Map<string, Array<() => void>>();
  private nextTransaction = 1;

  /** Whether an ongoing transaction holds the item. */
  inTransaction(id: string): boolean {
    return this.held.has(id);
  }

  /** Marks every item as held by a new transaction (the caller checked none is held). */
  begin(ids: readonly string[]): number {
    const txn = this.nextTransaction++;
    for (const id of ids) this.held.set(id, txn);
    return txn;
  }

  end(ids: readonly string[], txn: number): void {
    for (const id of ids) if (this.held.get(id) === txn) this.held.delete(id);
  }

  /** Waits until the item is free of other single writes, then holds it until released. */
  async acquire(id: string): Promise<() => void> {
    const queue = this.mutexes.get(id);
    if (!queue) {
      this.mutexes.set(id, []);
    } else {
      await new Promise<void>((resolve) => queue.push(resolve));
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const waiting = this.mutexes.get(id);
      const next = waiting?.shift();
      if (next) next();
      else this.mutexes.delete(id);
    };
  }
}
