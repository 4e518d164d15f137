import { accepted, completed, failed, VmCommand, VmContext, VmFunction } from './runtime/function';
import { awaitTarget } from './runtime/lifecycle';
import { isPaused, isRunning, isServing, startUnderway } from './runtime/vm-state';
import { wake } from './start';
import { rfc3339 } from './runtime/activity';
import { parseDuration } from './runtime/duration';
import { HOLD_UNTIL, shouldUnpause } from './ladder';
import { unpauseToWake } from './wake-from-sleep';

// io.virtwake.vm.activity: "someone used this VM". The stamp itself
// (virtwake.io/last-activity, throttled) is written by the runtime's activity
// hook after every command, this one included (runtime/activity.ts). With
// `wake`, a stopped VM is started as io.virtwake.vm.start would, and a VM
// virtwake paused is unpaused (one paused by someone else only with
// `unpause`). `holdFor` keeps the reaper off the VM until then
// (virtwake.io/hold-until), for work the wake proxy never sees.

export interface ActivityCommand extends VmCommand {
  wake?: boolean;
  unpause?: boolean;
  holdFor?: string;
}

/** The longest hold one event may ask for. */
const MAX_HOLD_MS = 720 * 3_600_000;

export const activity: VmFunction<ActivityCommand> = {
  async run(ctx) {
    const { vm, command } = ctx;
    if (command.holdFor !== undefined) {
      const ms = parseDuration(command.holdFor);
      if (ms === undefined || ms > MAX_HOLD_MS)
        return failed(
          'InvalidHoldFor',
          `holdFor ${JSON.stringify(command.holdFor)} must be a duration of at most 720h (e.g. 2h)`,
          { vm },
        );
      if (!command.dryRun) await hold(ctx, ms);
    }
    if (!command.wake) {
      if (command.dryRun) return accepted('DryRun', { message: 'nothing was recorded', vm });
      return completed(undefined, {
        message: 'activity recorded (virtwake.io/last-activity is written at most once a minute)',
        vm,
      });
    }
    if (shouldUnpause(vm, command.unpause)) return unpauseToWake(ctx, 'activity');
    if (isPaused(vm))
      return completed('AlreadyInState', {
        message: 'paused by someone other than virtwake; left paused (send unpause: true to wake it anyway)',
        vm,
      });
    if (isServing(vm)) return completed('AlreadyInState', { vm });
    // Nothing asks KubeVirt to run it (whatever its status shows: Stopped, Provisioning, Stopping…): start it as
    // io.virtwake.vm.start would, which also waits out a VMI being shut down and reads a concurrent start's refusal.
    if (!startUnderway(vm)) return wake(ctx, 'activity');
    // Starting, CrashLoopBackOff, volumes provisioning for a VM set to run…: KubeVirt is on it.
    return awaitTarget(ctx, isRunning, 'AlreadyInProgress');
  },
};

/** Write virtwake.io/hold-until = now + ms, unless a later hold is already on the VM. */
async function hold(ctx: VmContext<ActivityCommand>, ms: number): Promise<void> {
  const until = ctx.now().getTime() + ms;
  const current = Date.parse(ctx.vm.metadata.annotations?.[HOLD_UNTIL] ?? '');
  if (!Number.isNaN(current) && current >= until) return;
  await ctx.kubevirt.mergePatch('virtualmachines', ctx.namespace, ctx.name, {
    metadata: { annotations: { [HOLD_UNTIL]: rfc3339(until) } },
  });
}
