// virt-controller's VirtualMachine loop (pkg/virt-controller/watch/vm/vm.go): one reconcile per
// VM key, a step after anything about the VM or its VMI changed. It acts on the runStrategy and
// the first pending state change request (syncRunStrategy), then writes the derived status.
// A VMI is created only once the VM's DataVolumes are ready and no start-failure backoff runs.

import type { SimContext } from './context';
import { hasStartPausedRequest, hasStartRequest, hasStopRequestFor, isFinal, runStrategyOf } from './kubevirt';
import { clone, deepEqual, objectKey } from './objects';
import { VM, VMI } from './resources';
import type { RunStrategy, VirtualMachine, VirtualMachineInstance } from './types';
import { computeVMStatus, startFailureOf } from './vm-status';
import type { VirtHandler } from './virt-handler';
import { admitVMUpdate } from './admission';
import { ApiError } from './errors';

export const VM_FINALIZER = 'kubevirt.io/virtualMachineControllerFinalize';

export class VMController {
  private readonly unsubscribe: () => void;
  /** VMs (ns/name) with a start failure on record, whose retryAfter recheck() watches. */
  private readonly backingOff = new Set<string>();

  constructor(
    private readonly ctx: SimContext,
    private readonly handler: VirtHandler,
  ) {
    this.unsubscribe = ctx.store.subscribe((e) => {
      if (ctx.quiet) return;
      if (e.resource === VM || e.resource === VMI)
        this.enqueue(e.object.metadata.namespace, e.object.metadata.name ?? '');
    });
  }

  close(): void {
    this.unsubscribe();
  }

  enqueue(namespace: string | undefined, name: string): void {
    this.ctx.scheduler.schedule(`vm-sync:${objectKey(namespace, name)}`, this.ctx.stepMs, () =>
      this.sync(namespace, name),
    );
  }

  sync(namespace: string | undefined, name: string): void {
    const store = this.ctx.store;
    let vm = store.get(VM, namespace, name) as VirtualMachine | undefined;
    let vmi = store.get(VMI, namespace, name) as VirtualMachineInstance | undefined;
    if (!vm) {
      // Garbage collection of an orphaned VMI.
      if (
        vmi &&
        !vmi.metadata.deletionTimestamp &&
        vmi.metadata.ownerReferences?.some((o) => o.kind === 'VirtualMachine')
      ) {
        store.delete(VMI, namespace, name);
      }
      return;
    }
    if (vmi && !vmi.metadata.ownerReferences?.some((o) => o.uid === vm!.metadata.uid)) vmi = undefined;

    if (vm.metadata.deletionTimestamp) {
      this.finishDeletion(vm, vmi);
      return;
    }
    if (!vm.metadata.finalizers?.includes(VM_FINALIZER)) {
      const next = clone(vm);
      next.metadata.finalizers = [...(next.metadata.finalizers ?? []), VM_FINALIZER];
      vm = store.update(VM, next) as VirtualMachine;
    }

    const rs = runStrategyOf(vm);
    if ('strategy' in rs) this.syncRunStrategy(vm, vmi, rs.strategy);

    vm = store.get(VM, namespace, name) as VirtualMachine | undefined;
    if (!vm) return;
    vmi = store.get(VMI, namespace, name) as VirtualMachineInstance | undefined;
    const status = computeVMStatus(vm, vmi, this.ctx.now(), this.volumeOf(vm));
    if (status.startFailure) this.backingOff.add(objectKey(namespace, name));
    else this.backingOff.delete(objectKey(namespace, name));
    if (!deepEqual(status, vm.status ?? {})) store.update(VM, { ...vm, status });
  }

  private volumeOf(vm: VirtualMachine) {
    return this.ctx.volumes.get(objectKey(vm.metadata.namespace, vm.metadata.name));
  }

  /** VMs whose start-failure backoff has run out get reconciled (the clock moved or time passed). */
  recheck(): void {
    const now = this.ctx.clock.now().getTime();
    for (const key of [...this.backingOff]) {
      const [namespace, name] = key.split('/');
      const vm = this.ctx.store.get(VM, namespace, name) as VirtualMachine | undefined;
      if (!vm) {
        this.backingOff.delete(key);
        continue;
      }
      const f = startFailureOf(vm);
      if (
        f &&
        Date.parse(f.retryAfterTimestamp) <= now &&
        !this.ctx.store.get(VMI, vm.metadata.namespace, vm.metadata.name)
      )
        this.enqueue(vm.metadata.namespace, vm.metadata.name);
    }
  }

  private finishDeletion(vm: VirtualMachine, vmi: VirtualMachineInstance | undefined): void {
    const store = this.ctx.store;
    if (vmi) {
      if (!vmi.metadata.deletionTimestamp) store.delete(VMI, vmi.metadata.namespace, vmi.metadata.name ?? '');
      const status = computeVMStatus(vm, vmi, this.ctx.now(), this.volumeOf(vm));
      if (!deepEqual(status, vm.status ?? {})) store.update(VM, { ...vm, status });
      return;
    }
    if (vm.metadata.finalizers?.includes(VM_FINALIZER)) {
      const next = clone(vm);
      next.metadata.finalizers = next.metadata.finalizers!.filter((f) => f !== VM_FINALIZER);
      next.status = computeVMStatus(vm, undefined, this.ctx.now(), this.volumeOf(vm));
      store.update(VM, next);
    }
  }

  private startVMI(vm: VirtualMachine): void {
    // vm.go handleDataVolumes: no VMI while a DataVolume imports or failed (a WaitForFirstConsumer
    // volume does get its VMI: the pod is what binds it).
    const volume = this.volumeOf(vm);
    if (volume === 'Provisioning' || volume === 'DataVolumeError') return;
    // vm.go startFailureBackoffTimeLeft: after a start failure the next VMI waits for retryAfter.
    const failure = startFailureOf(vm);
    if (failure && Date.parse(failure.retryAfterTimestamp) > this.ctx.clock.now().getTime()) return;
    const paused = hasStartPausedRequest(vm) || vm.spec.template?.spec?.startStrategy === 'Paused';
    this.handler.start(vm, paused);
  }

  private stopVMI(vmi: VirtualMachineInstance): void {
    if (!vmi.metadata.deletionTimestamp) this.ctx.store.delete(VMI, vmi.metadata.namespace, vmi.metadata.name ?? '');
  }

  private syncRunStrategy(vm: VirtualMachine, vmi: VirtualMachineInstance | undefined, strategy: RunStrategy): void {
    switch (strategy) {
      case 'Always':
        if (vmi) {
          if (hasStopRequestFor(vm, vmi) || isFinal(vmi)) this.stopVMI(vmi);
          return;
        }
        this.startVMI(vm);
        return;
      case 'RerunOnFailure':
        if (vmi) {
          const failed = vmi.status?.phase === 'Failed';
          if (
            !vmi.metadata.deletionTimestamp &&
            (hasStopRequestFor(vm, vmi) || failed || vmi.status?.phase === 'Succeeded')
          ) {
            this.stopVMI(vmi);
            if (failed) this.addStartRequest(vm);
          }
          return;
        }
        if (hasStartRequest(vm) || vm.status?.runStrategy !== strategy) this.startVMI(vm);
        return;
      case 'Manual':
        if (vmi) {
          if (hasStopRequestFor(vm, vmi)) this.stopVMI(vmi);
        } else if (hasStartRequest(vm)) {
          this.startVMI(vm);
        }
        return;
      case 'Halted':
        if (!vmi) {
          // A paused start arrives as a request; the controller turns it into a running spec.
          if (hasStartRequest(vm)) this.rewriteRunning(vm);
          return;
        }
        this.stopVMI(vmi);
        return;
      case 'Once':
        if (!vmi) this.startVMI(vm);
        return;
      default:
        return;
    }
  }

  private addStartRequest(vm: VirtualMachine): void {
    const cur = this.ctx.store.get(VM, vm.metadata.namespace, vm.metadata.name ?? '') as VirtualMachine;
    const next = clone(cur);
    next.status = {
      ...(next.status ?? {}),
      stateChangeRequests: [...(next.status?.stateChangeRequests ?? []), { action: 'Start' }],
    };
    this.ctx.store.update(VM, next);
  }

  private rewriteRunning(vm: VirtualMachine): void {
    const next = clone(vm);
    if (next.spec.runStrategy !== undefined) next.spec.runStrategy = 'Always';
    else next.spec.running = true;
    try {
      admitVMUpdate(vm, next);
    } catch (e) {
      if (e instanceof ApiError) return; // denied (e.g. snapshot lock); retried when the VM changes again
      throw e;
    }
    this.ctx.store.update(VM, next);
  }
}
