// The VirtualMachineRestore controller (pkg/storage/snapshot/restore.go): initialise status,
// owner (the target VM) and finalizer, wait for (or stop, or fail on) a running target per
// targetReadinessPolicy, require a ready snapshot taken of this very VM (snapshot sourceUID ==
// target UID unless the target carries this restore's lastRestoreUID), mark the target with
// status.restoreInProgress, rewrite its spec from the snapshot content keeping its runStrategy
// (a legacy spec.running is forced false; a new target is created Halted), then complete. A
// failed restore keeps complete:false forever and is no longer processed.

import type { SimContext } from './context';
import { formatGoDuration } from './duration';
import { ApiError } from './errors';
import { clone, deepEqual, objectKey, upsertCondition } from './objects';
import { RESTORE, SNAPSHOT, SNAPSHOT_CONTENT, VM, VMI } from './resources';
import type { Condition, VirtualMachine, VirtualMachineRestore, VirtualMachineSnapshot } from './types';
import type { VmActions } from './vm-actions';
import { VM_FINALIZER } from './controller';

export const DEFAULT_GRACE_PERIOD_MS = 5 * 60_000;
const GRACE = formatGoDuration(DEFAULT_GRACE_PERIOD_MS);

export const RESTORE_MESSAGES = {
  initializing: 'Initializing VirtualMachineRestore',
  waitEventually: 'Waiting for target VM to be powered off. Please stop the restore target to proceed with restore',
  waitGracePeriod: `Waiting for target VM to be powered off. Please stop the restore target to proceed with restore, or the operation will fail after ${GRACE}`,
  gracePeriodExceeded: `Restore target failed to be ready within ${GRACE}. Please power off the target VM before attempting restore`,
  stopTarget: 'Automatically stopping restore target for restore operation',
  failImmediate: 'Restore target VMI must be powered off before restore operation',
  differentTarget: 'restore source and restore target are different but restore target already exists',
  updatingSpec: 'Updating target spec',
  waitingUpdate: 'Waiting for target update',
  complete: 'Operation complete',
};

export const LAST_RESTORE_ANNOTATION = 'restore.kubevirt.io/lastRestoreUID';
export const RESTORE_FINALIZER = 'snapshot.kubevirt.io/vmrestore-protection';

type RestoreStatus = NonNullable<VirtualMachineRestore['status']>;

export class RestoreController {
  private readonly unsubscribe: () => void;

  constructor(
    private readonly ctx: SimContext,
    private readonly actions: VmActions,
  ) {
    this.unsubscribe = ctx.store.subscribe((e) => {
      if (e.resource === RESTORE) {
        const deleting =
          e.type === 'MODIFIED' && !!e.object.metadata.deletionTimestamp && !e.old?.metadata.deletionTimestamp;
        if (e.type === 'DELETED' || deleting) this.scheduleCleanup(e.object as VirtualMachineRestore);
        else if (e.type === 'ADDED') this.enqueue(e.object.metadata.namespace, e.object.metadata.name ?? '');
      } else if (e.resource === VM && e.type === 'DELETED') {
        // Garbage collection of the restores the deleted VM owned.
        const uid = e.object.metadata.uid;
        for (const r of ctx.store.list(RESTORE, e.object.metadata.namespace) as VirtualMachineRestore[])
          if (r.metadata.ownerReferences?.some((o) => o.uid === uid))
            ctx.scheduler.schedule(`restore-gc:${r.metadata.uid}`, 0, () =>
              ctx.store.delete(RESTORE, r.metadata.namespace, r.metadata.name ?? ''),
            );
      } else if ((e.resource === VM || e.resource === VMI) && !ctx.quiet) {
        for (const r of this.active(e.object.metadata.namespace)) {
          if (r.spec.target?.name === e.object.metadata.name) this.enqueue(r.metadata.namespace, r.metadata.name ?? '');
        }
      } else if (e.resource === SNAPSHOT) {
        for (const r of this.active(e.object.metadata.namespace)) {
          if (r.spec.virtualMachineSnapshotName === e.object.metadata.name)
            this.enqueue(r.metadata.namespace, r.metadata.name ?? '');
        }
      }
    });
  }

  close(): void {
    this.unsubscribe();
  }

  /** Re-evaluate grace periods (the clock moved or time passed). */
  recheck(): void {
    for (const r of this.active(undefined)) {
      if (this.graceExceeded(r)) this.enqueue(r.metadata.namespace, r.metadata.name ?? '');
    }
  }

  private active(namespace: string | undefined): VirtualMachineRestore[] {
    return (this.ctx.store.list(RESTORE, namespace) as VirtualMachineRestore[]).filter((r) => this.progressing(r));
  }

  private progressing(r: VirtualMachineRestore): boolean {
    return r.status?.complete !== true && !r.status?.conditions?.some((c) => c.type === 'Failure');
  }

  private graceExceeded(r: VirtualMachineRestore): boolean {
    return this.ctx.clock.now().getTime() - Date.parse(r.metadata.creationTimestamp ?? '') > DEFAULT_GRACE_PERIOD_MS;
  }

  private enqueue(namespace: string | undefined, name: string): void {
    this.ctx.scheduler.schedule(`restore:${objectKey(namespace, name)}`, this.ctx.snapshotStepMs, () =>
      this.sync(namespace, name),
    );
  }

  private cond(type: string, status: 'True' | 'False', reason: string): Condition {
    return { type, status, reason, lastProbeTime: null, lastTransitionTime: this.ctx.now() };
  }

  private write(r: VirtualMachineRestore, status: RestoreStatus): void {
    if (!deepEqual(r.status, status)) this.ctx.store.update(RESTORE, { ...r, status });
  }

  private report(
    r: VirtualMachineRestore,
    status: RestoreStatus,
    progressing: 'True' | 'False',
    ready: 'True' | 'False',
    text: string,
    fail = false,
  ): void {
    let list = status.conditions ?? [];
    list = upsertCondition(list, this.cond('Progressing', progressing, text));
    list = upsertCondition(list, this.cond('Ready', ready, text));
    if (fail) list = upsertCondition(list, this.cond('Failure', 'True', text));
    status.conditions = list;
    this.write(r, status);
  }

  private sync(namespace: string | undefined, name: string): void {
    const r = this.ctx.store.get(RESTORE, namespace, name) as VirtualMachineRestore | undefined;
    if (!r || r.metadata.deletionTimestamp) return;
    if (!r.status) {
      // restore.go: the target VM owns the restore (its deletion collects it) and the controller's finalizer guards it.
      const vm = this.ctx.store.get(VM, namespace, r.spec.target?.name ?? '') as VirtualMachine | undefined;
      const owners = vm
        ? [
            {
              apiVersion: 'kubevirt.io/v1',
              kind: 'VirtualMachine',
              name: vm.metadata.name,
              uid: vm.metadata.uid ?? '',
              controller: true,
              blockOwnerDeletion: true,
            },
          ]
        : r.metadata.ownerReferences;
      const finalizers = [...new Set([...(r.metadata.finalizers ?? []), RESTORE_FINALIZER])];
      r.metadata = { ...r.metadata, finalizers, ...(owners ? { ownerReferences: owners } : {}) };
      this.report(r, { complete: false }, 'True', 'False', RESTORE_MESSAGES.initializing);
      this.enqueue(namespace, name);
      return;
    }
    if (!this.progressing(r)) return;
    const status: RestoreStatus = clone(r.status);
    const targetName = r.spec.target?.name ?? '';
    const target = this.ctx.store.get(VM, namespace, targetName) as VirtualMachine | undefined;

    if (target && this.ctx.store.get(VMI, namespace, targetName)) {
      switch (r.spec.targetReadinessPolicy ?? 'WaitGracePeriod') {
        case 'WaitEventually':
          this.report(r, status, 'False', 'False', RESTORE_MESSAGES.waitEventually);
          return;
        case 'StopTarget':
          this.report(r, status, 'False', 'False', RESTORE_MESSAGES.stopTarget);
          try {
            this.actions.stop(namespace ?? 'default', targetName, () => ({}))();
          } catch (e) {
            if (!(e instanceof ApiError)) throw e;
            this.report(r, clone(status), 'False', 'False', e.status.message ?? 'stop failed');
          }
          return;
        case 'FailImmediate':
          this.report(r, status, 'False', 'False', RESTORE_MESSAGES.failImmediate, true);
          return;
        default:
          if (this.graceExceeded(r))
            this.report(r, status, 'False', 'False', RESTORE_MESSAGES.gracePeriodExceeded, true);
          else this.report(r, status, 'False', 'False', RESTORE_MESSAGES.waitGracePeriod);
          return;
      }
    }

    const snapKey = `${namespace}/${r.spec.virtualMachineSnapshotName}`;
    const snapshot = this.ctx.store.get(SNAPSHOT, namespace, r.spec.virtualMachineSnapshotName ?? '') as
      VirtualMachineSnapshot | undefined;
    if (!snapshot) return this.report(r, status, 'False', 'False', `VMSnapshot ${snapKey} does not exist`);
    if (snapshot.status?.phase === 'Failed')
      return this.report(r, status, 'False', 'False', `VMSnapshot ${snapKey} failed and is invalid to use`);
    if (snapshot.status?.readyToUse !== true)
      return this.report(r, status, 'False', 'False', `VMSnapshot ${snapKey} not ready`);
    const content = this.ctx.store.get(
      SNAPSHOT_CONTENT,
      namespace,
      snapshot.status.virtualMachineSnapshotContentName ?? '',
    );
    if (!content)
      return this.report(
        r,
        status,
        'False',
        'False',
        `VMSnapshotContent ${namespace}/${snapshot.status.virtualMachineSnapshotContentName} does not exist`,
      );

    // restore.go sourceAndTargetAreDifferent: UIDs, not names; only this restore's own marker exempts.
    if (
      target &&
      target.metadata.annotations?.[LAST_RESTORE_ANNOTATION] !== `${r.metadata.name}-${r.metadata.uid}` &&
      target.metadata.uid !== snapshot.status.sourceUID
    ) {
      return this.report(r, status, 'False', 'False', RESTORE_MESSAGES.differentTarget);
    }

    if (target && target.status?.restoreInProgress !== name) {
      if (target.status?.restoreInProgress) return; // another restore holds it
      const next = clone(target);
      next.status = { ...(next.status ?? {}), restoreInProgress: name };
      this.ctx.store.update(VM, next);
      this.enqueue(namespace, name);
      return;
    }

    const stage = status.conditions?.find((c) => c.type === 'Progressing')?.reason;
    if (stage !== RESTORE_MESSAGES.updatingSpec) {
      this.reconcileTarget(r, target, content.spec?.source?.virtualMachine as VirtualMachine);
      let list = status.conditions ?? [];
      list = upsertCondition(list, this.cond('Progressing', 'True', RESTORE_MESSAGES.updatingSpec));
      list = upsertCondition(list, this.cond('Ready', 'False', RESTORE_MESSAGES.waitingUpdate));
      status.conditions = list;
      status.restores = (
        (content.spec?.volumeBackups ?? []) as Array<{ volumeName: string; volumeSnapshotName: string }>
      ).map((v) => ({
        volumeName: v.volumeName,
        persistentVolumeClaim: `restore-${r.metadata.uid}-${v.volumeName}`,
        volumeSnapshotName: v.volumeSnapshotName,
      }));
      this.write(r, status);
      this.enqueue(namespace, name);
      return;
    }

    const current = this.ctx.store.get(VM, namespace, targetName) as VirtualMachine | undefined;
    if (current && current.status?.restoreInProgress === name) {
      const next = clone(current);
      delete next.status!.restoreInProgress;
      this.ctx.store.update(VM, next);
    }
    status.complete = true;
    status.restoreTime = this.ctx.now();
    this.report(r, status, 'False', 'True', RESTORE_MESSAGES.complete);
  }

  /** Rewrite the target from the snapshot, keeping its run strategy; a new target starts Halted. */
  private reconcileTarget(r: VirtualMachineRestore, target: VirtualMachine | undefined, source: VirtualMachine): void {
    const marker = `${r.metadata.name}-${r.metadata.uid}`;
    if (target) {
      const next = clone(target);
      next.spec = clone(source.spec);
      delete next.spec.running;
      delete next.spec.runStrategy;
      if (target.spec.runStrategy !== undefined) next.spec.runStrategy = target.spec.runStrategy;
      // restore.go: a target on the legacy running field is restored with running: false.
      if (target.spec.running !== undefined) next.spec.running = false;
      next.metadata.annotations = { ...(next.metadata.annotations ?? {}), [LAST_RESTORE_ANNOTATION]: marker };
      this.ctx.store.update(VM, next);
      return;
    }
    const spec = clone(source.spec);
    if (spec.running !== undefined) spec.running = false;
    else spec.runStrategy = 'Halted';
    this.ctx.store.create(VM, {
      metadata: {
        name: r.spec.target?.name,
        namespace: r.metadata.namespace,
        labels: { ...(source.metadata.labels ?? {}) },
        annotations: { ...(source.metadata.annotations ?? {}), [LAST_RESTORE_ANNOTATION]: marker },
        finalizers: [VM_FINALIZER],
      },
      spec,
    });
  }

  private scheduleCleanup(r: VirtualMachineRestore): void {
    this.ctx.scheduler.schedule(`restore-cleanup:${r.metadata.uid}`, 0, () => {
      const cur = this.ctx.store.get(RESTORE, r.metadata.namespace, r.metadata.name ?? '');
      if (cur && cur.metadata.uid === r.metadata.uid && cur.metadata.finalizers?.includes(RESTORE_FINALIZER)) {
        const finalizers = cur.metadata.finalizers.filter((f) => f !== RESTORE_FINALIZER);
        this.ctx.store.update(RESTORE, { ...cur, metadata: { ...cur.metadata, finalizers } });
      }
      const vm = this.ctx.store.get(VM, r.metadata.namespace, r.spec?.target?.name ?? '') as VirtualMachine | undefined;
      if (vm && vm.status?.restoreInProgress === r.metadata.name) {
        const next = clone(vm);
        delete next.status!.restoreInProgress;
        this.ctx.store.update(VM, next);
      }
    });
  }
}
