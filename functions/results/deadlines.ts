import type { CloudEvent } from '../runtime/cloudevents/event';
import type { Runtime } from '../runtime/runtime';
import type { VirtualMachine } from '../runtime/kubevirt-types';
import { format } from '../runtime/labels';
import { eachPage } from '../runtime/paging';
import { Entry, Ledger, LEDGER, pendingEntries, readLedger, upsert } from '../runtime/ledger';
import { updateLedger } from '../runtime/requests';
import { sinkFrom } from '../runtime/sink';
import { timeoutEvent } from './events';

// contract §2: a request whose target was not observed by its deadline is
// reported `<type>.failed` with reason Timeout and the state seen. Checked on
// the reaper's PingSource tick over the VMs its pass lists (opted in, not
// protected: a protected VM's timeouts are not reported); the events go to the
// Broker through K_SINK (no delivery is waiting for them).
//
// One outcome per request: the ledger entry decides. The tick first settles
// the entry failed/Timeout in a write guarded by the VM's resourceVersion, and
// only then sends the event; the results function settles `.completed` the
// same way. Whichever writes second gets a conflict, re-reads, finds the entry
// settled and sends nothing. A timeout settled but not delivered (K_SINK
// down) stays marked `unreported` and is sent again (same id, events.ts) on
// the next tick until it is.

const PAGE = 250;

export interface SweepSummary {
  timedOut: number;
  /** Could not be delivered to K_SINK (or K_SINK is not set); tried again on the next tick. */
  undelivered: number;
}

/**
 * Over `vms` (the VMs the reaper's pass listed: no list of its own), or, when
 * not given, over the opted-in VMs of the scope.
 */
export async function sweepDeadlines(rt: Runtime, vms?: VirtualMachine[]): Promise<SweepSummary> {
  const summary: SweepSummary = { timedOut: 0, undelivered: 0 };
  if (vms) {
    for (const vm of vms) await sweepOne(rt, vm, summary);
    return summary;
  }
  const labelSelector = format(rt.config.vmSelector);
  const scopes = rt.config.namespaces ? [...rt.config.namespaces] : [undefined];
  for (const namespace of scopes) {
    await eachPage(
      (continueToken) => {
        const opts = { labelSelector, limit: PAGE, continueToken };
        return namespace === undefined && rt.kubevirt.listAllNamespaces
          ? rt.kubevirt.listAllNamespaces<VirtualMachine>('virtualmachines', opts)
          : rt.kubevirt.list<VirtualMachine>('virtualmachines', namespace ?? rt.config.namespace, opts);
      },
      async (page) => {
        for (const vm of page) await sweepOne(rt, vm, summary);
      },
    );
  }
  return summary;
}

/** Whether the VM records a pending request past its deadline, or a timeout not yet delivered (cheap: no parse without a ledger). */
export function hasDue(vm: VirtualMachine, now: number): boolean {
  if (!vm.metadata.annotations?.[LEDGER]) return false;
  const l = readLedger(vm);
  return dueEntries(l, now).length > 0 || l.entries.some((e) => e.unreported);
}

function dueEntries(l: Ledger, now: number): Entry[] {
  return pendingEntries(l).filter((e) => (e.pending?.deadline ?? Infinity) <= now);
}

async function sweepOne(rt: Runtime, vm: VirtualMachine, summary: SweepSummary): Promise<void> {
  const now = rt.now();
  const namespace = vm.metadata.namespace ?? rt.config.namespace;
  const name = vm.metadata.name;
  // Settle first (the arbiter), then tell: what this write settled, plus timeouts an earlier tick could not deliver.
  let report: Entry[] = [];
  let seen = vm;
  const written = await updateLedger(
    rt.kubevirt,
    namespace,
    name,
    vm,
    (l, current) => {
      seen = current;
      const due = dueEntries(l, now.getTime());
      const timedOut = due.map((e): Entry => ({
        ...e,
        state: 'done',
        outcome: 'failed',
        reason: 'Timeout',
        unreported: true,
      }));
      report = [...l.entries.filter((e) => e.unreported), ...timedOut];
      return timedOut.length ? timedOut.reduce(upsert, l) : undefined;
    },
    () => now.getTime(),
  );
  if (report.length === 0) return;
  const at = written ?? seen;
  const events = new Map<string, CloudEvent>(report.map((e) => [e.key, timeoutEvent(e, namespace, name, at, now)]));
  const lost = new Set((await sinkFrom(rt.config.sink).send([...events.values()])).map((e) => e.id));
  const sent = report.filter((e) => !lost.has((events.get(e.key) as CloudEvent).id));
  summary.undelivered += report.length - sent.length;
  summary.timedOut += sent.length;
  if (lost.size)
    rt.log.warn(
      { vm: `${namespace}/${name}`, undelivered: lost.size, sink: rt.config.sink ?? '(K_SINK not set)' },
      'timeouts not delivered; the next tick sends them again',
    );
  if (sent.length === 0) return;
  // Delivered: no longer kept for the next tick. A failure here only means one more send of the same id.
  await updateLedger(
    rt.kubevirt,
    namespace,
    name,
    at,
    (l) => {
      let next = l;
      for (const e of sent) {
        const current = l.entries.find((x) => x.key === e.key);
        if (!current?.unreported) continue;
        const reported: Entry = { ...current, pending: undefined };
        delete reported.unreported;
        next = upsert(next, reported);
      }
      return next === l ? undefined : next;
    },
    () => now.getTime(),
  ).catch((err: unknown) =>
    rt.log.warn(
      { vm: `${namespace}/${name}`, err: (err as Error).message },
      'timeouts delivered but not marked so; the next tick sends them again',
    ),
  );
}
