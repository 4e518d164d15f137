// VirtualMachine.status as virt-controller's updateStatus (pkg/virt-controller/watch/vm/vm.go)
// derives it from the VM and its VMI: created/ready, the first-satisfied state change request
// popped, start failures counted, VMI conditions mirrored, and printableStatus chosen by the
// first matching rule in KubeVirt's order.

import { formatTime } from './clock';
import type { VolumeState } from './context';
import { isFinal, isPaused, isStopExpected, phaseOf, strategyOrHalted } from './kubevirt';
import { getCondition, hasConditionTrue, removeCondition, upsertCondition } from './objects';
import type { Condition, VirtualMachine, VirtualMachineInstance, VirtualMachineStatus } from './types';

/** Conditions that belong to the VM itself and are never mirrored from or removed for the VMI. */
const VM_OWNED_CONDITIONS = ['Ready', 'Failure', 'RestartRequired', 'ManualRecoveryRequired'];

/** What printableStatus reads besides the VM and its VMI: the VM's volumes and the time. */
export interface StatusFacts {
  volume?: VolumeState;
  nowMs?: number;
}

type PrintableRule = [
  string,
  (vm: VirtualMachine, vmi: VirtualMachineInstance | undefined, facts: StatusFacts) => boolean,
];

function vmiConditionIs(vmi: VirtualMachineInstance | undefined, type: string, reason: string): boolean {
  const c = getCondition(vmi?.status?.conditions, type);
  return c?.status === 'False' && c.reason === reason;
}

/** pkg/util/migrations/migrations.go IsMigrating: a migration started and has not ended. */
export function isMigrating(vmi: VirtualMachineInstance | undefined): boolean {
  const m = vmi?.status?.migrationState as { startTimestamp?: string; endTimestamp?: string } | undefined;
  return !!m?.startTimestamp && !m.endTimestamp;
}

/** vm.go wasVMIInRunningPhase: the VMI reached Running at some point. */
export function everRan(vmi: VirtualMachineInstance | undefined): boolean {
  return !!vmi?.status?.phaseTransitionTimestamps?.some((t) => t.phase === 'Running');
}

/** vm.go isSetToStart: whether the run strategy wants a VMI now. */
export function isSetToStart(vm: VirtualMachine, vmi: VirtualMachineInstance | undefined): boolean {
  switch (strategyOrHalted(vm)) {
    case 'Always':
      return true;
    case 'Manual':
      return !!vmi && !isFinal(vmi);
    case 'RerunOnFailure':
      return !vmi || vmi.status?.phase !== 'Succeeded';
    case 'Once':
      return !vmi || !isFinal(vmi);
    default:
      return false;
  }
}

/**
 * vm.go isVMIStartExpected is virt-controller's in-memory create expectation: true only between
 * its VMI create call and the informer seeing the VMI. The simulator creates and observes the
 * VMI in one reconcile, so a VM without a VMI is never "Starting" (KubeVirt shows Stopped there).
 */
const START_EXPECTED_WITHOUT_VMI = false;

/** First match wins, in vm.go setPrintableStatus's order. */
export const PRINTABLE_STATUS_RULES: PrintableRule[] = [
  ['Terminating', (vm) => !!vm.metadata.deletionTimestamp],
  ['Stopping', (vm, vmi) => !!vmi && !isFinal(vmi) && (!!vmi.metadata.deletionTimestamp || isStopExpected(vm, vmi))],
  ['Migrating', (_vm, vmi) => isMigrating(vmi)],
  ['Paused', (_vm, vmi) => !!vmi && phaseOf(vmi) === 'Running' && isPaused(vmi)],
  ['Running', (_vm, vmi) => !!vmi && phaseOf(vmi) === 'Running' && !isPaused(vmi)],
  ['ErrorPvcNotFound', (_vm, vmi) => vmiConditionIs(vmi, 'Synchronized', 'FailedPvcNotFound')],
  // DataVolumeError and Provisioning ignore the run strategy: a Halted VM shows them too.
  ['DataVolumeError', (_vm, _vmi, f) => f.volume === 'DataVolumeError'],
  ['ErrorUnschedulable', (_vm, vmi) => vmiConditionIs(vmi, 'PodScheduled', 'Unschedulable')],
  ['Provisioning', (_vm, _vmi, f) => f.volume === 'Provisioning'],
  ['WaitingForVolumeBinding', (vm, vmi, f) => f.volume === 'WaitingForVolumeBinding' && isSetToStart(vm, vmi)],
  ['ErrImagePull', (_vm, vmi) => vmiConditionIs(vmi, 'Synchronized', 'ErrImagePull')],
  ['ImagePullBackOff', (_vm, vmi) => vmiConditionIs(vmi, 'Synchronized', 'ImagePullBackOff')],
  [
    'Starting',
    (_vm, vmi) =>
      vmi ? ['', 'Pending', 'Scheduling', 'Scheduled'].includes(phaseOf(vmi)) : START_EXPECTED_WITHOUT_VMI,
  ],
  [
    'CrashLoopBackOff',
    (vm, vmi) =>
      (!vmi || isFinal(vmi)) &&
      (startFailureOf(vm)?.consecutiveFailCount ?? 0) > 0 &&
      ['Always', 'RerunOnFailure', 'Once'].includes(strategyOrHalted(vm)),
  ],
  ['Stopped', (_vm, vmi) => (vmi ? isFinal(vmi) : !START_EXPECTED_WITHOUT_VMI)],
  ['WaitingForReceiver', (vm, vmi) => !vmi && strategyOrHalted(vm) === 'WaitAsReceiver'],
];

export function printableStatus(
  vm: VirtualMachine,
  vmi: VirtualMachineInstance | undefined,
  facts: StatusFacts = {},
): string {
  for (const [status, test] of PRINTABLE_STATUS_RULES) if (test(vm, vmi, facts)) return status;
  return 'Unknown';
}

export interface StartFailure {
  lastFailedVMIUID: string;
  retryAfterTimestamp: string;
  consecutiveFailCount: number;
}

export function startFailureOf(vm: VirtualMachine): StartFailure | undefined {
  return vm.status?.startFailure as StartFailure | undefined;
}

/** vm.go calculateStartBackoffTime: 10 s x failures^2, plus up to half again at random, at most 300 s. */
export function startBackoffSeconds(failCount: number, random: () => number = Math.random): number {
  const n = Math.max(1, failCount);
  const base = 10 * n * n;
  return Math.min(300, base + Math.floor(random() * (Math.floor(base / 2) + 1)));
}

/**
 * vm.go syncStartFailureStatus: a VMI that went final without ever running is a start failure
 * (counted once per VMI uid) and sets a retry time; a VMI that ran, or a run strategy that does
 * not restart, clears it.
 */
function nextStartFailure(
  vm: VirtualMachine,
  vmi: VirtualMachineInstance | undefined,
  nowMs: number,
): StartFailure | undefined {
  const prev = startFailureOf(vm);
  if (everRan(vmi) || !['Always', 'RerunOnFailure', 'Once'].includes(strategyOrHalted(vm))) return undefined;
  if (!vmi || !isFinal(vmi)) return prev;
  if (prev && prev.lastFailedVMIUID === vmi.metadata.uid) return prev;
  const count = (prev?.consecutiveFailCount ?? 0) + 1;
  return {
    lastFailedVMIUID: vmi.metadata.uid ?? '',
    retryAfterTimestamp: formatTime(new Date(nowMs + startBackoffSeconds(count) * 1000)),
    consecutiveFailCount: count,
  };
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
  volume?: VolumeState,
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

  const failure = nextStartFailure(vm, vmi, Date.parse(now));
  if (failure) next.startFailure = failure;
  else delete next.startFailure;

  let conditions = prev.conditions ?? [];
  conditions = upsertCondition(conditions, readyCondition(vmi, now));
  const mirrored = (vmi?.status?.conditions ?? []).filter((c) => !VM_OWNED_CONDITIONS.includes(c.type));
  for (const c of mirrored) conditions = upsertCondition(conditions, { ...c });
  for (const c of conditions) {
    if (!VM_OWNED_CONDITIONS.includes(c.type) && !mirrored.some((m) => m.type === c.type))
      conditions = removeCondition(conditions, c.type);
  }
  next.conditions = conditions;
  next.printableStatus = printableStatus({ ...vm, status: next }, vmi, { volume });
  return next;
}
