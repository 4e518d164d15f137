// Every timestamp the simulator writes comes from one injectable clock, so tests can
// pin creationTimestamp/startTime/conditions and move time past deadlines on purpose.

export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

type ClockListener = () => void;

export class ManualClock implements Clock {
  private current: number;
  private readonly listeners = new Set<ClockListener>();

  constructor(start?: Date) {
    this.current = (start ?? new Date()).getTime();
  }

  now(): Date {
    return new Date(this.current);
  }

  set(d: Date): void {
    this.current = d.getTime();
    this.notify();
  }

  advance(ms: number): void {
    this.current += ms;
    this.notify();
  }

  /** The simulator re-checks deadlines when time moves instead of polling a frozen clock. */
  subscribe(listener: ClockListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private notify(): void {
    for (const l of [...this.listeners]) l();
  }
}

export function subscribeToClock(clock: Clock, listener: ClockListener): (() => void) | undefined {
  const c = clock as Partial<ManualClock>;
  return typeof c.subscribe === 'function' ? c.subscribe.call(clock, listener) : undefined;
}

/** metav1.Time serialises at second precision in RFC 3339. */
export function formatTime(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
