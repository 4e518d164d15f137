import type { VirtualMachine } from '../runtime/kubevirt-types';

// An open proxied connection keeps its VM awake (contract §5): while a
// websocket, a long download or a long poll is open, the VM's activity is
// refreshed, so the reaper never puts it to sleep under its user. The refresh
// goes through the activity recorder, which writes at most once a minute by the
// runtime's clock; checking every second costs nothing between writes.

/** How often open connections are looked at. */
export const REFRESH_EVERY_MS = 1_000;

export interface OpenConnections {
  /** A connection to `vm` opened; close the handle when it ends (closing twice is harmless). */
  open(vm: VirtualMachine): { close(): void };
  /** VMs with a connection open now. */
  count(): number;
  stop(): void;
}

export function openConnections(
  refresh: (vm: VirtualMachine) => Promise<void> | undefined,
  everyMs = REFRESH_EVERY_MS,
): OpenConnections {
  const open = new Map<string, { vm: VirtualMachine; n: number }>();
  let timer: NodeJS.Timeout | undefined;
  const tick = () => {
    for (const e of open.values()) refresh(e.vm)?.catch(() => {});
  };
  return {
    open(vm) {
      const key = `${vm.metadata.namespace}/${vm.metadata.name}`;
      const e = open.get(key) ?? { vm, n: 0 };
      e.n++;
      open.set(key, e);
      if (!timer) {
        timer = setInterval(tick, everyMs);
        timer.unref();
      }
      let closed = false;
      return {
        close() {
          if (closed) return;
          closed = true;
          if (--e.n > 0) return;
          open.delete(key);
          if (open.size === 0 && timer) {
            clearInterval(timer);
            timer = undefined;
          }
        },
      };
    },
    count: () => open.size,
    stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
      open.clear();
    },
  };
}
