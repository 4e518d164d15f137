// Progress timers (controller steps) are tracked so settle() can tell when the simulated
// cluster has nothing left in flight. Keyed timers collapse repeated requests for the same
// reconcile into one, like a controller work queue.

type Waiter = () => void;

export class Scheduler {
  private readonly pending = new Map<string, NodeJS.Timeout>();
  private anon = 0;
  private readonly idleWaiters = new Set<Waiter>();
  private closed = false;
  private paused = false;
  private readonly deferred = new Map<string, { fn: () => void; ms: number }>();

  /** Run fn after ms; a pending timer with the same key wins and this call is dropped. */
  schedule(key: string | undefined, ms: number, fn: () => void): void {
    if (this.closed) return;
    const k = key ?? `#${++this.anon}`;
    if (this.pending.has(k) || this.deferred.has(k)) return;
    if (this.paused) {
      this.deferred.set(k, { fn, ms });
      return;
    }
    const t = setTimeout(() => {
      this.pending.delete(k);
      if (this.paused) {
        // Came due while held: run first thing after resume.
        this.deferred.set(k, { fn, ms: 0 });
        this.checkIdle();
        return;
      }
      try {
        fn();
      } finally {
        this.checkIdle();
      }
    }, ms);
    this.pending.set(k, t);
  }

  cancel(key: string): void {
    const t = this.pending.get(key);
    if (t) {
      clearTimeout(t);
      this.pending.delete(key);
      this.checkIdle();
    }
    this.deferred.delete(key);
  }

  /** Hold all controllers (timers keep their place in line and fire on resume). */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    const work = [...this.deferred.entries()];
    this.deferred.clear();
    for (const [k, { fn, ms }] of work) this.schedule(k, ms, fn);
    this.checkIdle();
  }

  get size(): number {
    return this.pending.size;
  }

  pendingKeys(): string[] {
    return [...this.pending.keys()];
  }

  /**
   * Resolve once no timers are pending (two consecutive idle checks, so work scheduled
   * by a just-finished step counts). Paused work does not count as in flight.
   */
  settle(timeoutMs = 10_000): Promise<void> {
    return new Promise((resolve, reject) => {
      let done = false;
      const timer = setTimeout(() => {
        if (done) return;
        done = true;
        this.idleWaiters.delete(onIdle);
        reject(
          new Error(
            `simulator did not settle within ${timeoutMs}ms; pending: ${this.pendingKeys().slice(0, 10).join(', ')}`,
          ),
        );
      }, timeoutMs);
      const onIdle = () => {
        setImmediate(() => {
          if (done) return;
          if (this.pending.size === 0) {
            done = true;
            clearTimeout(timer);
            this.idleWaiters.delete(onIdle);
            resolve();
          }
        });
      };
      this.idleWaiters.add(onIdle);
      if (this.pending.size === 0) onIdle();
    });
  }

  close(): void {
    this.closed = true;
    for (const t of this.pending.values()) clearTimeout(t);
    this.pending.clear();
    this.deferred.clear();
    this.checkIdle();
  }

  private checkIdle(): void {
    if (this.pending.size !== 0) return;
    for (const w of [...this.idleWaiters]) w();
  }
}
