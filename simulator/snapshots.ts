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
import type { Condition, VirtualMachine, VirtualMachineInstance, VirtualMachineSnapshot } from './types';
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

type SnapStatus = NonNullable<VirtualMachineSnapshot['status']>;

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
    const phase = s.status?.phase;
    return phase !== 'Failed' && phase !== 'Succeeded';
  }

  private deadlineExceeded(s: VirtualMachineSnapshot): boolean {
    const text = s.spec?.failureDeadline;
    const ms =
      text === undefined ? DEFAULT_FAILURE_DEADLINE_MS : (parseGoDuration(text) ?? DEFAULT_FAILURE_DEADLINE_MS);
    if (ms === 0) return false;
    const created = Date.parse(s.metadata.creationTimestamp ?? '');
    return this.ctx.clock.now().getTime() - created > ms;
  }

  private enqueue(namespace: string | undefined, name: string): void {
    this.ctx.scheduler.schedule(`snapshot:${objectKey(namespace, name)}`, this.ctx.snapshotStepMs, () =>
      this.sync(namespace, name),
    );
  }

  private write(s: VirtualMachineSnapshot, status: SnapStatus): void {
    if (!deepEqual(s.status, status)) this.ctx.store.update(SNAPSHOT, { ...s, status });
  }

  private cond(type: string, status: 'True' | 'False', reason: string): Condition {
    return { type, status, reason, lastProbeTime: null, lastTransitionTime: this.ctx.now() };
  }

  private setConds(status: SnapStatus, ...conds: Condition[]): void {
    let list = status.conditions ?? [];
    for (const c of conds) list = upsertCondition(list, c);
    status.conditions = list;
  }

  private sync(namespace: string | undefined, name: string): void {
    const s = this.ctx.store.get(SNAPSHOT, namespace, name) as VirtualMachineSnapshot | undefined;
    if (!s || s.metadata.deletionTimestamp) return;
    const vm = this.ctx.store.get(VM, namespace, s.spec.source?.name ?? '') as VirtualMachine | undefined;
    const status: SnapStatus = clone(s.status) ?? { readyToUse: false };

    if (!s.status) {
      status.phase = 'InProgress';
      if (vm) status.sourceUID = vm.metadata.uid;
      this.setConds(
        status,
        this.cond('Progressing', 'False', vm ? 'Source not locked' : 'Source does not exist'),
        this.cond('Ready', 'False', 'Not ready'),
      );
      // snapshot.go: the controller adds its finalizer with the first status.
      const finalizers = [...new Set([...(s.metadata.finalizers ?? []), SNAPSHOT_FINALIZER])];
      this.ctx.store.update(SNAPSHOT, { ...s, metadata: { ...s.metadata, finalizers }, status });
      this.enqueue(namespace, name);
      return;
    }

    if (status.phase === 'Failed') {
      this.unlock(s);
      return;
    }

    if (this.progressing(s) && this.deadlineExceeded(s)) {
      status.phase = 'Failed';
      this.setConds(
        status,
        this.cond('Failure', 'True', 'snapshot deadline exceeded'),
        this.cond('Progressing', 'False', 'Operation failed'),
        this.cond('Ready', 'False', 'Not ready'),
      );
      this.write(s, status);
      this.enqueue(namespace, name); // next step releases the source
      return;
    }

    if (status.phase === 'Succeeded') {
      if (vm?.status?.snapshotInProgress === name) {
        this.unlock(s);
        this.enqueue(namespace, name);
        return;
      }
      if (!status.readyToUse) {
        status.readyToUse = true;
        const content = this.ctx.store.get(SNAPSHOT_CONTENT, namespace, status.virtualMachineSnapshotContentName ?? '');
        if (content)
          this.ctx.store.update(SNAPSHOT_CONTENT, {
            ...content,
            status: { ...(content.status ?? {}), readyToUse: true },
          });
        this.setConds(status, this.cond('Ready', 'True', 'Ready'));
        this.write(s, status);
      }
      return;
    }

    // In progress.
    if (!vm) {
      this.setConds(status, this.cond('Progressing', 'False', 'Source does not exist'));
      this.write(s, status);
      return;
    }
    status.sourceUID = vm.metadata.uid;
    if (vm.status?.snapshotInProgress !== name) {
      const other = vm.status?.snapshotInProgress;
      if (other) {
        this.setConds(status, this.cond('Progressing', 'False', `Source not locked snapshot "${other}" in progress`));
        this.write(s, status);
        return;
      }
      this.lock(vm, name);
      this.setConds(status, this.cond('Progressing', 'True', 'Source locked and operation in progress'));
      this.setIndications(status, vm);
      this.write(s, status);
      this.enqueue(namespace, name);
      return;
    }

    const fault = this.faultFor(s);
    if (fault?.mode === 'stall') return; // waits for its deadline (or deletion)
    if (fault?.mode === 'fail' || fault?.mode === 'error') {
      // snapshot.go: the content's error is copied to the snapshot, Progressing=False "In error
      // state", and the snapshot keeps retrying (phase InProgress) until its failureDeadline.
      if (!status.error) {
        status.error = {
          time: this.ctx.now(),
          message: fault.message ?? 'Failed to create VolumeSnapshot: simulated storage error',
        };
        this.setConds(status, this.cond('Progressing', 'False', 'In error state'));
        this.write(s, status);
        return;
      }
      const clearsAt = fault.mode === 'error' ? Date.parse(status.error.time ?? '') + fault.recoverAfterMs : Infinity;
      if (this.ctx.clock.now().getTime() < clearsAt) return;
      // The error cleared: back to progressing, then on to completion.
      this.claimed.set(s.metadata.uid!, null);
      delete status.error;
      this.setConds(status, this.cond('Progressing', 'True', 'Source locked and operation in progress'));
      this.write(s, status);
      this.enqueue(namespace, name);
      return;
    }

    const content = this.createContent(s, vm);
    status.virtualMachineSnapshotContentName = content;
    status.creationTime = this.ctx.now();
    status.phase = 'Succeeded';
    const volumes = ((vm.spec.template?.spec?.volumes ?? []) as Array<{ name: string }>).map((v) => v.name);
    status.snapshotVolumes = { includedVolumes: volumes };
    this.setConds(status, this.cond('Progressing', 'False', 'Operation complete'));
    this.write(s, status);
    this.enqueue(namespace, name);
  }

  private setIndications(status: SnapStatus, vm: VirtualMachine): void {
    const vmi = this.ctx.store.get(VMI, vm.metadata.namespace, vm.metadata.name ?? '') as
      VirtualMachineInstance | undefined;
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

  private createContent(s: VirtualMachineSnapshot, vm: VirtualMachine): string {
    const name = `vmsnapshot-content-${s.metadata.uid}`;
    if (this.ctx.store.get(SNAPSHOT_CONTENT, s.metadata.namespace, name)) return name;
    const source = clone(vm);
    delete source.metadata.finalizers;
    const { resourceVersion: _rv, ...meta } = source.metadata;
    const volumes = ((vm.spec.template?.spec?.volumes ?? []) as Array<{ name: string }>).map((v) => ({
      volumeName: v.name,
      volumeSnapshotName: `vmsnapshot-${s.metadata.uid}-volume-${v.name}`,
    }));
    this.ctx.store.create(SNAPSHOT_CONTENT, {
      metadata: {
        name,
        namespace: s.metadata.namespace,
        finalizers: ['snapshot.kubevirt.io/vmsnapshotcontent-protection'],
      },
      spec: {
        virtualMachineSnapshotName: s.metadata.name,
        source: { virtualMachine: { metadata: meta, spec: source.spec, status: {} } },
        volumeBackups: volumes,
      },
      status: { creationTime: this.ctx.now(), readyToUse: false },
    });
    return name;
  }

  private lock(vm: VirtualMachine, snapshotName: string): void {
    const next = clone(vm);
    next.status = { ...(next.status ?? {}), snapshotInProgress: snapshotName };
    next.metadata.finalizers = [...new Set([...(next.metadata.finalizers ?? []), SOURCE_FINALIZER])];
    this.ctx.store.update(VM, next);
  }

  private unlock(s: VirtualMachineSnapshot): void {
    const vm = this.ctx.store.get(VM, s.metadata.namespace, s.spec?.source?.name ?? '') as VirtualMachine | undefined;
    if (!vm || vm.status?.snapshotInProgress !== s.metadata.name) return;
    const next = clone(vm);
    delete next.status!.snapshotInProgress;
    next.metadata.finalizers = (next.metadata.finalizers ?? []).filter((f) => f !== SOURCE_FINALIZER);
    this.ctx.store.update(VM, next);
  }

  private scheduleCleanup(s: VirtualMachineSnapshot): void {
    if (s.metadata.finalizers?.includes(SNAPSHOT_FINALIZER) && this.progressing(s) && s.status) {
      // snapshot.go: only a snapshot deleted while in progress reports phase Deleting.
      this.ctx.store.update(SNAPSHOT, { ...s, status: { ...s.status, phase: 'Deleting' } });
    }
    this.ctx.scheduler.schedule(`snapshot-cleanup:${s.metadata.uid}`, this.ctx.snapshotStepMs, () => {
      this.unlock(s);
      this.claimed.delete(s.metadata.uid ?? '');
      const contentName = s.status?.virtualMachineSnapshotContentName;
      const content = contentName ? this.ctx.store.get(SNAPSHOT_CONTENT, s.metadata.namespace, contentName) : undefined;
      const retain = s.spec?.deletionPolicy === 'Retain' && s.status?.readyToUse === true;
      if (content && !retain)
        this.ctx.store.delete(SNAPSHOT_CONTENT, s.metadata.namespace, contentName!, { force: true });
      const cur = this.ctx.store.get(SNAPSHOT, s.metadata.namespace, s.metadata.name ?? '');
      if (cur && cur.metadata.uid === s.metadata.uid && cur.metadata.finalizers?.includes(SNAPSHOT_FINALIZER)) {
        const finalizers = cur.metadata.finalizers.filter((f) => f !== SNAPSHOT_FINALIZER);
        this.ctx.store.update(SNAPSHOT, { ...cur, metadata: { ...cur.metadata, finalizers } });
      }
    });
  }
}
