import { accepted, completed, failed, VmCommand, VmContext, VmFunction } from './runtime/function';
import { awaitTarget } from './runtime/lifecycle';
import { HandBack } from './runtime/errors';
import { isRunning } from './runtime/vm-state';
import { startUnderway } from './runtime/vm-state';
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

/** States in which the guest is up or on its way; waking them needs no start. */
const UP = new Set(['Running', 'Paused', 'Migrating']);
/** Only these are started; anything else (Starting, Provisioning, CrashLoopBackOff…) is KubeVirt's to finish. */
const STOPPED = new Set(['Stopped', '']);

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
    const status = vm.status?.printableStatus ?? '';
    if (shouldUnpause(vm, command.unpause)) return unpauseToWake(ctx, 'activity');
    if (status === 'Paused')
      return completed('AlreadyInState', {
        message: 'paused by someone other than virtwake; left paused (send unpause: true to wake it anyway)',
        vm,
      });
    if (UP.has(status)) return completed('AlreadyInState', { vm });
    // A start now would be answered "already running" by the VMI that is going away; try again once it is gone.
    if (status === 'Stopping' || status === 'Terminating') {
      throw new HandBack(
        `VM ${ctx.namespace}/${ctx.name} is ${status.toLowerCase()}; redeliver to wake it once it has stopped`,
        5,
      );
    }
    // Started as io.virtwake.vm.start would, so a concurrent start's refusal reads the same way.
    if (STOPPED.has(status) && !startUnderway(vm)) return wake(ctx, 'activity');
    // Starting, Provisioning, WaitingForVolumeBinding…: a start is already under way.
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
