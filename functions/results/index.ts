import type { CloudEvent } from '../runtime/cloudevents/event';
import type { EventFunction, Runtime } from '../runtime/runtime';
import type { VirtualMachine } from '../runtime/kubevirt-types';
import { Entry, Ledger, upsert } from '../runtime/ledger';
import { updateLedger } from '../runtime/requests';
import { sinkFrom } from '../runtime/sink';
import { matches } from '../runtime/labels';
import { judge, KubeObject, Verdict } from '../runtime/targets';
import { resultEvent, stateChanged } from './events';

// dev.knative.apiserver.resource.add|update|delete from the ApiServerSource in
// knative/apiserversource.yaml (mode Resource: data is the object): the
// outcomes that take time (contract §2). The object is a VM, its VMI, or a
// snapshot or restore virtwake created; the requests waiting for it are in the
// VM's ledger (ledger.ts). For each one whose target is reached the entry is
// marked done, with this change event's id, in one write guarded by the VM's
// resourceVersion (a conflict re-reads): of two instances handling two change
// events, only one marks it, so one `<type>.completed` (or `.failed`) is
// published. A redelivery of the event that marked it yields the same result
// again (same id); any other event, none. A new printableStatus of the VM is
// published as io.virtwake.vm.state.changed the same way.
//
// The first event is the reply; more (two requests settled by one change) go
// to K_SINK.

export const CHANGE_TYPES = [
  'dev.knative.apiserver.resource.add',
  'dev.knative.apiserver.resource.update',
  'dev.knative.apiserver.resource.delete',
] as const;

const KINDS = new Set(['VirtualMachine', 'VirtualMachineInstance', 'VirtualMachineSnapshot', 'VirtualMachineRestore']);

export const results: EventFunction = {
  async handle(event, rt) {
    const out = await onChange(event, rt);
    if (out.length === 0) return undefined;
    const [first, ...rest] = out;
    if (rest.length) {
      const lost = await sinkFrom(rt.config.sink).send(rest);
      if (lost.length)
        rt.log.warn(
          { lost: lost.map((e) => `${e.type} ${e.id}`), sink: rt.config.sink ?? '(K_SINK not set)' },
          'results not delivered',
        );
    }
    return { type: first.type, subject: first.subject, data: first.data, event: first };
  },
};

/** The result events this change event settles (in the ledger already when this returns). */
export async function onChange(event: CloudEvent, rt: Runtime): Promise<CloudEvent[]> {
  const object = event.data as KubeObject | undefined;
  if (!object || typeof object !== 'object' || Buffer.isBuffer(object) || !object.metadata) return [];
  const kind = object.kind ?? String(event.extensions.kind ?? '');
  if (!KINDS.has(kind)) return [];
  const namespace = object.metadata.namespace ?? String(event.extensions.namespace ?? '');
  const name = vmNameOf(kind, object);
  if (!namespace || !name) return [];
  if (rt.config.namespaces && !rt.config.namespaces.has(namespace)) return [];

  const vm = await rt.kubevirt.getVM(namespace, name);
  // Opted-in VMs only (contract §4): the ApiServerSource selects them too, but the selector is ours to enforce.
  if (!vm || !matches(rt.config.vmSelector, vm.metadata.labels ?? {})) return [];
  const now = rt.now();
  const changed = { kind, object };
  let out: CloudEvent[] = [];
  await updateLedger(
    rt.kubevirt,
    namespace,
    name,
    vm,
    async (l, current) => {
      const step = await settle(l, current, { namespace, changed, event, rt, now });
      out = step.events;
      return step.ledger;
    },
    () => now.getTime(),
  );
  return out;
}

interface Ctx {
  namespace: string;
  changed: { kind: string; object: KubeObject };
  event: CloudEvent;
  rt: Runtime;
  now: Date;
}

async function settle(l: Ledger, vm: VirtualMachine, c: Ctx): Promise<{ ledger?: Ledger; events: CloudEvent[] }> {
  const name = vm.metadata.name;
  const events: CloudEvent[] = [];
  let next = l;
  let dirty = false;
  for (const e of l.entries) {
    // Settled by this very event before: its redelivery gets the same answer.
    if (e.state === 'done' && e.by === c.event.id && e.outcome) {
      events.push(resultEvent(e, c.namespace, name, verdictOf(e), vm, c.now));
      continue;
    }
    if (e.state === 'done' || !e.pending) continue;
    const v = await judge(e, { namespace: c.namespace, vm, changed: c.changed, kubevirt: c.rt.kubevirt });
    if (!v) continue;
    const done: Entry = { ...e, state: 'done', outcome: v.outcome, by: c.event.id, pending: undefined };
    if (v.reason) done.reason = v.reason;
    else delete done.reason;
    next = upsert(next, done);
    dirty = true;
    events.push(resultEvent(done, c.namespace, name, v, vm, c.now));
  }
  const to = vm.status?.printableStatus;
  const seen = l.seen;
  if (to && seen?.by === c.event.id && seen.from) {
    events.push(stateChanged(vm, seen.from, seen.status, c.event.id, c.now));
  } else if (to && seen?.status !== to) {
    next = { ...next, seen: { status: to, from: seen?.status, by: c.event.id } };
    dirty = true;
    // The first sight of a VM only records it: there is no "from" to tell.
    if (seen) events.push(stateChanged(vm, seen.status, to, c.event.id, c.now));
  }
  return { ledger: dirty ? next : undefined, events };
}

/** What a settled entry came to, to tell it again. */
function verdictOf(e: Entry): Verdict {
  return { outcome: e.outcome ?? 'completed', ...(e.reason && { reason: e.reason }) };
}

function vmNameOf(kind: string, o: KubeObject): string | undefined {
  const spec = o.spec as { source?: { name?: string }; target?: { name?: string } } | undefined;
  if (kind === 'VirtualMachineSnapshot') return spec?.source?.name;
  if (kind === 'VirtualMachineRestore') return spec?.target?.name;
  // A VMI has its VM's name.
  return o.metadata.name;
}
