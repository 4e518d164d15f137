import type { VmCommand, VmFunction } from './runtime/function';
import { lifecycleAction } from './runtime/lifecycle';
import { isPaused, isRunning } from './runtime/vm-state';

// io.virtwake.vm.start: PUT …/virtualmachines/{name}/start; wait for Running and
// ready (Paused when `paused`). "VM is already running" is AlreadyInState.

export interface StartCommand extends VmCommand {
  paused?: boolean;
}

export const start: VmFunction<StartCommand> = {
  run(ctx) {
    const paused = ctx.command.paused === true;
    return lifecycleAction(ctx, 'start', paused ? { paused: true } : {}, paused ? isPaused : isRunning);
  },
};
