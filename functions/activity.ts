import { accepted, completed, VmCommand, VmFunction } from './runtime/function';
import { awaitTarget } from './runtime/lifecycle';
import { HandBack } from './runtime/errors';
import { isRunning } from './runtime/vm-state';
import { startUnderway } from './runtime/vm-state';
import { start } from './start';

// io.virtwake.vm.activity: "someone used this VM". The stamp itself
// (virtwake.io/last-activity, throttled) is written by the runtime's activity
// hook after every command, this one included (runtime/activity.ts). With
// `wake`, a stopped VM is started as io.virtwake.vm.start would.

export interface ActivityCommand extends VmCommand {
  wake?: boolean;
}

/** States in which the guest is up or on its way; waking them needs no start. */
const UP = new Set(['Running', 'Paused', 'Migrating']);
/** Only these are started; anything else (Starting, Provisioning, CrashLoopBackOff…) is KubeVirt's to finish. */
const STOPPED = new Set(['Stopped', '']);

export const activity: VmFunction<ActivityCommand> = {
  async run(ctx) {
    const { vm, command } = ctx;
    if (!command.wake) {
      if (command.dryRun) return accepted('DryRun', { message: 'nothing was recorded', vm });
      return completed(undefined, {
        message: 'activity recorded (virtwake.io/last-activity is written at most once a minute)',
        vm,
      });
    }
    const status = vm.status?.printableStatus ?? '';
    if (UP.has(status)) return completed('AlreadyInState', { vm });
    // A start now would be answered "already running" by the VMI that is going away; try again once it is gone.
    if (status === 'Stopping' || status === 'Terminating') {
      throw new HandBack(
        `VM ${ctx.namespace}/${ctx.name} is ${status.toLowerCase()}; redeliver to wake it once it has stopped`,
        5,
      );
    }
    // Started as io.virtwake.vm.start would, so a concurrent start's refusal reads the same way.
    if (STOPPED.has(status) && !startUnderway(vm)) return start.run(ctx);
    // Starting, Provisioning, WaitingForVolumeBinding…: a start is already under way.
    return awaitTarget(ctx, isRunning, 'AlreadyInProgress');
  },
};
