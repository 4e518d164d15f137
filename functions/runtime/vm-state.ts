import { conditionTrue, VirtualMachine } from './kubevirt-types';
import type { VirtualMachineInstance } from './kubevirt-types';

// Target states for `wait` (reference kubevirt-api.md §3.5), as predicates on
// what a watch delivers. A deleted object arrives as undefined.

export const isRunning = (vm: VirtualMachine | undefined): boolean =>
  vm?.status?.printableStatus === 'Running' && vm.status.ready === true;

export const isPaused = (vm: VirtualMachine | undefined): boolean => vm?.status?.printableStatus === 'Paused';

export const isUnpaused = (vm: VirtualMachine | undefined): boolean =>
  vm?.status?.printableStatus === 'Running' && !conditionTrue(vm.status.conditions, 'Paused');

/**
 * No VMI and none asked for. Not printableStatus Stopped: a VM whose DataVolume
 * is provisioning or failed shows Provisioning or DataVolumeError, stopped or
 * not (KubeVirt vm.go setPrintableStatus evaluates those first).
 */
export const isStopped = (vm: VirtualMachine | undefined): boolean =>
  !vm || (!vm.status?.created && !startUnderway(vm));

/**
 * Serving traffic: Running and ready, or live-migrating (KubeVirt shows
 * Migrating before Running for the whole migration while the guest serves).
 */
export const isServing = (vm: VirtualMachine | undefined): boolean =>
  isRunning(vm) || (vm?.status?.printableStatus === 'Migrating' && vm.status.ready !== false);

const FINAL_VMI_PHASES = new Set(['Succeeded', 'Failed']);

/** Succeeded or Failed: the guest is gone but the object stays (Manual, RerunOnFailure). */
export const isFinal = (vmi: VirtualMachineInstance | undefined): boolean =>
  !!vmi && FINAL_VMI_PHASES.has(vmi.status?.phase ?? '');

/**
 * Whether a start has to be asked for: nothing asks KubeVirt to run the VM and
 * no VMI is alive. Decided from runStrategy, stateChangeRequests and the VMI,
 * never from printableStatus Stopped (a Halted VM importing a disk shows
 * Provisioning). `created` with Stopped is the one case a VMI exists but is
 * final (a Manual VM whose guest powered off): KubeVirt starts it again.
 */
export function needsStart(vm: VirtualMachine): boolean {
  if (startUnderway(vm)) return false;
  return !vm.status?.created || vm.status.printableStatus === 'Stopped';
}

export function statusOf(vm: VirtualMachine | undefined): { printableStatus: string; ready: boolean } | undefined {
  if (!vm) return undefined;
  return { printableStatus: vm.status?.printableStatus ?? 'Unknown', ready: vm.status?.ready === true };
}

/** The spec (or a queued request) asks KubeVirt to run the VM, whatever its status shows yet. */
export function startUnderway(vm: VirtualMachine): boolean {
  const spec = vm.spec ?? {};
  return (
    spec.runStrategy === 'Always' ||
    spec.running === true ||
    !!vm.status?.stateChangeRequests?.some((r) => r.action === 'Start')
  );
}

/**
 * KubeVirt is to run the VM but has no VMI for it yet: its controller has not
 * caught up with a start just accepted (status still Stopped), volumes are
 * provisioning, or it waits out a start-failure backoff (CrashLoopBackOff).
 * KubeVirt then refuses another start ("Always does not support manual start
 * requests") although one is under way.
 */
export function startLagging(vm: VirtualMachine): boolean {
  return startUnderway(vm) && !vm.status?.created;
}
