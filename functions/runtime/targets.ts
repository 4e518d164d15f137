import type { Outcome } from './function';
import type { KubeVirt, Resource } from './kubevirt';
import type { ObjectMeta, VirtualMachine, VirtualMachineInstance } from './kubevirt-types';
import { Entry, readLedger, Target } from './ledger';
import { isPaused, isRunning, isStopped, isUnpaused } from './vm-state';
import {
  belongsTo,
  conditionReason,
  snapshotInfo,
  VirtualMachineRestore,
  VirtualMachineSnapshot,
} from './snapshot-objects';

// Has a pending request (ledger.ts) reached its target? Asked by the results
// function on every change event, and by a redelivery of the request itself. Judged on what the API
// server says now, read fresh, and on the object the change event carried: a
// state the VM passed through (paused, then unpaused by the next command) is
// seen only in the event. ApiServerSource events come late, twice and out of
// order, so an event object counts only when it is provably from after the
// request was acted on: a VM whose own ledger already holds the request, a VMI
// created after the claim, an object the request itself created.

export type Verdict = Pick<Outcome, 'outcome' | 'reason' | 'message' | 'snapshot' | 'restore'>;

export interface Look {
  namespace: string;
  vm: VirtualMachine;
  /** The object the change event carried, with its kind. */
  changed?: { kind: string; object: KubeObject };
  kubevirt: KubeVirt;
}

export interface KubeObject {
  kind?: string;
  metadata: { name: string; namespace?: string; uid?: string; creationTimestamp?: string; [k: string]: unknown };
  [k: string]: unknown;
}

const VM_TARGETS: Partial<Record<Target, (vm: VirtualMachine | undefined) => boolean>> = {
  running: isRunning,
  paused: isPaused,
  stopped: isStopped,
  unpaused: isUnpaused,
};

export async function judge(entry: Entry, look: Look): Promise<Verdict | undefined> {
  const p = entry.pending;
  if (!p) return undefined;
  const test = VM_TARGETS[p.target];
  if (test) {
    const fromEvent =
      look.changed?.kind === 'VirtualMachine' &&
      readLedger(look.changed.object as unknown as VirtualMachine).entries.some((e) => e.key === entry.key) &&
      test(look.changed.object as unknown as VirtualMachine);
    return fromEvent || test(look.vm) ? { outcome: 'completed' } : undefined;
  }
  if (p.target === 'new-vmi') return judgeRestart(entry, look);
  if (p.target === 'snapshot-ready') return judgeSnapshot(entry, look);
  if (p.target === 'restore-complete') return judgeRestore(entry, look);
  return undefined;
}

async function judgeRestart(entry: Entry, look: Look): Promise<Verdict | undefined> {
  const old = entry.pending?.vmi;
  // creationTimestamp has whole seconds: a VMI from the claim's second or later.
  const since = Math.floor(entry.at / 1000) * 1000;
  const replaced = (vmi: VirtualMachineInstance | undefined) =>
    !!vmi &&
    vmi.metadata.uid !== old &&
    vmi.status?.phase === 'Running' &&
    Date.parse(vmi.metadata.creationTimestamp ?? '') >= since;
  const ev =
    look.changed?.kind === 'VirtualMachineInstance' ? (look.changed.object as VirtualMachineInstance) : undefined;
  if (replaced(ev)) return { outcome: 'completed' };
  return replaced(await look.kubevirt.getVMI(look.namespace, look.vm.metadata.name))
    ? { outcome: 'completed' }
    : undefined;
}

/**
 * The object a pending snapshot or restore entry names, only while it is this request's own: as the
 * change event carries it (when the event is that object), and read fresh.
 */
function ownObject<T extends { metadata: ObjectMeta }>(
  entry: Entry,
  look: Look,
  kind: string,
  resource: Resource,
): { changed: T | undefined; read: () => Promise<T | undefined> } {
  const name = entry.pending?.object as string;
  const ours = (o: T | undefined) => (o && belongsTo(o.metadata, entry.key) ? o : undefined);
  const ev =
    look.changed?.kind === kind && look.changed.object.metadata.name === name
      ? (look.changed.object as unknown as T)
      : undefined;
  return { changed: ours(ev), read: async () => ours(await look.kubevirt.get<T>(resource, look.namespace, name)) };
}

async function judgeSnapshot(entry: Entry, look: Look): Promise<Verdict | undefined> {
  const name = entry.pending?.object as string;
  const own = ownObject<VirtualMachineSnapshot>(entry, look, 'VirtualMachineSnapshot', 'virtualmachinesnapshots');
  const ready = (s: VirtualMachineSnapshot | undefined) =>
    s?.status?.readyToUse === true && s.status.phase !== 'Failed';
  // Ready once is ready: retention of a newer snapshot may delete it afterwards.
  if (ready(own.changed))
    return { outcome: 'completed', snapshot: snapshotInfo(own.changed as VirtualMachineSnapshot) };
  const snap = await own.read();
  if (ready(snap)) return { outcome: 'completed', snapshot: snapshotInfo(snap as VirtualMachineSnapshot) };
  if (snap?.status?.phase === 'Failed') {
    const why = snap.status.error?.message || conditionReason(snap.status.conditions, 'Failure') || 'phase Failed';
    return {
      outcome: 'failed',
      reason: 'SnapshotFailed',
      message: `VirtualMachineSnapshot ${look.namespace}/${name} failed: ${why}`,
      snapshot: snapshotInfo(snap),
    };
  }
  // Before the create (still claimed) an absent snapshot means nothing yet.
  if (entry.state === 'applied' && (!snap || snap.metadata.deletionTimestamp))
    return {
      outcome: 'failed',
      reason: 'SnapshotFailed',
      message: `VirtualMachineSnapshot ${look.namespace}/${name} was deleted before it became ready`,
      snapshot: { name },
    };
  return undefined;
}

async function judgeRestore(entry: Entry, look: Look): Promise<Verdict | undefined> {
  const name = entry.pending?.object as string;
  const own = ownObject<VirtualMachineRestore>(entry, look, 'VirtualMachineRestore', 'virtualmachinerestores');
  if (own.changed?.status?.complete === true) return { outcome: 'completed', restore: { name, complete: true } };
  const r = await own.read();
  if (r?.status?.complete === true) return { outcome: 'completed', restore: { name, complete: true } };
  const why = r && conditionReason(r.status?.conditions, 'Failure');
  if (why)
    return {
      outcome: 'failed',
      reason: 'RestoreFailed',
      message: `VirtualMachineRestore ${look.namespace}/${name} failed: ${why}`,
      restore: { name, complete: false },
    };
  if (entry.state === 'applied' && !r)
    return {
      outcome: 'failed',
      reason: 'RestoreFailed',
      message: `VirtualMachineRestore ${look.namespace}/${name} was deleted before it completed`,
      restore: { name },
    };
  return undefined;
}
