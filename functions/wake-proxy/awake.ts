import type { VirtualMachine } from '../runtime/kubevirt-types';

// A VM in use through the proxy stays awake for as long as the use lasts, not
// only at its start: while any TCP connection, websocket tunnel or streamed
// HTTP exchange to a VM is open, its activity is recorded every interval. The
// record is the virtwake.io/last-activity stamp on the VM (throttled to one
// write per VM per minute by the recorder), so a reaper in any replica sees it.

export interface KeepAwake {
  /** Note an open use of `vm`; the returned function ends it. `tick` runs on each interval while it is open. */
  hold(key: string, vm: VirtualMachine, tick?: () => void): () => void;
  /** Stop every timer (shutdown). */
  stop(): void;
}

interface Entry {
  vm: VirtualMachine;
  uses: Set<{ tick?: () => void }>;
  timer: NodeJS.Timeout;
}

export function keepAwake(record: ((vm: VirtualMachine) => Promise<void>) | undefined, intervalMs: number): KeepAwake {
  const entries = new Map<string, Entry>();
  return {
    hold(key, vm, tick) {
      let e = entries.get(key);
      if (!e) {
        const entry: Entry = {
          vm,
          uses: new Set(),
          timer: setInterval(() => {
            record?.(entry.vm).catch(() => {});
            for (const u of entry.uses) u.tick?.();
          }, intervalMs),
        };
        entry.timer.unref();
        entries.set(key, (e = entry));
      }
      e.vm = vm;
      const use = { tick };
      e.uses.add(use);
      const held = e;
      let released = false;
      return () => {
        if (released) return;
        released = true;
        held.uses.delete(use);
        if (held.uses.size === 0 && entries.get(key) === held) {
          clearInterval(held.timer);
          entries.delete(key);
        }
      };
    },
    stop() {
      for (const e of entries.values()) clearInterval(e.timer);
      entries.clear();
    },
  };
}
