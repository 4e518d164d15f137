import type { Logger } from 'pino';
import type { KubeVirt } from './kubevirt';
import type { VirtualMachine } from './kubevirt-types';

// contract §5: activity (io.virtwake.vm.activity, every command, every proxied
// request) is stamped on the VM as virtwake.io/last-activity, at most once per
// VM per minute whatever the event rate.
//
// Three things keep the writes down, cheapest first:
//  - the stamp the VM already carries: the dispatcher has just read the VM, so
//    a stamp another replica wrote less than a minute ago costs nothing to see;
//  - this process's own memory of what it wrote (a burst arrives faster than
//    the VM reads it sees reflect the write);
//  - one write in flight per VM: concurrent events wait for it instead of
//    writing too.
// Across N replicas that is at most N writes per VM per minute, and usually one.
//
// The write is a JSON merge patch holding only this annotation: a merge patch
// changes exactly the keys it names, so it cannot undo anyone else's edit to
// the VM, and it needs no resourceVersion. A JSON patch with a `test` would
// also serialise writers of this one key, but then any unrelated change to the
// VM (status churn while it boots) fails the write and costs a re-read; two
// replicas racing here write timestamps seconds apart, and either will do.

export const LAST_ACTIVITY = 'virtwake.io/last-activity';
export const ACTIVITY_INTERVAL_MS = 60_000;
/** After a failed write, try again this much sooner than a full interval. */
const RETRY_AFTER_FAILURE_MS = 5_000;
/** Above this many remembered VMs, entries older than an interval are dropped. */
const MEMORY_SWEEP_AT = 20_000;

export interface ActivityRecorder {
  /** Never rejects: a failure is logged and the command goes on. */
  record(vm: VirtualMachine): Promise<void>;
  /** PATCHes sent so far (for tests and the log). */
  writes(): number;
}

export interface ActivityDeps {
  kubevirt: KubeVirt;
  now(): Date;
  log: Logger;
}

export function activityRecorder(deps: ActivityDeps): ActivityRecorder {
  const { kubevirt, log } = deps;
  /** namespace/name → epoch ms of the newest stamp known to be on the VM. */
  const known = new Map<string, number>();
  const inFlight = new Map<string, Promise<void>>();
  let writes = 0;

  function remember(key: string, at: number): void {
    if (known.size >= MEMORY_SWEEP_AT && !known.has(key)) {
      const cutoff = deps.now().getTime() - ACTIVITY_INTERVAL_MS;
      for (const [k, t] of known) if (t < cutoff) known.delete(k);
    }
    known.set(key, Math.max(at, known.get(key) ?? -Infinity));
  }

  async function write(namespace: string, name: string, key: string, now: number): Promise<void> {
    writes++;
    try {
      await kubevirt.mergePatch('virtualmachines', namespace, name, {
        metadata: { annotations: { [LAST_ACTIVITY]: rfc3339(now) } },
      });
      remember(key, now);
    } catch (err) {
      // Not the command's problem: note it, and let the next event try again a little later.
      remember(key, now - ACTIVITY_INTERVAL_MS + RETRY_AFTER_FAILURE_MS);
      log.warn({ vm: key, err: (err as Error).message }, 'could not record activity');
    }
  }

  return {
    writes: () => writes,
    record(vm) {
      const namespace = vm.metadata.namespace;
      const name = vm.metadata.name;
      if (!namespace || !name) return Promise.resolve();
      const key = `${namespace}/${name}`;
      const now = deps.now().getTime();
      const stamped = parseStamp(vm.metadata.annotations?.[LAST_ACTIVITY], now);
      if (stamped !== undefined) remember(key, stamped);
      const last = known.get(key);
      if (last !== undefined && now - last < ACTIVITY_INTERVAL_MS) return inFlight.get(key) ?? Promise.resolve();
      const pending = inFlight.get(key);
      if (pending) return pending;
      const p = write(namespace, name, key, now).finally(() => inFlight.delete(key));
      inFlight.set(key, p);
      return p;
    },
  };
}

/** A stamp from the future beyond one interval (a skewed clock, a hand edit) is ignored, so it cannot block writes. */
export function parseStamp(text: string | undefined, now: number): number | undefined {
  if (!text) return undefined;
  const t = Date.parse(text);
  if (Number.isNaN(t) || t > now + ACTIVITY_INTERVAL_MS) return undefined;
  return t;
}

/** metav1.Time style: RFC 3339 in UTC at second precision. */
export function rfc3339(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}
