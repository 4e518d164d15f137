import type { VmCommand, VmFunction } from './runtime/function';
import { lifecycleAction } from './runtime/lifecycle';
import { isStopped } from './runtime/vm-state';

// io.virtwake.vm.stop: PUT …/virtualmachines/{name}/stop (KubeVirt names the
// field gracePeriod here); wait for Stopped with no VMI.

export interface StopCommand extends VmCommand {
  gracePeriodSeconds?: number;
}

export const stop: VmFunction<StopCommand> = {
  run(ctx) {
    const grace = ctx.command.gracePeriodSeconds;
    return lifecycleAction(ctx, 'stop', grace === undefined ? {} : { gracePeriod: grace }, isStopped);
  },
};
