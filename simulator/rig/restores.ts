// KubeVirt's VirtualMachineRestore controller (pkg/storage/snapshot/restore.go) against a real
// kube-apiserver. Each step is decided by the in-memory simulator's rules (../restores.ts
// restoreStep) from a fresh read of the restore, its target VM and VMI, the snapshot and its
// content, and applied as KubeVirt applies it: owner and finalizer through the main endpoint,
// status through /status, the target's spec by an update of the VM, and StopTarget by the
// stop subresource, through the aggregator to the rig's virt-api as KubeVirt's client calls it.

import { formatTime } from '../clock';
import { deepEqual } from '../objects';
import {
  markedTarget,
  reported,
  RESTORE_FINALIZER,
  restoreGraceEndsMs,
  restoreProgressing,
  restoreStep,
} from '../restores';
import type {
  KubeObject,
  VirtualMachine,
  VirtualMachineInstance,
  VirtualMachineRestore,
  VirtualMachineSnapshot,
} from '../types';
import { Informer, keyOf, type Key } from './informer';
import { Kube, KubeError } from './kube';
import { KeyQueue } from './queue';
import { deleteGone, KV, objPath, patchMeta, putStatus, SNAP, split } from './writes';

const restorePath = (ns: string, name: string) => objPath(SNAP, 'virtualmachinerestores', ns, name);
const snapPath = (ns: string, name: string) => objPath(SNAP, 'virtualmachinesnapshots', ns, name);
const contentPath = (ns: string, name: string) => objPath(SNAP, 'virtualmachinesnapshotcontents', ns, name);
const vmPath = (ns: string, name?: string) => objPath(KV, 'virtualmachines', ns, name);
const vmiPath = (ns: string, name: string) => objPath(KV, 'virtualmachineinstances', ns, name);
const stopPath = (ns: string, name: string) =>
  `/apis/subresources.kubevirt.io/v1/namespaces/${ns}/virtualmachines/${encodeURIComponent(name)}/stop`;

export class RigRestores {
  readonly restores: Informer<VirtualMachineRestore>;
  private readonly queue: KeyQueue;
  /** Grace-period wake-ups: a WaitGracePeriod restore fails when its target is still running then. */
  private readonly graces = new Map<Key, NodeJS.Timeout>();

  constructor(
    private readonly kube: Kube,
    stepMs: number,
    private readonly log: (m: string) => void,
  ) {
    this.queue = new KeyQueue(
      stepMs,
      (k) => this.sync(k),
      (k, e) => log(`restore ${k}: ${String(e)}`),
    );
    this.restores = new Informer<VirtualMachineRestore>(kube, `${SNAP}/virtualmachinerestores`, (k, r, old) => {
      const deleting = !!r?.metadata.deletionTimestamp && !old?.metadata.deletionTimestamp;
      if ((r && !old) || deleting) this.queue.add(k);
    });
  }

  start(): Promise<void> {
    return this.restores.start();
  }

  stop(): void {
    this.restores.stop();
    this.queue.close();
    for (const t of this.graces.values()) clearTimeout(t);
  }

  /** The target VM or its VMI changed (or the VM is gone: kube-controller-manager's garbage collector stands here). */
  targetChanged(key: Key, deletedVM?: VirtualMachine): void {
    const [ns, name] = split(key);
    if (deletedVM) {
      // The rig runs no kube-controller-manager: the restores the deleted VM owned are collected here.
      const uid = deletedVM.metadata.uid;
      for (const r of this.restores.list())
        if (r.metadata.namespace === ns && r.metadata.ownerReferences?.some((o) => o.uid === uid))
          void deleteGone(this.kube, restorePath(ns, r.metadata.name)).catch((e) =>
            this.log(`restore ${keyOf(r)}: garbage collection: ${String(e)}`),
          );
    }
    for (const r of this.restores.list())
      if (r.metadata.namespace === ns && r.spec?.target?.name === name && restoreProgressing(r))
        this.queue.add(keyOf(r));
  }

  snapshotChanged(key: Key): void {
    const [ns, name] = split(key);
    for (const r of this.restores.list())
      if (r.metadata.namespace === ns && r.spec?.virtualMachineSnapshotName === name && restoreProgressing(r))
        this.queue.add(keyOf(r));
  }

  private async sync(key: Key): Promise<void> {
    const [ns, name] = split(key);
    let r = await this.kube.get<VirtualMachineRestore>(restorePath(ns, name));
    if (!r) return;
    if (r.metadata.deletionTimestamp) return this.finish(r);
    const targetName = r.spec?.target?.name ?? '';
    const target = await this.kube.get<VirtualMachine>(vmPath(ns, targetName));
    const vmi = await this.kube.get<VirtualMachineInstance>(vmiPath(ns, targetName));
    const snapshot = await this.kube.get<VirtualMachineSnapshot>(
      snapPath(ns, r.spec?.virtualMachineSnapshotName ?? ''),
    );
    const contentName = snapshot?.status?.virtualMachineSnapshotContentName;
    const content = contentName ? await this.kube.get<KubeObject>(contentPath(ns, contentName)) : undefined;
    const now = () => formatTime(new Date());
    const step = restoreStep({ restore: r, target, vmi, snapshot, content, now: now(), nowMs: Date.now() });

    if (step.markTarget && target)
      await putStatus(this.kube, vmPath(ns, targetName), target, markedTarget(target, name).status);
    if (step.target) {
      // restore.go updates the whole VM; its status is the /status subresource's and is ignored here.
      if ('update' in step.target) await this.kube.request('PUT', vmPath(ns, targetName), step.target.update);
      else await this.kube.request('POST', vmPath(ns), step.target.create);
    }
    if (step.unmarkTarget) {
      const current = await this.kube.get<VirtualMachine>(vmPath(ns, targetName));
      if (current?.status?.restoreInProgress === name)
        await putStatus(this.kube, vmPath(ns, targetName), current, markedTarget(current, undefined).status);
    }
    if (step.init) r = await patchMeta<VirtualMachineRestore>(this.kube, restorePath(ns, name), r, step.init);
    if (step.status && !deepEqual(r.status, step.status))
      r = await putStatus<VirtualMachineRestore>(this.kube, restorePath(ns, name), r, step.status);
    if (step.stopTarget) {
      try {
        await this.kube.request('PUT', stopPath(ns, targetName), {});
      } catch (e) {
        if (!(e instanceof KubeError)) throw e;
        // restore.go doUpdateError: the refusal becomes the restore's Progressing text, and it tries again later.
        const message = (e.body as { message?: string } | undefined)?.message ?? `stop failed: ${e.status}`;
        const refused = reported(r.status ?? {}, 'False', 'False', message, now());
        if (!deepEqual(r.status, refused)) await putStatus(this.kube, restorePath(ns, name), r, refused);
      }
    }
    if (step.requeue) this.queue.add(key);
    this.wakeAtGraceEnd(key, r);
  }

  private wakeAtGraceEnd(key: Key, r: VirtualMachineRestore): void {
    if (this.graces.has(key) || !r.status || !restoreProgressing(r)) return;
    const at = restoreGraceEndsMs(r);
    this.graces.set(
      key,
      setTimeout(
        () => {
          this.graces.delete(key);
          this.queue.add(key);
        },
        Math.max(0, at - Date.now()) + 1000,
      ),
    );
  }

  /** A restore being deleted: its finalizer off, and the target released if it still names it. */
  private async finish(r: VirtualMachineRestore): Promise<void> {
    const ns = r.metadata.namespace!;
    clearTimeout(this.graces.get(keyOf(r)));
    this.graces.delete(keyOf(r));
    if (r.metadata.finalizers?.includes(RESTORE_FINALIZER))
      await patchMeta(this.kube, restorePath(ns, r.metadata.name), r, {
        finalizers: r.metadata.finalizers.filter((f) => f !== RESTORE_FINALIZER),
      });
    const path = vmPath(ns, r.spec?.target?.name ?? '');
    const vm = await this.kube.get<VirtualMachine>(path);
    if (vm?.status?.restoreInProgress === r.metadata.name)
      await putStatus(this.kube, path, vm, markedTarget(vm, undefined).status);
  }
}
