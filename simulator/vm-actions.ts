// virt-api's lifecycle handlers (pkg/virt-api/rest/lifecycle.go): the checks in their real
// order, the runStrategy table for the decision, and the resulting spec or status patch. Used
// by the HTTP subresources and by the restore controller's StopTarget.
// start/stop/restart decide on one read of the VM and return the patch to commit; virt-api's
// JSON patch carries a `test` of the values it read, so when the VM changed in between,
// kube-apiserver answers 422 and virt-api relays 500 "the server rejected our request due to an
// error in our request" (lifecycle.go patch error handling; apiserver handlers/patch.go drops
// the detail for 422). The window between read and commit is ctx.virtApiWindowMs.

import { admitVMUpdate } from './admission';
import type { SimContext } from './context';
import { ApiError, errors } from './errors';
import { isFinal, runStrategyOf } from './kubevirt';
import { decideCell, decidePrecheck, vmiStateOf, type Effect, type Facts, type Outcome } from './kubevirt-lifecycle';
import { clone, deepEqual, hasConditionTrue } from './objects';
import { VM, VMI } from './resources';
import type { StateChangeRequest, VirtualMachine, VirtualMachineInstance } from './types';
import type { VirtHandler } from './virt-handler';

/** virt-api builds its errors against the singular resource: virtualmachine.kubevirt.io. */
export const VM_GR = { group: 'kubevirt.io', resource: 'virtualmachine' };
export const VMI_GR = { group: 'kubevirt.io', resource: 'virtualmachineinstance' };

export const MANUAL_RECOVERY_MESSAGE =
  'VM recovery required: Volume migration failed, leaving some volumes pointing to non-consistent targets; manual intervention is needed to reassign them to their original volumes.';

export interface StartOptions {
  paused?: boolean;
  dryRun?: string[];
}
export interface StopOptions {
  gracePeriod?: number;
  dryRun?: string[];
}
export interface RestartOptions {
  gracePeriodSeconds?: number;
  dryRun?: string[];
}
export interface DryRunOptions {
  dryRun?: string[];
}

/** Request bodies are decoded lazily because virt-api decodes them at different points per action. */
export type BodyDecoder<T> = () => T;

/** The patch a lifecycle handler decided on, applied once its read-to-write window has passed. */
export type Commit = () => void;

export const CONCURRENT_CHANGE_MESSAGE = 'the server rejected our request due to an error in our request';

const runningFields = (vm: VirtualMachine) => ({ running: vm.spec.running, runStrategy: vm.spec.runStrategy });

function isDryRun(o: DryRunOptions): boolean {
  return Array.isArray(o.dryRun) && o.dryRun.length > 0;
}

export class VmActions {
  constructor(
    private readonly ctx: SimContext,
    private readonly handler: VirtHandler,
  ) {}

  private fetchVM(namespace: string, name: string): VirtualMachine {
    const vm = this.ctx.store.get(VM, namespace, name) as VirtualMachine | undefined;
    if (!vm) throw errors.notFound(VM_GR, name);
    return vm;
  }

  private getVMI(namespace: string, name: string): VirtualMachineInstance | undefined {
    return this.ctx.store.get(VMI, namespace, name) as VirtualMachineInstance | undefined;
  }

  private fetchVMI(namespace: string, name: string): VirtualMachineInstance {
    const vmi = this.getVMI(namespace, name);
    if (!vmi) throw errors.notFound(VMI_GR, name);
    return vmi;
  }

  private strategy(vm: VirtualMachine) {
    const rs = runStrategyOf(vm);
    if ('error' in rs) throw errors.internal(rs.error);
    return rs.strategy;
  }

  start(namespace: string, name: string, body: BodyDecoder<StartOptions>): Commit {
    const vm = this.fetchVM(namespace, name);
    const vmi = this.getVMI(namespace, name);
    const facts: Facts = { vmi: vmiStateOf(vmi), paused: false, shorterGrace: false };
    this.refuse(name, decidePrecheck('start', facts));
    if (hasConditionTrue(vm.status?.conditions, 'ManualRecoveryRequired'))
      throw errors.conflict(VM_GR, name, MANUAL_RECOVERY_MESSAGE);
    const opts = body();
    facts.paused = opts.paused === true;
    const outcome = decideCell(this.strategy(vm), 'start', facts);
    this.refuse(name, outcome);
    return () => this.apply(vm, vmi, outcome, { paused: facts.paused, dryRun: isDryRun(opts) });
  }

  stop(namespace: string, name: string, body: BodyDecoder<StopOptions>): Commit {
    const opts = body();
    const vm = this.fetchVM(namespace, name);
    const strategy = this.strategy(vm);
    const vmi = this.getVMI(namespace, name);
    let shorterGrace = false;
    if (vmi && !isFinal(vmi) && opts.gracePeriod !== undefined) {
      const old = vmi.spec?.terminationGracePeriodSeconds as number | undefined;
      shorterGrace = old === undefined || old === null || opts.gracePeriod < old;
      // Patched before the strategy check, and not undone when the answer is 409.
      this.patchGrace(vmi, opts.gracePeriod, isDryRun(opts));
    }
    const outcome = decideCell(strategy, 'stop', { vmi: vmiStateOf(vmi), paused: false, shorterGrace });
    this.refuse(name, outcome);
    return () => this.apply(vm, vmi, outcome, { paused: false, dryRun: isDryRun(opts) });
  }

  restart(namespace: string, name: string, body: BodyDecoder<RestartOptions>): Commit {
    const opts = body();
    if (opts.gracePeriodSeconds !== undefined) {
      if (opts.gracePeriodSeconds > 0)
        throw errors.badRequest('For force restart, only gracePeriod=0 is supported for now');
      if (opts.gracePeriodSeconds < 0) throw errors.badRequest('gracePeriod has to be greater or equal to 0');
    }
    const vm = this.fetchVM(namespace, name);
    if (hasConditionTrue(vm.status?.conditions, 'VolumesChange'))
      throw errors.conflict(VM_GR, name, MANUAL_RECOVERY_MESSAGE);
    const strategy = this.strategy(vm);
    const vmi = this.getVMI(namespace, name);
    const outcome = decideCell(strategy, 'restart', { vmi: vmiStateOf(vmi), paused: false, shorterGrace: false });
    this.refuse(name, outcome);
    if (vmi && opts.gracePeriodSeconds === 0) this.patchGrace(vmi, 1, isDryRun(opts));
    return () => this.apply(vm, vmi, outcome, { paused: false, dryRun: isDryRun(opts) });
  }

  pause(namespace: string, name: string, body: BodyDecoder<DryRunOptions>): void {
    const opts = body();
    const vmi = this.fetchVMI(namespace, name);
    if (vmi.status?.phase !== 'Running') throw errors.conflict(VMI_GR, name, 'VM is not running');
    const probe = vmi.spec?.livenessProbe as { guestAgentPing?: unknown } | undefined;
    if (probe && !probe.guestAgentPing)
      throw errors.forbidden(VMI_GR, name, 'Pausing VMIs with a non-GuestAgentPing LivenessProbe is not supported');
    if (vmi.status.conditions?.some((c) => c.type === 'Paused'))
      throw errors.conflict(VMI_GR, name, 'VMI is already paused');
    if (opts.dryRun?.[0] === 'All') return;
    this.handler.schedulePause(vmi, true);
  }

  unpause(namespace: string, name: string, body: BodyDecoder<DryRunOptions>): void {
    const vm = this.ctx.store.get(VM, namespace, name) as VirtualMachine | undefined;
    if (vm?.status?.snapshotInProgress) throw errors.conflict(VM_GR, name, 'VM snapshot is in progress');
    const opts = body();
    const vmi = this.fetchVMI(namespace, name);
    if (vmi.status?.phase !== 'Running') throw errors.conflict(VMI_GR, name, 'VMI is not running');
    if (!vmi.status.conditions?.some((c) => c.type === 'Paused'))
      throw errors.conflict(VMI_GR, name, 'VMI is not paused');
    if (opts.dryRun?.[0] === 'All') return;
    this.handler.schedulePause(vmi, false);
  }

  freeze(namespace: string, name: string, frozen: boolean): void {
    const vmi = this.fetchVMI(namespace, name);
    if (vmi.status?.phase !== 'Running')
      throw errors.conflict(VMI_GR, name, frozen ? 'VM is not running' : 'VMI is not running');
    const next = clone(vmi);
    if (frozen) next.status.fsFreezeStatus = 'frozen';
    else delete next.status.fsFreezeStatus;
    this.ctx.store.update(VMI, next);
  }

  softReboot(namespace: string, name: string): void {
    const vmi = this.fetchVMI(namespace, name);
    if (vmi.status?.phase !== 'Running') throw errors.conflict(VMI_GR, name, 'VM is not running');
    if (hasConditionTrue(vmi.status.conditions, 'Paused')) throw errors.conflict(VMI_GR, name, 'VMI is paused');
  }

  private refuse(name: string, outcome: Outcome | undefined): void {
    if (outcome && outcome.code === 409) throw errors.conflict(VM_GR, name, outcome.message);
  }

  private patchGrace(vmi: VirtualMachineInstance, seconds: number, dryRun: boolean): void {
    const next = clone(vmi);
    next.spec = { ...(next.spec ?? {}), terminationGracePeriodSeconds: seconds };
    this.ctx.store.update(VMI, next, { dryRun });
  }

  private apply(
    vm: VirtualMachine,
    vmi: VirtualMachineInstance | undefined,
    outcome: Outcome,
    o: { paused: boolean; dryRun: boolean },
  ): void {
    if (outcome.code !== 202) return;
    const effect: Effect = outcome.effect;
    if (effect.kind === 'none') return;
    const current = this.fetchVM(vm.metadata.namespace ?? 'default', vm.metadata.name);
    const unchanged =
      effect.kind === 'spec'
        ? deepEqual(runningFields(current), runningFields(vm))
        : deepEqual(current.status?.stateChangeRequests, vm.status?.stateChangeRequests);
    if (!unchanged) throw errors.internal(CONCURRENT_CHANGE_MESSAGE);
    if (effect.kind === 'spec') this.patchRunning(current, effect.running, o.dryRun);
    else if (effect.kind === 'requests') {
      const changes: StateChangeRequest[] = effect.requests.map((r) =>
        r === 'StopCurrent'
          ? { action: 'Stop', uid: vmi?.metadata.uid }
          : o.paused
            ? { action: 'Start', data: { paused: 'true' } }
            : { action: 'Start' },
      );
      this.patchRequests(current, changes, o.dryRun);
    }
  }

  /** getRunningPatch: keep whichever field the VM uses; the VM webhook may deny it (-> 500). */
  private patchRunning(vm: VirtualMachine, running: boolean, dryRun: boolean): void {
    const next = clone(vm);
    if (vm.spec.runStrategy !== undefined && vm.spec.runStrategy !== null)
      next.spec.runStrategy = running ? 'Always' : 'Halted';
    else next.spec.running = running;
    try {
      admitVMUpdate(vm, next);
    } catch (e) {
      if (e instanceof ApiError) throw errors.internal(e.status.message ?? 'admission denied');
      throw e;
    }
    this.ctx.store.update(VM, next, { dryRun });
  }

  /** getChangeRequestJson: add to an empty queue, let a lone Stop replace it, else "already underway". */
  private patchRequests(vm: VirtualMachine, changes: StateChangeRequest[], dryRun: boolean): void {
    const next = clone(vm);
    const status = next.status ?? {};
    const queued = status.stateChangeRequests ?? [];
    if (!deepEqual(status, {}) && queued.length > 0 && !(changes.length === 1 && changes[0].action === 'Stop')) {
      throw errors.internal('unable to complete request: stop/start already underway');
    }
    status.stateChangeRequests = changes;
    delete status.startFailure;
    next.status = status;
    this.ctx.store.update(VM, next, { dryRun });
  }
}
