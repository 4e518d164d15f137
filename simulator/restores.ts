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
import type {
  Condition,
  KubeObject,
  OwnerReference,
  VirtualMachine,
  VirtualMachineInstance,
  VirtualMachineRestore,
  VirtualMachineSnapshot,
} from './types';
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

export type RestoreStatus = NonNullable<VirtualMachineRestore['status']>;

/** What one step of the restore controller reads. */
export interface RestoreFacts {
  restore: VirtualMachineRestore;
  target: VirtualMachine | undefined;
  /** The target's VMI. */
  vmi: VirtualMachineInstance | undefined;
  snapshot: VirtualMachineSnapshot | undefined;
  /** The snapshot's content, when the snapshot names one. */
  content: KubeObject | undefined;
  now: string;
  nowMs: number;
}

/**
 * What one step does, applied in this order: mark the target, rewrite or create it, release
 * it, initialise the restore's metadata, write the status (when it changed), stop the target
 * (a refusal is written as the status), then look again after a step.
 */
export interface RestoreStep {
  init?: { finalizers: string[]; ownerReferences?: OwnerReference[] };
  status?: RestoreStatus;
  stopTarget?: boolean;
  markTarget?: boolean;
  target?: { update: VirtualMachine } | { create: VirtualMachine };
  unmarkTarget?: boolean;
  requeue?: boolean;
}

/** restore.go VmRestoreProgressing: neither complete nor failed. */
export function restoreProgressing(r: VirtualMachineRestore): boolean {
  return r.status?.complete !== true && !r.status?.conditions?.some((c) => c.type === 'Failure');
}

export function restoreGraceEndsMs(r: VirtualMachineRestore): number {
  return Date.parse(r.metadata.creationTimestamp ?? '') + DEFAULT_GRACE_PERIOD_MS;
}

/** restore.go updateStatus: Progressing and Ready carry the same text; a failure adds Failure. */
export function reported(
  status: RestoreStatus,
  progressing: 'True' | 'False',
  ready: 'True' | 'False',
  text: string,
  now: string,
  fail = false,
): RestoreStatus {
  const cond = (type: string, st: 'True' | 'False'): Condition => ({
    type,
    status: st,
    reason: text,
    lastProbeTime: null,
    lastTransitionTime: now,
  });
  let list = status.conditions ?? [];
  list = upsertCondition(list, cond('Progressing', progressing));
  list = upsertCondition(list, cond('Ready', ready));
  if (fail) list = upsertCondition(list, cond('Failure', 'True'));
  return { ...status, conditions: list };
}

/** One step of restore.go's updateVMRestore, decided from what it reads. */
export function restoreStep(f: RestoreFacts): RestoreStep {
  const { restore: r, target, now } = f;
  const namespace = r.metadata.namespace;
  const name = r.metadata.name;
  const say = (
    status: RestoreStatus,
    progressing: 'True' | 'False',
    ready: 'True' | 'False',
    text: string,
    fail = false,
  ) => reported(status, progressing, ready, text, now, fail);

  if (!r.status) {
    // restore.go: the target VM owns the restore (its deletion collects it) and the controller's finalizer guards it.
    const owners = target
      ? [
          {
            apiVersion: 'kubevirt.io/v1',
            kind: 'VirtualMachine',
            name: target.metadata.name,
            uid: target.metadata.uid ?? '',
            controller: true,
            blockOwnerDeletion: true,
          },
        ]
      : r.metadata.ownerReferences;
    const finalizers = [...new Set([...(r.metadata.finalizers ?? []), RESTORE_FINALIZER])];
    return {
      init: { finalizers, ...(owners ? { ownerReferences: owners } : {}) },
      status: say({ complete: false }, 'True', 'False', RESTORE_MESSAGES.initializing),
      requeue: true,
    };
  }
  if (!restoreProgressing(r)) return {};
  const status: RestoreStatus = clone(r.status);

  if (target && f.vmi) {
    switch (r.spec.targetReadinessPolicy ?? 'WaitGracePeriod') {
      case 'WaitEventually':
        return { status: say(status, 'False', 'False', RESTORE_MESSAGES.waitEventually) };
      case 'StopTarget':
        return { status: say(status, 'False', 'False', RESTORE_MESSAGES.stopTarget), stopTarget: true };
      case 'FailImmediate':
        return { status: say(status, 'False', 'False', RESTORE_MESSAGES.failImmediate, true) };
      default:
        if (f.nowMs > restoreGraceEndsMs(r))
          return { status: say(status, 'False', 'False', RESTORE_MESSAGES.gracePeriodExceeded, true) };
        return { status: say(status, 'False', 'False', RESTORE_MESSAGES.waitGracePeriod) };
    }
  }

  const snapKey = `${namespace}/${r.spec.virtualMachineSnapshotName}`;
  const snapshot = f.snapshot;
  if (!snapshot) return { status: say(status, 'False', 'False', `VMSnapshot ${snapKey} does not exist`) };
  if (snapshot.status?.phase === 'Failed')
    return { status: say(status, 'False', 'False', `VMSnapshot ${snapKey} failed and is invalid to use`) };
  if (snapshot.status?.readyToUse !== true)
    return { status: say(status, 'False', 'False', `VMSnapshot ${snapKey} not ready`) };
  const content = f.content;
  if (!content) {
    const missing = `VMSnapshotContent ${namespace}/${snapshot.status.virtualMachineSnapshotContentName} does not exist`;
    return { status: say(status, 'False', 'False', missing) };
  }

  // restore.go sourceAndTargetAreDifferent: UIDs, not names; only this restore's own marker exempts.
  if (
    target &&
    target.metadata.annotations?.[LAST_RESTORE_ANNOTATION] !== `${r.metadata.name}-${r.metadata.uid}` &&
    target.metadata.uid !== snapshot.status.sourceUID
  ) {
    return { status: say(status, 'False', 'False', RESTORE_MESSAGES.differentTarget) };
  }

  if (target && target.status?.restoreInProgress !== name) {
    if (target.status?.restoreInProgress) return {}; // another restore holds it
    return { markTarget: true, requeue: true };
  }

  const stage = status.conditions?.find((c) => c.type === 'Progressing')?.reason;
  if (stage !== RESTORE_MESSAGES.updatingSpec) {
    let list = status.conditions ?? [];
    const cond = (type: string, st: 'True' | 'False', text: string): Condition => ({
      type,
      status: st,
      reason: text,
      lastProbeTime: null,
      lastTransitionTime: now,
    });
    list = upsertCondition(list, cond('Progressing', 'True', RESTORE_MESSAGES.updatingSpec));
    list = upsertCondition(list, cond('Ready', 'False', RESTORE_MESSAGES.waitingUpdate));
    status.conditions = list;
    status.restores = (
      (content.spec?.volumeBackups ?? []) as Array<{ volumeName: string; volumeSnapshotName: string }>
    ).map((v) => ({
      volumeName: v.volumeName,
      persistentVolumeClaim: `restore-${r.metadata.uid}-${v.volumeName}`,
      volumeSnapshotName: v.volumeSnapshotName,
    }));
    const source = content.spec?.source?.virtualMachine as VirtualMachine;
    return { target: restoredTarget(r, target, source), status, requeue: true };
  }

  status.complete = true;
  status.restoreTime = now;
  return { unmarkTarget: true, status: say(status, 'False', 'True', RESTORE_MESSAGES.complete) };
}

/** restore.go: the target rewritten from the snapshot keeping its run strategy; a new target starts Halted. */
export function restoredTarget(
  r: VirtualMachineRestore,
  target: VirtualMachine | undefined,
  source: VirtualMachine,
): { update: VirtualMachine } | { create: VirtualMachine } {
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
    return { update: next };
  }
  const spec = clone(source.spec);
  if (spec.running !== undefined) spec.running = false;
  else spec.runStrategy = 'Halted';
  return {
    create: {
      apiVersion: 'kubevirt.io/v1',
      kind: 'VirtualMachine',
      metadata: {
        name: r.spec.target?.name ?? '',
        namespace: r.metadata.namespace,
        labels: { ...(source.metadata.labels ?? {}) },
        annotations: { ...(source.metadata.annotations ?? {}), [LAST_RESTORE_ANNOTATION]: marker },
        finalizers: [VM_FINALIZER],
      },
      spec,
    },
  };
}

/** The target with restoreInProgress set to (or, with undefined, cleared of) this restore. */
export function markedTarget(vm: VirtualMachine, restoreName: string | undefined): VirtualMachine {
  const next = clone(vm);
  next.status = { ...(next.status ?? {}) };
  if (restoreName) next.status.restoreInProgress = restoreName;
  else delete next.status.restoreInProgress;
  return next;
}

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
    const now = this.ctx.clock.now().getTime();
    for (const r of this.active(undefined)) {
      if (now > restoreGraceEndsMs(r)) this.enqueue(r.metadata.namespace, r.metadata.name ?? '');
    }
  }

  private active(namespace: string | undefined): VirtualMachineRestore[] {
    return (this.ctx.store.list(RESTORE, namespace) as VirtualMachineRestore[]).filter(restoreProgressing);
  }

  private enqueue(namespace: string | undefined, name: string): void {
    this.ctx.scheduler.schedule(`restore:${objectKey(namespace, name)}`, this.ctx.snapshotStepMs, () =>
      this.sync(namespace, name),
    );
  }

  private sync(namespace: string | undefined, name: string): void {
    let r = this.ctx.store.get(RESTORE, namespace, name) as VirtualMachineRestore | undefined;
    if (!r || r.metadata.deletionTimestamp) return;
    const targetName = r.spec.target?.name ?? '';
    const target = this.ctx.store.get(VM, namespace, targetName) as VirtualMachine | undefined;
    const snapshot = this.ctx.store.get(SNAPSHOT, namespace, r.spec.virtualMachineSnapshotName ?? '') as
      VirtualMachineSnapshot | undefined;
    const contentName = snapshot?.status?.virtualMachineSnapshotContentName;
    const step = restoreStep({
      restore: r,
      target,
      vmi: this.ctx.store.get(VMI, namespace, targetName) as VirtualMachineInstance | undefined,
      snapshot,
      content: contentName ? this.ctx.store.get(SNAPSHOT_CONTENT, namespace, contentName) : undefined,
      now: this.ctx.now(),
      nowMs: this.ctx.clock.now().getTime(),
    });
    if (step.markTarget && target) this.ctx.store.update(VM, markedTarget(target, name));
    if (step.target) {
      if ('update' in step.target) this.ctx.store.update(VM, step.target.update);
      else this.ctx.store.create(VM, step.target.create);
    }
    if (step.unmarkTarget) {
      const current = this.ctx.store.get(VM, namespace, targetName) as VirtualMachine | undefined;
      if (current?.status?.restoreInProgress === name) this.ctx.store.update(VM, markedTarget(current, undefined));
    }
    if (step.init) r = { ...r, metadata: { ...r.metadata, ...step.init } };
    if (step.init || (step.status && !deepEqual(r.status, step.status)))
      r = this.ctx.store.update(RESTORE, { ...r, status: step.status ?? r.status }) as VirtualMachineRestore;
    if (step.stopTarget) {
      try {
        this.actions.stop(namespace ?? 'default', targetName, () => ({}))();
      } catch (e) {
        if (!(e instanceof ApiError)) throw e;
        const refused = reported(r.status!, 'False', 'False', e.status.message ?? 'stop failed', this.ctx.now());
        if (!deepEqual(r.status, refused)) this.ctx.store.update(RESTORE, { ...r, status: refused });
      }
    }
    if (step.requeue) this.enqueue(namespace, name);
  }

  private scheduleCleanup(r: VirtualMachineRestore): void {
    this.ctx.scheduler.schedule(`restore-cleanup:${r.metadata.uid}`, 0, () => {
      const cur = this.ctx.store.get(RESTORE, r.metadata.namespace, r.metadata.name ?? '');
      if (cur && cur.metadata.uid === r.metadata.uid && cur.metadata.finalizers?.includes(RESTORE_FINALIZER)) {
        const finalizers = cur.metadata.finalizers.filter((f) => f !== RESTORE_FINALIZER);
        this.ctx.store.update(RESTORE, { ...cur, metadata: { ...cur.metadata, finalizers } });
      }
      const vm = this.ctx.store.get(VM, r.metadata.namespace, r.spec?.target?.name ?? '') as VirtualMachine | undefined;
      if (vm && vm.status?.restoreInProgress === r.metadata.name)
        this.ctx.store.update(VM, markedTarget(vm, undefined));
    });
  }
}
