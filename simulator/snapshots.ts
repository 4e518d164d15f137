// The VirtualMachineSnapshot controller (pkg/storage/snapshot/snapshot.go): initialise status
// and the vmsnapshot-protection finalizer, record the source VM's UID, lock the source VM
// (vm.status.snapshotInProgress + finalizer), capture a VirtualMachineSnapshotContent (no
// ownerReferences), report Succeeded once creationTime is set, unlock, and only then
// readyToUse. Online sources get sourceIndications. A storage error is copied to the snapshot,
// which stays InProgress "In error state" (and may recover) until failureDeadline (from
// creationTimestamp, by the simulator clock; "0s" = none) turns it Failed. Deleting an
// in-progress snapshot shows phase Deleting until the finalizer is released.

import type { SimContext } from './context';
import { parseGoDuration } from './duration';
import { clone, deepEqual, objectKey, upsertCondition } from './objects';
import { SNAPSHOT, SNAPSHOT_CONTENT, VM, VMI } from './resources';
import type { Condition, KubeObject, VirtualMachine, VirtualMachineInstance, VirtualMachineSnapshot } from './types';
import { hasConditionTrue } from './objects';

export const SOURCE_FINALIZER = 'snapshot.kubevirt.io/snapshot-source-protection';
export const SNAPSHOT_FINALIZER = 'snapshot.kubevirt.io/vmsnapshot-protection';
export const DEFAULT_FAILURE_DEADLINE_MS = 5 * 60_000;

export const INDICATION_MESSAGES: Record<string, string> = {
  Online: 'Snapshot taken while the VM was running. Consistency depends on guest-agent quiescing.',
  GuestAgent: 'Guest agent was active and attempted to quiesce the filesystem for application consistency.',
  NoGuestAgent: 'Guest agent was not available. Snapshot is crash-consistent and may not be application-consistent.',
  Paused: 'Snapshot taken while the VM was paused. Snapshot is crash-consistent and may not be application-consistent.',
};

/** fail: a storage error until the deadline; error: one that clears after recoverAfterMs (simulator clock). */
export type SnapshotFault =
  { mode: 'fail'; message?: string } | { mode: 'error'; message?: string; recoverAfterMs: number } | { mode: 'stall' };

export type SnapStatus = NonNullable<VirtualMachineSnapshot['status']>;

/** What one step of the snapshot controller reads: the snapshot, its source VM and that VM's VMI. */
export interface SnapshotFacts {
  snapshot: VirtualMachineSnapshot;
  vm: VirtualMachine | undefined;
  vmi: VirtualMachineInstance | undefined;
  /** The in-memory simulator's injected storage fault for this snapshot; the rig has none. */
  fault: SnapshotFault | null;
  now: string;
  nowMs: number;
}

/**
 * What one step does, applied in this order: add the snapshot's finalizer, release the source,
 * lock the source, create the content, mark the content ready, write the status (when it
 * changed), then look again after a step. Both the in-memory controller and the rig's apply it.
 */
export interface SnapshotStep {
  addFinalizer?: boolean;
  unlock?: boolean;
  lock?: boolean;
  createContent?: KubeObject;
  contentReady?: boolean;
  status?: SnapStatus;
  /** The injected error cleared: forget the fault. */
  clearFault?: boolean;
  requeue?: boolean;
}

export function snapshotProgressing(s: VirtualMachineSnapshot): boolean {
  const phase = s.status?.phase;
  return phase !== 'Failed' && phase !== 'Succeeded';
}

/** util.go: failureDeadline is a Go duration from creationTimestamp, 5 min unset, "0s" none; undefined = no deadline. */
export function snapshotDeadlineMs(s: VirtualMachineSnapshot): number | undefined {
  const text = s.spec?.failureDeadline;
  const ms = text === undefined ? DEFAULT_FAILURE_DEADLINE_MS : (parseGoDuration(text) ?? DEFAULT_FAILURE_DEADLINE_MS);
  if (ms === 0) return undefined;
  return Date.parse(s.metadata.creationTimestamp ?? '') + ms;
}

export function snapshotDeadlineExceeded(s: VirtualMachineSnapshot, nowMs: number): boolean {
  const at = snapshotDeadlineMs(s);
  return at !== undefined && nowMs > at;
}

function condition(type: string, status: 'True' | 'False', reason: string, now: string): Condition {
  return { type, status, reason, lastProbeTime: null, lastTransitionTime: now };
}

function setConds(status: SnapStatus, ...conds: Condition[]): void {
  let list = status.conditions ?? [];
  for (const c of conds) list = upsertCondition(list, c);
  status.conditions = list;
}

/** One step of snapshot.go's updateSnapshot, decided from what it reads. */
export function snapshotStep(f: SnapshotFacts): SnapshotStep {
  const { snapshot: s, vm, now } = f;
  const name = s.metadata.name;
  const cond = (type: string, st: 'True' | 'False', reason: string) => condition(type, st, reason, now);
  const status: SnapStatus = clone(s.status) ?? { readyToUse: false };

  if (!s.status) {
    status.phase = 'InProgress';
    if (vm) status.sourceUID = vm.metadata.uid;
    setConds(
      status,
      cond('Progressing', 'False', vm ? 'Source not locked' : 'Source does not exist'),
      cond('Ready', 'False', 'Not ready'),
    );
    // snapshot.go: the controller adds its finalizer with the first status.
    return { addFinalizer: true, status, requeue: true };
  }

  if (status.phase === 'Failed') return { unlock: true };

  if (snapshotProgressing(s) && snapshotDeadlineExceeded(s, f.nowMs)) {
    status.phase = 'Failed';
    setConds(
      status,
      cond('Failure', 'True', 'snapshot deadline exceeded'),
      cond('Progressing', 'False', 'Operation failed'),
      cond('Ready', 'False', 'Not ready'),
    );
    return { status, requeue: true }; // next step releases the source
  }

  if (status.phase === 'Succeeded') {
    if (vm?.status?.snapshotInProgress === name) return { unlock: true, requeue: true };
    if (status.readyToUse) return {};
    status.readyToUse = true;
    setConds(status, cond('Ready', 'True', 'Ready'));
    return { contentReady: true, status };
  }

  // In progress.
  if (!vm) {
    setConds(status, cond('Progressing', 'False', 'Source does not exist'));
    return { status };
  }
  status.sourceUID = vm.metadata.uid;
  if (vm.status?.snapshotInProgress !== name) {
    const other = vm.status?.snapshotInProgress;
    if (other) {
      setConds(status, cond('Progressing', 'False', `Source not locked snapshot "${other}" in progress`));
      return { status };
    }
    setConds(status, cond('Progressing', 'True', 'Source locked and operation in progress'));
    setIndications(status, f.vmi);
    return { lock: true, status, requeue: true };
  }

  const fault = f.fault;
  if (fault?.mode === 'stall') return {}; // waits for its deadline (or deletion)
  if (fault?.mode === 'fail' || fault?.mode === 'error') {
    // snapshot.go: the content's error is copied to the snapshot, Progressing=False "In error
    // state", and the snapshot keeps retrying (phase InProgress) until its failureDeadline.
    if (!status.error) {
      status.error = {
        time: now,
        message: fault.message ?? 'Failed to create VolumeSnapshot: simulated storage error',
      };
      setConds(status, cond('Progressing', 'False', 'In error state'));
      return { status };
    }
    const clearsAt = fault.mode === 'error' ? Date.parse(status.error.time ?? '') + fault.recoverAfterMs : Infinity;
    if (f.nowMs < clearsAt) return {};
    // The error cleared: back to progressing, then on to completion.
    delete status.error;
    setConds(status, cond('Progressing', 'True', 'Source locked and operation in progress'));
    return { clearFault: true, status, requeue: true };
  }

  const content = snapshotContent(s, vm, now);
  status.virtualMachineSnapshotContentName = content.metadata.name;
  status.creationTime = now;
  status.phase = 'Succeeded';
  const volumes = ((vm.spec.template?.spec?.volumes ?? []) as Array<{ name: string }>).map((v) => v.name);
  status.snapshotVolumes = { includedVolumes: volumes };
  setConds(status, cond('Progressing', 'False', 'Operation complete'));
  return { createContent: content, status, requeue: true };
}

/** snapshot.go / source.go: how the source was when it was locked (online, agent, paused). */
function setIndications(status: SnapStatus, vmi: VirtualMachineInstance | undefined): void {
  if (!vmi) {
    delete status.indications;
    delete status.sourceIndications;
    return;
  }
  const set = new Set<string>(['Online']);
  if (hasConditionTrue(vmi.status?.conditions, 'Paused')) set.add('Paused');
  else if (vmi.status?.conditions?.some((c) => c.type === 'AgentConnected')) set.add('GuestAgent');
  else set.add('NoGuestAgent');
  const list = [...set].sort();
  status.indications = list;
  status.sourceIndications = list.map((indication) => ({ indication, message: INDICATION_MESSAGES[indication] }));
}

export const CONTENT_FINALIZER = 'snapshot.kubevirt.io/vmsnapshotcontent-protection';

/** snapshot.go: the VirtualMachineSnapshotContent, named from the snapshot's UID, without ownerReferences. */
export function snapshotContent(
  s: VirtualMachineSnapshot,
  vm: VirtualMachine,
  now: string,
): KubeObject & { metadata: { name: string } } {
  const source = clone(vm);
  delete source.metadata.finalizers;
  const { resourceVersion: _rv, ...meta } = source.metadata;
  const volumes = ((vm.spec.template?.spec?.volumes ?? []) as Array<{ name: string }>).map((v) => ({
    volumeName: v.name,
    volumeSnapshotName: `vmsnapshot-${s.metadata.uid}-volume-${v.name}`,
  }));
  return {
    apiVersion: 'snapshot.kubevirt.io/v1beta1',
    kind: 'VirtualMachineSnapshotContent',
    metadata: {
      name: `vmsnapshot-content-${s.metadata.uid}`,
      namespace: s.metadata.namespace,
      finalizers: [CONTENT_FINALIZER],
    },
    spec: {
      virtualMachineSnapshotName: s.metadata.name,
      source: { virtualMachine: { metadata: meta, spec: source.spec, status: {} } },
      volumeBackups: volumes,
    },
    status: { creationTime: now, readyToUse: false },
  };
}

/** snapshot.go: only a snapshot deleted while in progress reports phase Deleting. */
export function deletingStatus(s: VirtualMachineSnapshot): SnapStatus | undefined {
  if (!s.metadata.finalizers?.includes(SNAPSHOT_FINALIZER) || !snapshotProgressing(s) || !s.status) return undefined;
  return { ...s.status, phase: 'Deleting' };
}

/** deletionPolicy Retain keeps the content of a ready snapshot. */
export function retainsContent(s: VirtualMachineSnapshot): boolean {
  return s.spec?.deletionPolicy === 'Retain' && s.status?.readyToUse === true;
}

/** source.go Lock: the VM records the snapshot in progress and carries the source-protection finalizer. */
export function lockedSource(vm: VirtualMachine, snapshotName: string): VirtualMachine {
  const next = clone(vm);
  next.status = { ...(next.status ?? {}), snapshotInProgress: snapshotName };
  next.metadata.finalizers = [...new Set([...(next.metadata.finalizers ?? []), SOURCE_FINALIZER])];
  return next;
}

/** source.go Unlock, or undefined when this snapshot does not hold the VM. */
export function unlockedSource(vm: VirtualMachine | undefined, snapshotName: string): VirtualMachine | undefined {
  if (!vm || vm.status?.snapshotInProgress !== snapshotName) return undefined;
  const next = clone(vm);
  delete next.status!.snapshotInProgress;
  next.metadata.finalizers = (next.metadata.finalizers ?? []).filter((f) => f !== SOURCE_FINALIZER);
  return next;
}

export class SnapshotController {
  /** Faults waiting for the next snapshot of a VM (ns/vm), and those already claimed (by snapshot uid). */
  private readonly pendingFaults = new Map<string, SnapshotFault[]>();
  private readonly claimed = new Map<string, SnapshotFault | null>();
  private readonly unsubscribe: () => void;

  constructor(private readonly ctx: SimContext) {
    this.unsubscribe = ctx.store.subscribe((e) => {
      if (e.resource === SNAPSHOT) {
        const deleting =
          e.type === 'MODIFIED' && !!e.object.metadata.deletionTimestamp && !e.old?.metadata.deletionTimestamp;
        if (e.type === 'DELETED' || deleting) this.scheduleCleanup(e.object as VirtualMachineSnapshot);
        else if (e.type === 'ADDED') this.enqueue(e.object.metadata.namespace, e.object.metadata.name ?? '');
      } else if ((e.resource === VM || e.resource === VMI) && !ctx.quiet) {
        // A source that changed may now be lockable (another snapshot released it, VM appeared).
        for (const s of this.waitingOn(e.object.metadata.namespace, e.object.metadata.name ?? ''))
          this.enqueue(s.metadata.namespace, s.metadata.name ?? '');
      }
    });
  }

  close(): void {
    this.unsubscribe();
  }

  failNext(namespace: string, vmName: string, message?: string): void {
    this.queueFault(namespace, vmName, { mode: 'fail', message });
  }

  errorNext(namespace: string, vmName: string, recoverAfterMs: number, message?: string): void {
    this.queueFault(namespace, vmName, { mode: 'error', message, recoverAfterMs });
  }

  stallNext(namespace: string, vmName: string): void {
    this.queueFault(namespace, vmName, { mode: 'stall' });
  }

  /** Re-evaluate deadlines (the clock moved or time passed). */
  recheck(): void {
    for (const s of this.ctx.store.list(SNAPSHOT) as VirtualMachineSnapshot[]) {
      if (!this.progressing(s)) continue;
      const f = this.claimed.get(s.metadata.uid ?? '');
      const recovered =
        f?.mode === 'error' &&
        !!s.status?.error &&
        this.ctx.clock.now().getTime() >= Date.parse(s.status.error.time ?? '') + f.recoverAfterMs;
      if (recovered || this.deadlineExceeded(s)) this.enqueue(s.metadata.namespace, s.metadata.name ?? '');
    }
  }

  private queueFault(namespace: string, vmName: string, f: SnapshotFault): void {
    const k = objectKey(namespace, vmName);
    this.pendingFaults.set(k, [...(this.pendingFaults.get(k) ?? []), f]);
  }

  private faultFor(s: VirtualMachineSnapshot): SnapshotFault | null {
    const uid = s.metadata.uid!;
    if (!this.claimed.has(uid)) {
      const k = objectKey(s.metadata.namespace, s.spec.source?.name ?? '');
      const queue = this.pendingFaults.get(k) ?? [];
      const f = queue.shift() ?? null;
      if (queue.length === 0) this.pendingFaults.delete(k);
      this.claimed.set(uid, f);
    }
    return this.claimed.get(uid) ?? null;
  }

  private waitingOn(namespace: string | undefined, vmName: string): VirtualMachineSnapshot[] {
    return (this.ctx.store.list(SNAPSHOT, namespace) as VirtualMachineSnapshot[]).filter(
      (s) => s.spec?.source?.name === vmName && this.progressing(s),
    );
  }

  private progressing(s: VirtualMachineSnapshot): boolean {
    return snapshotProgressing(s);
  }

  private deadlineExceeded(s: VirtualMachineSnapshot): boolean {
    return snapshotDeadlineExceeded(s, this.ctx.clock.now().getTime());
  }

  private enqueue(namespace: string | undefined, name: string): void {
    this.ctx.scheduler.schedule(`snapshot:${objectKey(namespace, name)}`, this.ctx.snapshotStepMs, () =>
      this.sync(namespace, name),
    );
  }

  private sync(namespace: string | undefined, name: string): void {
    const s = this.ctx.store.get(SNAPSHOT, namespace, name) as VirtualMachineSnapshot | undefined;
    if (!s || s.metadata.deletionTimestamp) return;
    const source = s.spec.source?.name ?? '';
    const vm = this.ctx.store.get(VM, namespace, source) as VirtualMachine | undefined;
    const vmi = vm ? (this.ctx.store.get(VMI, namespace, source) as VirtualMachineInstance | undefined) : undefined;
    // A fault is claimed only once the snapshot holds its source, as the storage work starts there.
    const nowMs = this.ctx.clock.now().getTime();
    const holds =
      !!s.status &&
      snapshotProgressing(s) &&
      !snapshotDeadlineExceeded(s, nowMs) &&
      vm?.status?.snapshotInProgress === name;
    const fault = holds ? this.faultFor(s) : null;
    const step = snapshotStep({ snapshot: s, vm, vmi, fault, now: this.ctx.now(), nowMs });
    if (step.unlock) this.unlock(s);
    if (step.lock && vm) this.ctx.store.update(VM, lockedSource(vm, name));
    if (step.createContent && !this.ctx.store.get(SNAPSHOT_CONTENT, namespace, step.createContent.metadata.name!))
      this.ctx.store.create(SNAPSHOT_CONTENT, step.createContent);
    if (step.contentReady) {
      const content = this.ctx.store.get(
        SNAPSHOT_CONTENT,
        namespace,
        s.status?.virtualMachineSnapshotContentName ?? '',
      );
      if (content)
        this.ctx.store.update(SNAPSHOT_CONTENT, {
          ...content,
          status: { ...(content.status ?? {}), readyToUse: true },
        });
    }
    if (step.clearFault) this.claimed.set(s.metadata.uid!, null);
    if (step.addFinalizer) {
      const finalizers = [...new Set([...(s.metadata.finalizers ?? []), SNAPSHOT_FINALIZER])];
      this.ctx.store.update(SNAPSHOT, { ...s, metadata: { ...s.metadata, finalizers }, status: step.status });
    } else if (step.status && !deepEqual(s.status, step.status)) {
      this.ctx.store.update(SNAPSHOT, { ...s, status: step.status });
    }
    if (step.requeue) this.enqueue(namespace, name);
  }

  private unlock(s: VirtualMachineSnapshot): void {
    const vm = this.ctx.store.get(VM, s.metadata.namespace, s.spec?.source?.name ?? '') as VirtualMachine | undefined;
    const next = unlockedSource(vm, s.metadata.name);
    if (next) this.ctx.store.update(VM, next);
  }

  private scheduleCleanup(s: VirtualMachineSnapshot): void {
    const deleting = deletingStatus(s);
    if (deleting) this.ctx.store.update(SNAPSHOT, { ...s, status: deleting });
    this.ctx.scheduler.schedule(`snapshot-cleanup:${s.metadata.uid}`, this.ctx.snapshotStepMs, () => {
      this.unlock(s);
      this.claimed.delete(s.metadata.uid ?? '');
      const contentName = s.status?.virtualMachineSnapshotContentName;
      const content = contentName ? this.ctx.store.get(SNAPSHOT_CONTENT, s.metadata.namespace, contentName) : undefined;
      if (content && !retainsContent(s))
        this.ctx.store.delete(SNAPSHOT_CONTENT, s.metadata.namespace, contentName!, { force: true });
      const cur = this.ctx.store.get(SNAPSHOT, s.metadata.namespace, s.metadata.name ?? '');
      if (cur && cur.metadata.uid === s.metadata.uid && cur.metadata.finalizers?.includes(SNAPSHOT_FINALIZER)) {
        const finalizers = cur.metadata.finalizers.filter((f) => f !== SNAPSHOT_FINALIZER);
        this.ctx.store.update(SNAPSHOT, { ...cur, metadata: { ...cur.metadata, finalizers } });
      }
    });
  }
}
