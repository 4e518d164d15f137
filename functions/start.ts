import type { Outcome, VmCommand, VmContext, VmFunction } from './runtime/function';
import { awaitTarget, lifecycleAction } from './runtime/lifecycle';
import { isPaused, isRunning, startLagging, startUnderway } from './runtime/vm-state';
import { shouldUnpause } from './ladder';
import { reportStartedFromSleep, unpauseToWake } from './wake-from-sleep';

// io.virtwake.vm.start: PUT …/virtualmachines/{name}/start; wait for Running and
// ready (Paused when `paused`). "VM is already running" is AlreadyInState. A
// refusal of a VM whose start is already under way (a redelivery that arrives
// before the controller caught up, or a concurrent delivery that won) is
// AlreadyInProgress, not a failure.
//
// The sleep ladder (contract §5): a VM virtwake paused is unpaused instead (one
// paused by someone else only with `unpause: true`), and a start of a VM
// virtwake stopped is reported as a wake from the stopped tier.

export interface StartCommand extends VmCommand {
  paused?: boolean;
  unpause?: boolean;
}

export const start: VmFunction<StartCommand> = {
  run: (ctx) => wake(ctx, 'start'),
};

/** Start (or unpause, see above) on behalf of `trigger`: io.virtwake.vm.start, or activity's `wake`. */
export async function wake(ctx: VmContext<StartCommand>, trigger: 'start' | 'activity'): Promise<Outcome> {
  if (!ctx.command.paused && shouldUnpause(ctx.vm, ctx.command.unpause)) return unpauseToWake(ctx, trigger);
  const began = process.hrtime.bigint();
  const outcome = await startVM(ctx);
  await reportStartedFromSleep(ctx, outcome, trigger, Number(process.hrtime.bigint() - began) / 1e9);
  return outcome;
}

const startVM: VmFunction<StartCommand>['run'] = async (ctx) => {
  const paused = ctx.command.paused === true;
  const target = paused ? isPaused : isRunning;
  const outcome = await lifecycleAction(ctx, 'start', paused ? { paused: true } : {}, target);
  if (outcome.reason !== 'Refused' || ctx.command.dryRun) return outcome;
  if (startLagging(ctx.vm)) return awaitTarget(ctx, target, 'AlreadyInProgress');
  // Not meant to run when we read it, meant to run now: another delivery started it in between.
  if (!startUnderway(ctx.vm)) {
    const now = await ctx.kubevirt.getVM(ctx.namespace, ctx.name);
    if (now && startUnderway(now)) return awaitTarget({ ...ctx, vm: now }, target, 'AlreadyInProgress');
  }
  return outcome;
};
