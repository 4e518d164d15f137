// How many requests are being held for each VM while it wakes. The bound is
// per VM so one slow VM cannot take the proxy's memory and sockets from the
// others; a request that finds its VM's queue full is answered 503 at once.

export interface WakeQueue {
  /** Take a place in `vm`'s queue; false when it is full. */
  enter(vm: string): boolean;
  leave(vm: string): void;
  size(vm: string): number;
  readonly capacity: number;
}

export function wakeQueue(capacity: number): WakeQueue {
  const held = new Map<string, number>();
  return {
    capacity,
    enter(vm) {
      const n = held.get(vm) ?? 0;
      if (n >= capacity) return false;
      held.set(vm, n + 1);
      return true;
    },
    leave(vm) {
      const n = (held.get(vm) ?? 0) - 1;
      if (n <= 0) held.delete(vm);
      else held.set(vm, n);
    },
    size: (vm) => held.get(vm) ?? 0,
  };
}
