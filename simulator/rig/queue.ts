// A work queue as client-go's: a key is processed by one worker at a time, a key added
// while it is processed runs again afterwards, and a failed sync is retried after a delay.

export class KeyQueue {
  private readonly pending = new Map<string, NodeJS.Timeout>();
  private readonly running = new Set<string>();
  private readonly dirty = new Set<string>();
  private closed = false;

  constructor(
    private readonly stepMs: number,
    private readonly sync: (key: string) => Promise<void>,
    private readonly onError: (key: string, e: unknown) => void,
  ) {}

  add(key: string, delayMs = this.stepMs): void {
    if (this.closed) return;
    if (this.running.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.pending.has(key)) return;
    this.pending.set(
      key,
      setTimeout(() => void this.run(key), delayMs),
    );
  }

  private async run(key: string): Promise<void> {
    this.pending.delete(key);
    this.running.add(key);
    let retry = false;
    try {
      await this.sync(key);
    } catch (e) {
      retry = true;
      this.onError(key, e);
    }
    this.running.delete(key);
    if (this.dirty.delete(key) || retry) this.add(key, retry ? Math.max(this.stepMs, 100) : this.stepMs);
  }

  /** Nothing queued or running. */
  idle(): boolean {
    return this.pending.size === 0 && this.running.size === 0;
  }

  close(): void {
    this.closed = true;
    for (const t of this.pending.values()) clearTimeout(t);
    this.pending.clear();
  }
}
