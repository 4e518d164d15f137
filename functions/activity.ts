import { accepted, completed, VmCommand, VmFunction } from './runtime/function';
import { awaitTarget } from './runtime/lifecycle';
import { isPaused, isRunning, isServing, startUnderway } from './runtime/vm-state';
import { start } from './start';

// io.virtwake.vm.activity: "someone used this VM". The stamp itself
// (virtwake.io/last-activity, throttled) is written by the runtime's activity
// hook after every command, this one included (runtime/activity.ts). With
// `wake`, a stopped VM is started as io.virtwake.vm.start would.

export interface ActivityCommand extends VmCommand {
  wake?: boolean;
}

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
    if (isServing(vm) || isPaused(vm)) return completed('AlreadyInState', { vm });
    // Nothing asks KubeVirt to run it (whatever its status shows: Stopped, Provisioning, Stopping…): start it as
    // io.virtwake.vm.start would, which also waits out a VMI being shut down and reads a concurrent start's refusal.
    if (!startUnderway(vm)) return start.run(ctx);
    // Starting, CrashLoopBackOff, volumes provisioning for a VM set to run…: KubeVirt is on it.
    return awaitTarget(ctx, isRunning, 'AlreadyInProgress');
  },
};
