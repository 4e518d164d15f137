// KubeVirt's controllers against a real kube-apiserver: virt-controller's VM loop
// (pkg/virt-controller/watch/vm/vm.go syncRunStrategy + updateStatus) and virt-handler's
// VMI phases and teardown (pkg/virt-handler/vm.go), as the in-memory simulator has them in
// ../controller.ts and ../virt-handler.ts. They keep no store of their own: they read
// informers and write through the API (status through the /status subresource), so every
// write meets the real apiserver's validation, pruning and optimistic concurrency.

import type { SimContext } from '../context';
import { formatTime } from '../clock';
import { hasStartPausedRequest, hasStartRequest, hasStopRequestFor, isFinal, runStrategyOf } from '../kubevirt';
import { clone, deepEqual } from '../objects';
import type { RunStrategy, VirtualMachine, VirtualMachineInstance } from '../types';
import { buildVMI, refreshConditions, teardownDueMs, VMI_FINALIZERS, withPaused } from '../virt-handler';
import { computeVMStatus } from '../vm-status';
import { VM_FINALIZER } from '../controller';
import { Informer, keyOf, type Key } from './informer';
import { Kube, KubeError } from './kube';
import { KeyQueue } from './queue';

const PROGRESSION = ['', 'Pending', 'Scheduling', 'Scheduled', 'Running'];
const NODE = 'rig-node-1';
const KV = '/apis/kubevirt.io/v1';

const vmPath = (ns: string, name?: string) =>
  `${KV}/namespaces/${ns}/virtualmachines${name ? `/${encodeURIComponent(name)}` : ''}`;
const vmiPath = (ns: string, name?: string) =>
  `${KV}/namespaces/${ns}/virtualmachineinstances${name ? `/${encodeURIComponent(name)}` : ''}`;

function split(key: Key): [string, string] {
  const i = key.indexOf('/');
  return [key.slice(0, i), key.slice(i + 1)];
}

export interface RigControllerOptions {
  /** Delay between controller steps; each VMI phase is one step. */
  stepMs: number;
  log?: (msg: string) => void;
}

export class RigControllers {
  readonly vms: Informer<VirtualMachine>;
  readonly vmis: Informer<VirtualMachineInstance>;
  private readonly vmQueue: KeyQueue;
  private readonly vmiQueue: KeyQueue;
  /** Pause/unpause asked through virt-api, applied by the handler on its next step (uid → paused). */
  private readonly pauseAsks = new Map<string, boolean>();
  /** Called after every VMI change (the EndpointSlice, snapshot and restore controllers follow VMIs). */
  onVmiChange: (key: Key) => void = () => undefined;
  /** Called after every VM change, with the VM that was deleted, if it was (snapshots and restores follow VMs). */
  onVmChange: (key: Key, deleted?: VirtualMachine) => void = () => undefined;
  /** The helpers of the in-memory simulator read only the clock and the guest-agent set from it. */
  private readonly ctx: SimContext;

  constructor(
    private readonly kube: Kube,
    private readonly opts: RigControllerOptions,
  ) {
    // Only what the shared status rules read (virt-handler's refreshConditions and buildVMI): the rig's
    // store is the real API, so the rest of the simulator's context has no meaning here.
    this.ctx = {
      now: () => formatTime(new Date()),
      agents: new Set<string>(),
      readinessGateDelayMs: 0,
      gateLagging: new Set<string>(),
    } as unknown as SimContext;
    const log = opts.log ?? (() => undefined);
    this.vmQueue = new KeyQueue(
      opts.stepMs,
      (k) => this.syncVM(k),
      (k, e) => log(`vm ${k}: ${String(e)}`),
    );
    this.vmiQueue = new KeyQueue(
      opts.stepMs,
      (k) => this.syncVMI(k),
      (k, e) => log(`vmi ${k}: ${String(e)}`),
    );
    this.vms = new Informer<VirtualMachine>(kube, `${KV}/virtualmachines`, (k, vm, old) => {
      this.vmQueue.add(k);
      this.onVmChange(k, vm ? undefined : old);
    });
    this.vmis = new Informer<VirtualMachineInstance>(kube, `${KV}/virtualmachineinstances`, (k) => {
      this.vmQueue.add(k);
      this.vmiQueue.add(k);
      this.onVmiChange(k);
    });
  }

  async start(): Promise<void> {
    await Promise.all([this.vms.start(), this.vmis.start()]);
  }

  stop(): void {
    this.vms.stop();
    this.vmis.stop();
    this.vmQueue.close();
    this.vmiQueue.close();
  }

  idle(): boolean {
    return this.vmQueue.idle() && this.vmiQueue.idle();
  }

  /** virt-api's pause/unpause reach virt-handler, which pauses the domain and reports it in the VMI's conditions. */
  requestPause(vmi: VirtualMachineInstance, paused: boolean): void {
    this.pauseAsks.set(vmi.metadata.uid ?? '', paused);
    this.vmiQueue.add(keyOf(vmi));
  }

  // ---- virt-controller: VirtualMachine ----

  private async syncVM(key: Key): Promise<void> {
    const [ns, name] = split(key);
    let vm = this.vms.get(key);
    let vmi = this.vmis.get(key);
    if (!vm) {
      // With no kube-controller-manager in the rig, an orphaned VMI is removed here (the simulator does the same).
      if (
        vmi &&
        !vmi.metadata.deletionTimestamp &&
        vmi.metadata.ownerReferences?.some((o) => o.kind === 'VirtualMachine')
      )
        await this.deleteVMI(vmi);
      return;
    }
    if (vmi && !vmi.metadata.ownerReferences?.some((o) => o.uid === vm!.metadata.uid)) vmi = undefined;
    if (vm.metadata.deletionTimestamp) return this.finishDeletion(vm, vmi);
    if (!vm.metadata.finalizers?.includes(VM_FINALIZER)) {
      vm = await this.kube.request<VirtualMachine>(
        'PATCH',
        vmPath(ns, name),
        [
          { op: 'test', path: '/metadata/resourceVersion', value: vm.metadata.resourceVersion },
          vm.metadata.finalizers
            ? { op: 'add', path: '/metadata/finalizers/-', value: VM_FINALIZER }
            : { op: 'add', path: '/metadata/finalizers', value: [VM_FINALIZER] },
        ],
        'application/json-patch+json',
      );
    }
    const rs = runStrategyOf(vm);
    if ('strategy' in rs) await this.syncRunStrategy(vm, vmi, rs.strategy);
    // Read back what the writes above produced rather than trusting the cache to have caught up.
    vm = await this.kube.get<VirtualMachine>(vmPath(ns, name));
    if (!vm) return;
    vmi = await this.kube.get<VirtualMachineInstance>(vmiPath(ns, name));
    if (vmi && !vmi.metadata.ownerReferences?.some((o) => o.uid === vm!.metadata.uid)) vmi = undefined;
    await this.writeStatus(vm, vmi);
  }

  private async writeStatus(vm: VirtualMachine, vmi: VirtualMachineInstance | undefined): Promise<void> {
    const status = computeVMStatus(vm, vmi, this.ctx.now());
    if (deepEqual(status, vm.status ?? {})) return;
    // PUT with the read resourceVersion: a concurrent virt-api status patch makes this 409 and the key is retried.
    await this.kube.request('PUT', `${vmPath(vm.metadata.namespace!, vm.metadata.name)}/status`, { ...vm, status });
  }

  private async finishDeletion(vm: VirtualMachine, vmi: VirtualMachineInstance | undefined): Promise<void> {
    if (vmi) {
      if (!vmi.metadata.deletionTimestamp) await this.deleteVMI(vmi);
      await this.writeStatus(vm, vmi);
      return;
    }
    if (vm.metadata.finalizers?.includes(VM_FINALIZER)) {
      await this.writeStatus(vm, undefined).catch(() => undefined);
      const fresh = await this.kube.get<VirtualMachine>(vmPath(vm.metadata.namespace!, vm.metadata.name));
      if (!fresh) return;
      await this.kube.request(
        'PATCH',
        vmPath(vm.metadata.namespace!, vm.metadata.name),
        [
          { op: 'test', path: '/metadata/resourceVersion', value: fresh.metadata.resourceVersion },
          {
            op: 'replace',
            path: '/metadata/finalizers',
            value: (fresh.metadata.finalizers ?? []).filter((f) => f !== VM_FINALIZER),
          },
        ],
        'application/json-patch+json',
      );
    }
  }

  private async syncRunStrategy(vm: VirtualMachine, vmi: VirtualMachineInstance | undefined, strategy: RunStrategy) {
    switch (strategy) {
      case 'Always':
        if (vmi) {
          if (hasStopRequestFor(vm, vmi) || isFinal(vmi)) await this.stopVMI(vmi);
          return;
        }
        return this.startVMI(vm);
      case 'RerunOnFailure':
        if (vmi) {
          const failed = vmi.status?.phase === 'Failed';
          if (
            !vmi.metadata.deletionTimestamp &&
            (hasStopRequestFor(vm, vmi) || failed || vmi.status?.phase === 'Succeeded')
          ) {
            await this.stopVMI(vmi);
            if (failed) await this.addStartRequest(vm);
          }
          return;
        }
        if (hasStartRequest(vm) || vm.status?.runStrategy !== strategy) await this.startVMI(vm);
        return;
      case 'Manual':
        if (vmi) {
          if (hasStopRequestFor(vm, vmi)) await this.stopVMI(vmi);
        } else if (hasStartRequest(vm)) {
          await this.startVMI(vm);
        }
        return;
      case 'Halted':
        if (!vmi) {
          if (hasStartRequest(vm)) await this.rewriteRunning(vm);
          return;
        }
        return this.stopVMI(vmi);
      case 'Once':
        if (!vmi) await this.startVMI(vm);
        return;
      default:
        return;
    }
  }

  private async startVMI(vm: VirtualMachine): Promise<void> {
    const paused = hasStartPausedRequest(vm) || vm.spec.template?.spec?.startStrategy === 'Paused';
    const vmi = buildVMI(this.ctx, vm, { paused });
    // The apiserver assigns uid and creationTimestamp; status is dropped on create (status subresource).
    delete vmi.metadata.uid;
    delete vmi.metadata.creationTimestamp;
    try {
      await this.kube.request('POST', vmiPath(vm.metadata.namespace!), vmi);
    } catch (e) {
      if (!(e instanceof KubeError && e.status === 409)) throw e;
    }
  }

  private async stopVMI(vmi: VirtualMachineInstance): Promise<void> {
    if (!vmi.metadata.deletionTimestamp) await this.deleteVMI(vmi);
  }

  private async deleteVMI(vmi: VirtualMachineInstance): Promise<void> {
    try {
      await this.kube.request('DELETE', vmiPath(vmi.metadata.namespace!, vmi.metadata.name), {
        kind: 'DeleteOptions',
        apiVersion: 'v1',
        preconditions: { uid: vmi.metadata.uid },
      });
    } catch (e) {
      if (!(e instanceof KubeError && (e.status === 404 || e.status === 409))) throw e;
    }
  }

  private async addStartRequest(vm: VirtualMachine): Promise<void> {
    const status = {
      ...(vm.status ?? {}),
      stateChangeRequests: [...(vm.status?.stateChangeRequests ?? []), { action: 'Start' }],
    };
    await this.kube.request('PUT', `${vmPath(vm.metadata.namespace!, vm.metadata.name)}/status`, { ...vm, status });
  }

  private async rewriteRunning(vm: VirtualMachine): Promise<void> {
    const field = vm.spec.runStrategy !== undefined ? 'runStrategy' : 'running';
    await this.kube.request(
      'PATCH',
      vmPath(vm.metadata.namespace!, vm.metadata.name),
      [
        { op: 'test', path: `/spec/${field}`, value: vm.spec[field] },
        { op: 'replace', path: `/spec/${field}`, value: field === 'runStrategy' ? 'Always' : true },
      ],
      'application/json-patch+json',
    );
  }

  // ---- virt-handler: VirtualMachineInstance ----

  private async syncVMI(key: Key): Promise<void> {
    const vmi = this.vmis.get(key);
    if (!vmi) return;
    const ns = vmi.metadata.namespace!;
    const name = vmi.metadata.name!;
    if (vmi.metadata.deletionTimestamp) {
      // The running guest gets its grace period to shut down before the domain is gone
      // (pkg/virt-handler/vm.go, as ../virt-handler.ts): the VM shows Stopping meanwhile.
      const waitMs = teardownDueMs(vmi) - Date.now();
      if (waitMs > 0) {
        setTimeout(() => this.vmiQueue.add(key), waitMs).unref();
        return;
      }
      const finalizers = (vmi.metadata.finalizers ?? []).filter((f) => !VMI_FINALIZERS.includes(f));
      if (finalizers.length === (vmi.metadata.finalizers ?? []).length) return;
      await this.kube.request(
        'PATCH',
        vmiPath(ns, name),
        [
          { op: 'test', path: '/metadata/uid', value: vmi.metadata.uid },
          { op: 'replace', path: '/metadata/finalizers', value: finalizers },
        ],
        'application/json-patch+json',
      );
      return;
    }
    const next = clone(vmi);
    next.status = next.status ?? {};
    const phase = next.status.phase ?? '';
    const i = PROGRESSION.indexOf(phase);
    const ask = this.pauseAsks.get(vmi.metadata.uid ?? '');
    if (i >= 0 && i < PROGRESSION.length - 1) {
      const to = PROGRESSION[i + 1];
      if (to === 'Running' && vmi.spec?.startStrategy === 'Paused') next.status.conditions = this.paused(next, true);
      next.status.phase = to;
      next.status.phaseTransitionTimestamps = [
        ...(next.status.phaseTransitionTimestamps ?? []),
        { phase: to, phaseTransitionTimestamp: this.ctx.now() },
      ];
      if (to === 'Scheduled' || to === 'Running') {
        next.status.nodeName = NODE;
        next.metadata.labels = { ...(next.metadata.labels ?? {}), 'kubevirt.io/nodeName': NODE };
      }
    } else if (phase === 'Running' && ask !== undefined) {
      next.status.conditions = this.paused(next, ask);
      this.pauseAsks.delete(vmi.metadata.uid ?? '');
    } else {
      return;
    }
    refreshConditions(this.ctx, next);
    if (!deepEqual(next.metadata.labels, vmi.metadata.labels)) {
      const labelled = await this.kube.request<VirtualMachineInstance>('PUT', vmiPath(ns, name), {
        ...vmi,
        metadata: next.metadata,
      });
      next.metadata = labelled.metadata;
    }
    await this.kube.request('PUT', `${vmiPath(ns, name)}/status`, next);
  }

  private paused(vmi: VirtualMachineInstance, paused: boolean) {
    return withPaused(vmi.status.conditions ?? [], paused, this.ctx.now());
  }
}
