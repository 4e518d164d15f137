// KubeVirt domain helpers shared by the API handlers and the controllers.

import type { RunStrategy, StateChangeRequest, VirtualMachine, VirtualMachineInstance } from './types';
import { hasConditionTrue } from './objects';

export const RUN_STRATEGIES: RunStrategy[] = ['Always', 'Halted', 'Manual', 'RerunOnFailure', 'Once', 'WaitAsReceiver'];

/** vm.RunStrategy(): running:true = Always, running:false or neither = Halted. */
export function runStrategyOf(vm: VirtualMachine): { strategy: RunStrategy } | { error: string } {
  const { running, runStrategy } = vm.spec ?? {};
  if (running !== undefined && running !== null && runStrategy !== undefined && runStrategy !== null) {
    return { error: 'running and runstrategy are mutually exclusive' };
  }
  if (running !== undefined && running !== null) return { strategy: running ? 'Always' : 'Halted' };
  if (runStrategy) return { strategy: runStrategy as RunStrategy };
  return { strategy: 'Halted' };
}

export function strategyOrHalted(vm: VirtualMachine): RunStrategy {
  const r = runStrategyOf(vm);
  return 'strategy' in r ? r.strategy : 'Halted';
}

export const FINAL_PHASES = ['Succeeded', 'Failed'];

export function isFinal(vmi: VirtualMachineInstance | undefined): boolean {
  return !!vmi && FINAL_PHASES.includes(vmi.status?.phase ?? '');
}

export function phaseOf(vmi: VirtualMachineInstance): string {
  return vmi.status?.phase ?? '';
}

export function isPaused(vmi: VirtualMachineInstance | undefined): boolean {
  return !!vmi && hasConditionTrue(vmi.status?.conditions, 'Paused');
}

export function requestsOf(vm: VirtualMachine): StateChangeRequest[] {
  return vm.status?.stateChangeRequests ?? [];
}

export function hasStartRequest(vm: VirtualMachine): boolean {
  return requestsOf(vm)[0]?.action === 'Start';
}

export function hasStopRequestFor(vm: VirtualMachine, vmi: VirtualMachineInstance): boolean {
  const first = requestsOf(vm)[0];
  return first?.action === 'Stop' && first.uid !== undefined && first.uid === vmi.metadata.uid;
}

export function hasStartPausedRequest(vm: VirtualMachine): boolean {
  const first = requestsOf(vm)[0];
  return first?.action === 'Start' && first.data?.paused === 'true';
}

/** Whether the controller is about to delete the existing VMI. */
export function isStopExpected(vm: VirtualMachine, vmi: VirtualMachineInstance): boolean {
  if (vm.metadata.deletionTimestamp) return true;
  const strategy = strategyOrHalted(vm);
  if (strategy === 'Halted') return true;
  return hasStopRequestFor(vm, vmi);
}
