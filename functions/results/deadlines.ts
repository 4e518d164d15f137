import type { CloudEvent } from '../runtime/cloudevents/event';
import type { Runtime } from '../runtime/runtime';
import type { VirtualMachine } from '../runtime/kubevirt-types';
import { format } from '../runtime/labels';
import { eachPage } from '../runtime/paging';
import { Entry, LEDGER, pendingEntries, readLedger, upsert } from '../runtime/ledger';
import { updateLedger } from '../runtime/requests';
import { sinkFrom } from '../runtime/sink';
import { timeoutEvent } from './events';

// contract §2: a request whose target was not observed by its deadline is
// reported `<type>.failed` with reason Timeout and the state seen. Checked on
// the reaper's PingSource tick over the VMs its pass lists (opted in, not
// protected: a protected VM's timeouts are not reported); the events go to the
// Broker through K_SINK (no delivery is waiting for them). Each is sent first
// and then marked done in the VM's ledger (resourceVersion-guarded): a tick
// that cannot deliver tries again on the next one, and a tick that finds it
// marked sends nothing. Two ticks at the same moment may both send it: the id
// is the same (events.ts).

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

/** Whether the VM records a pending request past its deadline (cheap: no ledger, no parse). */
export function hasDue(vm: VirtualMachine, now: number): boolean {
  if (!vm.metadata.annotations?.[LEDGER]) return false;
  return dueEntries(vm, now).length > 0;
}

function dueEntries(vm: VirtualMachine, now: number): Entry[] {
  return pendingEntries(readLedger(vm)).filter((e) => (e.pending?.deadline ?? Infinity) <= now);
}

async function sweepOne(rt: Runtime, vm: VirtualMachine, summary: SweepSummary): Promise<void> {
  const now = rt.now();
  const due = dueEntries(vm, now.getTime());
  if (due.length === 0) return;
  const namespace = vm.metadata.namespace ?? rt.config.namespace;
  const name = vm.metadata.name;
  const events = new Map<string, CloudEvent>(due.map((e) => [e.key, timeoutEvent(e, namespace, name, vm, now)]));
  const lost = new Set((await sinkFrom(rt.config.sink).send([...events.values()])).map((e) => e.id));
  const sent = due.filter((e) => !lost.has((events.get(e.key) as CloudEvent).id));
  summary.undelivered += due.length - sent.length;
  if (lost.size)
    rt.log.warn(
      { vm: `${namespace}/${name}`, undelivered: lost.size, sink: rt.config.sink ?? '(K_SINK not set)' },
      'timeouts not delivered',
    );
  if (sent.length === 0) return;
  await updateLedger(
    rt.kubevirt,
    namespace,
    name,
    vm,
    (l) => {
      let next = l;
      for (const e of sent) {
        const current = l.entries.find((x) => x.key === e.key);
        if (!current || current.state === 'done') continue;
        const done: Entry = { ...current, state: 'done', outcome: 'failed', reason: 'Timeout', pending: undefined };
        next = upsert(next, done);
      }
      return next === l ? undefined : next;
    },
    () => now.getTime(),
  );
  summary.timedOut += sent.length;
}
