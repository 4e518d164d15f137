import type { CloudEvent } from '../runtime/cloudevents/event';
import type { Outcome } from '../runtime/function';
import type { VirtualMachine } from '../runtime/kubevirt-types';
import type { Entry } from '../runtime/ledger';
import { buildReply, hash, vmReply } from '../runtime/reply';
import type { Verdict } from '../runtime/targets';

// The events a request's later outcome is told with (contract §2). Built with
// the same function as a direct reply, from the request recorded in the
// ledger: same causationid, and an id from the request and the outcome, so a
// `.completed` sent twice (a redelivered change event, a `wait` reply and the
// event after it) is recognisably one.

import { STATE_CHANGED_TYPE as STATE_CHANGED } from '../commands';

/** The recorded command as the request a reply is built for. */
function requestOf(e: Entry): CloudEvent {
  return { specversion: '1.0', id: e.request.id, source: e.request.source, type: e.request.type, extensions: {} };
}

/** `start` for io.virtwake.vm.start: the function that answered, as in a direct reply. */
function fnOf(e: Entry): string {
  return e.request.type.split('.').pop() ?? e.action;
}

export function resultEvent(
  e: Entry,
  namespace: string,
  name: string,
  v: Verdict,
  vm: VirtualMachine | undefined,
  now: Date,
): CloudEvent {
  const o: Outcome = { ...v, vm };
  return vmReply(requestOf(e), fnOf(e), namespace, name, o, now);
}

export function timeoutEvent(e: Entry, namespace: string, name: string, vm: VirtualMachine, now: Date): CloudEvent {
  const seen = vm.status?.printableStatus ?? 'Unknown';
  const target = e.pending?.target ?? 'its target';
  const object = e.pending?.object ? ` (${e.pending.object})` : '';
  return resultEvent(
    e,
    namespace,
    name,
    {
      outcome: 'failed',
      reason: 'Timeout',
      message: `${target}${object} not observed by ${new Date(e.pending?.deadline ?? 0).toISOString()}; the VM is ${seen}`,
    },
    vm,
    now,
  );
}

/** io.virtwake.vm.state.changed: the id is the VM's, the transition's and the change event's that saw it. */
export function stateChanged(vm: VirtualMachine, from: string, to: string, by: string, now: Date): CloudEvent {
  const namespace = vm.metadata.namespace ?? '';
  const name = vm.metadata.name;
  const trigger: CloudEvent = {
    specversion: '1.0',
    id: by,
    source: `/virtwake/results/${namespace}/${name}`,
    type: STATE_CHANGED,
    extensions: {},
  };
  const event = buildReply(
    trigger,
    {
      type: STATE_CHANGED,
      fn: 'results',
      subject: `${namespace}/${name}`,
      extensions: { vmnamespace: namespace, vmname: name },
      data: { namespace, name, uid: vm.metadata.uid, from, to, ready: vm.status?.ready === true },
    },
    now,
  );
  // Not caused by a command: the change event that showed it is the cause.
  return { ...event, id: hash(STATE_CHANGED, vm.metadata.uid ?? `${namespace}/${name}`, from, to, by).slice(0, 32) };
}
