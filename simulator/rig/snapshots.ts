// KubeVirt's VirtualMachineSnapshot controller (pkg/storage/snapshot/snapshot.go, source.go)
// against a real kube-apiserver. Each step is decided by the in-memory simulator's rules
// (../snapshots.ts snapshotStep) from a fresh read of the snapshot, its source VM and VMI, and
// applied as KubeVirt applies it: finalizers through the main endpoint, status through /status,
// the VirtualMachineSnapshotContent as its own object. There are no volumes and no storage
// faults on the rig: a snapshot goes Succeeded and readyToUse as soon as it holds its source.

import { formatTime } from '../clock';
import { deepEqual } from '../objects';
import {
  CONTENT_FINALIZER,
  deletingStatus,
  lockedSource,
  retainsContent,
  SNAPSHOT_FINALIZER,
  snapshotDeadlineMs,
  snapshotProgressing,
  snapshotStep,
  SOURCE_FINALIZER,
  unlockedSource,
} from '../snapshots';
import type { KubeObject, VirtualMachine, VirtualMachineInstance, VirtualMachineSnapshot } from '../types';
import { Informer, keyOf, type Key } from './informer';
import { Kube, KubeError } from './kube';
import { KeyQueue } from './queue';
import { deleteGone, KV, objPath, patchMeta, putStatus, SNAP, split } from './writes';

const snapPath = (ns: string, name?: string) => objPath(SNAP, 'virtualmachinesnapshots', ns, name);
const contentPath = (ns: string, name?: string) => objPath(SNAP, 'virtualmachinesnapshotcontents', ns, name);
const vmPath = (ns: string, name: string) => objPath(KV, 'virtualmachines', ns, name);
const vmiPath = (ns: string, name: string) => objPath(KV, 'virtualmachineinstances', ns, name);

export class RigSnapshots {
  readonly snapshots: Informer<VirtualMachineSnapshot>;
  private readonly queue: KeyQueue;
  /** failureDeadline wake-ups: a stuck snapshot is looked at again when its deadline passes. */
  private readonly deadlines = new Map<Key, NodeJS.Timeout>();
  /** Called after every snapshot change (restores wait on their snapshot). */
  onChange: (key: Key) => void = () => undefined;

  constructor(
    private readonly kube: Kube,
    stepMs: number,
    log: (m: string) => void,
  ) {
    this.queue = new KeyQueue(
      stepMs,
      (k) => this.sync(k),
      (k, e) => log(`snapshot ${k}: ${String(e)}`),
    );
    this.snapshots = new Informer<VirtualMachineSnapshot>(kube, `${SNAP}/virtualmachinesnapshots`, (k, s, old) => {
      // As the in-memory controller: a new snapshot, and one whose deletion began; its own status writes are not news.
      const deleting = !!s?.metadata.deletionTimestamp && !old?.metadata.deletionTimestamp;
      if ((s && !old) || deleting) this.queue.add(k);
      this.onChange(k);
    });
  }

  start(): Promise<void> {
    return this.snapshots.start();
  }

  stop(): void {
    this.snapshots.stop();
    this.queue.close();
    for (const t of this.deadlines.values()) clearTimeout(t);
  }

  /** A source VM or its VMI changed: the snapshots waiting on it may now lock it. */
  sourceChanged(key: Key): void {
    const [ns, name] = split(key);
    for (const s of this.snapshots.list())
      if (s.metadata.namespace === ns && s.spec?.source?.name === name && snapshotProgressing(s))
        this.queue.add(keyOf(s));
  }

  private async sync(key: Key): Promise<void> {
    const [ns, name] = split(key);
    const s = await this.kube.get<VirtualMachineSnapshot>(snapPath(ns, name));
    if (!s) return;
    if (s.metadata.deletionTimestamp) return this.finish(s);
    const source = s.spec?.source?.name ?? '';
    let vm = await this.kube.get<VirtualMachine>(vmPath(ns, source));
    const vmi = vm ? await this.kube.get<VirtualMachineInstance>(vmiPath(ns, source)) : undefined;
    // source.go Lock writes the status first and the finalizer after it; a lock cut between the two is completed here.
    if (vm?.status?.snapshotInProgress === name && !vm.metadata.finalizers?.includes(SOURCE_FINALIZER))
      vm = await patchMeta<VirtualMachine>(this.kube, vmPath(ns, source), vm, {
        finalizers: [...(vm.metadata.finalizers ?? []), SOURCE_FINALIZER],
      });
    const now = new Date();
    const step = snapshotStep({ snapshot: s, vm, vmi, fault: null, now: formatTime(now), nowMs: now.getTime() });
    if (step.unlock) await this.unlock(s);
    if (step.lock && vm) {
      const locked = lockedSource(vm, name);
      const written = await putStatus<VirtualMachine>(this.kube, vmPath(ns, source), vm, locked.status);
      await patchMeta(this.kube, vmPath(ns, source), written, { finalizers: locked.metadata.finalizers });
    }
    if (step.createContent) await this.createContent(ns, step.createContent);
    if (step.contentReady) await this.contentReady(ns, s.status?.virtualMachineSnapshotContentName);
    let cur = s;
    if (step.addFinalizer && !s.metadata.finalizers?.includes(SNAPSHOT_FINALIZER))
      cur = await patchMeta(this.kube, snapPath(ns, name), s, {
        finalizers: [...(s.metadata.finalizers ?? []), SNAPSHOT_FINALIZER],
      });
    if (step.status && !deepEqual(cur.status, step.status))
      await putStatus(this.kube, snapPath(ns, name), cur, step.status);
    if (step.requeue) this.queue.add(key);
    this.wakeAtDeadline(key, s);
  }

  private wakeAtDeadline(key: Key, s: VirtualMachineSnapshot): void {
    const at = snapshotDeadlineMs(s);
    if (this.deadlines.has(key) || at === undefined || !s.status || !snapshotProgressing(s)) return;
    this.deadlines.set(
      key,
      setTimeout(
        () => {
          this.deadlines.delete(key);
          this.queue.add(key);
        },
        Math.max(0, at - Date.now()) + 1000,
      ),
    );
  }

  /** The content as KubeVirt creates it; its status (creationTime) goes through /status like every other. */
  private async createContent(ns: string, content: KubeObject): Promise<void> {
    const path = contentPath(ns, content.metadata.name);
    let cur: KubeObject | undefined;
    try {
      cur = await this.kube.request<KubeObject>('POST', contentPath(ns), content);
    } catch (e) {
      if (!(e instanceof KubeError && e.status === 409)) throw e;
      cur = await this.kube.get<KubeObject>(path);
    }
    if (cur && !cur.status?.creationTime) await putStatus(this.kube, path, cur, content.status);
  }

  private async contentReady(ns: string, name: string | undefined): Promise<void> {
    const content = name ? await this.kube.get<KubeObject>(contentPath(ns, name)) : undefined;
    if (content && content.status?.readyToUse !== true)
      await putStatus(this.kube, contentPath(ns, name), content, { ...(content.status ?? {}), readyToUse: true });
  }

  /** source.go Unlock: the finalizer off, then the status cleared. */
  private async unlock(s: VirtualMachineSnapshot): Promise<void> {
    const ns = s.metadata.namespace!;
    const path = vmPath(ns, s.spec?.source?.name ?? '');
    let vm = await this.kube.get<VirtualMachine>(path);
    const next = unlockedSource(vm, s.metadata.name);
    if (!vm || !next) return;
    if (vm.metadata.finalizers?.includes(SOURCE_FINALIZER))
      vm = await patchMeta<VirtualMachine>(this.kube, path, vm, { finalizers: next.metadata.finalizers });
    await putStatus(this.kube, path, vm, next.status);
  }

  /** A snapshot being deleted: Deleting while it was in progress, then source and content released, then its finalizer. */
  private async finish(s: VirtualMachineSnapshot): Promise<void> {
    const ns = s.metadata.namespace!;
    const key = keyOf(s);
    clearTimeout(this.deadlines.get(key));
    this.deadlines.delete(key);
    if (!s.metadata.finalizers?.includes(SNAPSHOT_FINALIZER)) return;
    const deleting = deletingStatus(s);
    if (deleting && s.status?.phase !== 'Deleting') {
      await putStatus(this.kube, snapPath(ns, s.metadata.name), s, deleting);
      this.queue.add(key);
      return;
    }
    await this.unlock(s);
    const contentName = s.status?.virtualMachineSnapshotContentName;
    if (contentName && !retainsContent(s)) {
      const content = await this.kube.get<KubeObject>(contentPath(ns, contentName));
      if (content) {
        // The content controller lets go of its own finalizer as the content is deleted.
        if (content.metadata.finalizers?.includes(CONTENT_FINALIZER))
          await patchMeta(this.kube, contentPath(ns, contentName), content, {
            finalizers: content.metadata.finalizers.filter((f) => f !== CONTENT_FINALIZER),
          });
        await deleteGone(this.kube, contentPath(ns, contentName));
      }
    }
    await patchMeta(this.kube, snapPath(ns, s.metadata.name), s, {
      finalizers: s.metadata.finalizers.filter((f) => f !== SNAPSHOT_FINALIZER),
    });
  }
}
