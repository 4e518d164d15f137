import { conditionTrue, VirtualMachine } from './kubevirt-types';

// Target states for `wait` (reference kubevirt-api.md §3.5), as predicates on
// what a watch delivers. A deleted object arrives as undefined.

export const isRunning = (vm: VirtualMachine | undefined): boolean =>
  vm?.status?.printableStatus === 'Running' && vm.status.ready === true;

export const isPaused = (vm: VirtualMachine | undefined): boolean => vm?.status?.printableStatus === 'Paused';

export const isUnpaused = (vm: VirtualMachine | undefined): boolean =>
  vm?.status?.printableStatus === 'Running' && !conditionTrue(vm.status.conditions, 'Paused');

export const isStopped = (vm: VirtualMachine | undefined): boolean =>
  !vm || (vm.status?.printableStatus === 'Stopped' && !vm.status.created);

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
 * A start was just accepted but the controller has not caught up (status still
 * Stopped) or the VM is provisioning volumes: KubeVirt then refuses another
 * start ("Always does not support manual start requests") although one is under way.
 */
export function startLagging(vm: VirtualMachine): boolean {
  const status = vm.status?.printableStatus ?? '';
  return (
    startUnderway(vm) &&
    !vm.status?.created &&
    ['', 'Stopped', 'Provisioning', 'WaitingForVolumeBinding'].includes(status)
  );
}
