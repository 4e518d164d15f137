// VirtualMachine.status as virt-controller's updateStatus derives it from the VM and its
// VMI: created/ready, the first-satisfied state change request popped, VMI conditions
// mirrored, and printableStatus chosen by the first matching rule in KubeVirt's order.

import { isFinal, isPaused, isStartExpected, isStopExpected, phaseOf, strategyOrHalted } from './kubevirt';
import { getCondition, hasConditionTrue, removeCondition, upsertCondition } from './objects';
import type { Condition, VirtualMachine, VirtualMachineInstance, VirtualMachineStatus } from './types';

/** Conditions that belong to the VM itself and are never mirrored from or removed for the VMI. */
const VM_OWNED_CONDITIONS = ['Ready', 'Failure', 'RestartRequired', 'ManualRecoveryRequired'];

type PrintableRule = [string, (vm: VirtualMachine, vmi: VirtualMachineInstance | undefined) => boolean];

/** First match wins (vm.go setPrintableStatus); states the simulator never produces are left out. */
export const PRINTABLE_STATUS_RULES: PrintableRule[] = [
  ['Terminating', (vm) => !!vm.metadata.deletionTimestamp],
  ['Stopping', (vm, vmi) => !!vmi && !isFinal(vmi) && (!!vmi.metadata.deletionTimestamp || isStopExpected(vm, vmi))],
  ['Paused', (_vm, vmi) => !!vmi && phaseOf(vmi) === 'Running' && isPaused(vmi)],
  ['Running', (_vm, vmi) => !!vmi && phaseOf(vmi) === 'Running' && !isPaused(vmi)],
  [
    'ErrorUnschedulable',
    (_vm, vmi) => {
      const c = getCondition(vmi?.status?.conditions, 'PodScheduled');
      return c?.status === 'False' && c.reason === 'Unschedulable';
    },
  ],
  [
    'ErrImagePull',
    (_vm, vmi) => {
      const c = getCondition(vmi?.status?.conditions, 'Synchronized');
      return c?.status === 'False' && c.reason === 'ErrImagePull';
    },
  ],
  [
    'ImagePullBackOff',
    (_vm, vmi) => {
      const c = getCondition(vmi?.status?.conditions, 'Synchronized');
      return c?.status === 'False' && c.reason === 'ImagePullBackOff';
    },
  ],
  [
    'Starting',
    (vm, vmi) => (vmi ? ['', 'Pending', 'Scheduling', 'Scheduled'].includes(phaseOf(vmi)) : isStartExpected(vm)),
  ],
  ['Stopped', (vm, vmi) => (vmi ? isFinal(vmi) : !isStartExpected(vm))],
  ['WaitingForReceiver', (vm, vmi) => !vmi && strategyOrHalted(vm) === 'WaitAsReceiver'],
];

export function printableStatus(vm: VirtualMachine, vmi: VirtualMachineInstance | undefined): string {
  for (const [status, test] of PRINTABLE_STATUS_RULES) if (test(vm, vmi)) return status;
  return 'Unknown';
}

/** isTrimFirstChangeRequestNeeded: a Stop is done once its VMI is gone, a Start once a live VMI exists. */
function firstRequestSatisfied(vm: VirtualMachine, vmi: VirtualMachineInstance | undefined): boolean {
  const first = vm.status?.stateChangeRequests?.[0];
  if (!first) return false;
  if (first.action === 'Stop') {
    if (!vmi) return true;
    return first.uid === undefined || first.uid !== vmi.metadata.uid;
  }
  return !!vmi && !vmi.metadata.deletionTimestamp && !isFinal(vmi);
}

function readyCondition(vmi: VirtualMachineInstance | undefined, now: string): Condition {
  if (!vmi)
    return {
      type: 'Ready',
      status: 'False',
      reason: 'VMINotExists',
      message: 'VMI does not exist',
      lastProbeTime: now,
      lastTransitionTime: now,
    };
  const c = getCondition(vmi.status?.conditions, 'Ready');
  if (!c) {
    return {
      type: 'Ready',
      status: 'False',
      reason: 'VMIConditionMissing',
      message: 'VMI is missing the Ready condition',
      lastProbeTime: now,
      lastTransitionTime: now,
    };
  }
  return { ...c };
}

export function computeVMStatus(
  vm: VirtualMachine,
  vmi: VirtualMachineInstance | undefined,
  now: string,
): VirtualMachineStatus {
  const prev = vm.status ?? {};
  const next: VirtualMachineStatus = { ...prev };
  next.created = !!vmi;
  next.ready = !!vmi && hasConditionTrue(vmi.status?.conditions, 'Ready');
  // status.runStrategy is first written once a VMI has existed, so RerunOnFailure can tell "never started".
  if (prev.runStrategy || next.created) next.runStrategy = strategyOrHalted(vm);

  const requests = prev.stateChangeRequests ?? [];
  if (requests.length && firstRequestSatisfied(vm, vmi)) {
    const rest = requests.slice(1);
    if (rest.length) next.stateChangeRequests = rest;
    else delete next.stateChangeRequests;
  }

  let conditions = prev.conditions ?? [];
  conditions = upsertCondition(conditions, readyCondition(vmi, now));
  const mirrored = (vmi?.status?.conditions ?? []).filter((c) => !VM_OWNED_CONDITIONS.includes(c.type));
  for (const c of mirrored) conditions = upsertCondition(conditions, { ...c });
  for (const c of conditions) {
    if (!VM_OWNED_CONDITIONS.includes(c.type) && !mirrored.some((m) => m.type === c.type))
      conditions = removeCondition(conditions, c.type);
  }
  next.conditions = conditions;
  next.printableStatus = printableStatus({ ...vm, status: next }, vmi);
  return next;
}
