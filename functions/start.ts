import { accepted, completed, failed, Outcome, VmCommand, VmContext, VmFunction } from './runtime/function';
import { HandBack } from './runtime/errors';
import { awaitTarget, lifecycleAction, watchWhileWaiting } from './runtime/lifecycle';
import { Transient } from './runtime/retry';
import type { VirtualMachine, VirtualMachineInstance } from './runtime/kubevirt-types';
import { isPaused, isRunning, isServing, startLagging, startUnderway } from './runtime/vm-state';

// io.virtwake.vm.start: PUT …/virtualmachines/{name}/start; wait for Running and
// ready (Paused when `paused`). A refusal of a VM whose start is already under
// way (a redelivery that arrives before the controller caught up, or a
// concurrent delivery that won) is AlreadyInProgress, not a failure.
//
// KubeVirt answers "VM is already running" for any VMI that is not final
// (docs/kubevirt-answers.md): one being shut down, one still being scheduled,
// one running. So that answer is only where the work starts:
//  - the VMI is going away (Stopping): the start would be lost, so wait for it
//    to go and ask again; past the retry budget (or the wait) the event goes
//    back to Knative, whose redelivery asks again;
//  - running (or migrating): AlreadyInState, unless `paused` was asked of a VM
//    that runs unpaused, which KubeVirt cannot do: failed, saying so;
//  - anything else (Starting, ErrorUnschedulable, ErrImagePull…): on its way,
//    AlreadyInProgress, and with `wait` completed only once Running and ready.

export interface StartCommand extends VmCommand {
  paused?: boolean;
}

export const start: VmFunction<StartCommand> = {
  async run(ctx) {
    const paused = ctx.command.paused === true;
    const target = paused ? isPaused : isRunning;
    const outcome = await lifecycleAction(ctx, 'start', paused ? { paused: true } : {}, target, (answer) =>
      alreadyRunning(ctx, paused, answer.message),
    );
    if (outcome.reason !== 'Refused' || ctx.command.dryRun) return outcome;
    if (startLagging(ctx.vm)) return awaitTarget(ctx, target, 'AlreadyInProgress');
    // RerunOnFailure refuses a start while its failed VMI is there because the controller reruns it itself.
    if (ctx.vm.spec?.runStrategy === 'RerunOnFailure' && ctx.vm.status?.created)
      return awaitTarget(ctx, target, 'AlreadyInProgress');
    // Not meant to run when we read it, meant to run now: another delivery started it in between.
    if (!startUnderway(ctx.vm)) {
      const now = await ctx.kubevirt.getVM(ctx.namespace, ctx.name);
      if (now && startUnderway(now)) return awaitTarget({ ...ctx, vm: now }, target, 'AlreadyInProgress');
    }
    return outcome;
  },
};

/** KubeVirt said "VM is already running": look at the VM and its VMI to say what that means now. */
async function alreadyRunning(ctx: VmContext<StartCommand>, paused: boolean, said: string): Promise<Outcome> {
  const { kubevirt, namespace, name } = ctx;
  const [vm, vmi] = await Promise.all([kubevirt.getVM(namespace, name), kubevirt.getVMI(namespace, name)]);
  if (!vm) return failed('NotFound', `VM ${namespace}/${name} was deleted`);
  const seen = { ...ctx, vm };
  const status = vm.status?.printableStatus ?? 'Unknown';
  // Gone between the answer and the read: ask again from a fresh read.
  if (!vmi) throw new Transient(new Error(`the VMI of ${namespace}/${name} went away while starting it`));
  if (vmi.metadata.deletionTimestamp || status === 'Stopping' || status === 'Terminating')
    return afterShutdown(seen, vmi);
  if (paused) {
    if (isPaused(vm)) return completed('AlreadyInState', { message: said, vm });
    if (isServing(vm))
      return failed(
        'RunningNotPaused',
        `VM ${namespace}/${name} already runs and is not paused; KubeVirt starts paused only a VM that is stopped: send io.virtwake.vm.pause to pause it`,
        { vm },
      );
  } else if (isServing(vm) || isPaused(vm)) return completed('AlreadyInState', { message: said, vm });
  if (ctx.command.dryRun) return accepted('AlreadyInProgress', { message: `VM is ${status}`, vm });
  return inProgress(seen, paused ? isPaused : isRunning, status);
}

function inProgress(
  ctx: VmContext<StartCommand>,
  target: (vm: VirtualMachine | undefined) => boolean,
  status: string,
): Promise<Outcome> {
  if (ctx.waitUntil !== undefined) return awaitTarget(ctx, target);
  return Promise.resolve(
    accepted('AlreadyInProgress', {
      message: `KubeVirt has a VMI for this VM and shows ${status}; it is not running yet`,
      vm: ctx.vm,
    }),
  );
}

/**
 * The VMI is being shut down: a start now would be answered "already running"
 * and lost. Wait (for the command's wait, else within the retry budget) until
 * it is gone, then start from a fresh read; past that, 503 and Retry-After.
 */
async function afterShutdown(ctx: VmContext<StartCommand>, vmi: VirtualMachineInstance): Promise<Outcome> {
  const what = `VM ${ctx.namespace}/${ctx.name} is stopping`;
  if (ctx.command.dryRun) return accepted('DryRun', { message: `${what}; a start would wait for it`, vm: ctx.vm });
  const until = ctx.waitUntil ?? ctx.budgetUntil ?? Date.now();
  const uid = vmi.metadata.uid;
  const gone = await watchWhileWaiting<VirtualMachineInstance>(
    { ...ctx, waitUntil: until },
    'virtualmachineinstances',
    ctx.name,
    (v) => !v || v.metadata.uid !== uid,
  );
  if (!gone.done) {
    // Kubernetes sets deletionTimestamp to when the grace period ends: come back then.
    const ends = Date.parse(vmi.metadata.deletionTimestamp ?? '');
    const left = Number.isNaN(ends) ? 5 : Math.max(1, Math.ceil((ends - Date.now()) / 1000));
    throw new HandBack(`${what} (its VMI is being shut down); redeliver to start it once it has stopped`, left);
  }
  const vm = await ctx.kubevirt.getVM(ctx.namespace, ctx.name);
  if (!vm) return failed('NotFound', `VM ${ctx.namespace}/${ctx.name} was deleted`);
  return start.run({ ...ctx, vm });
}
