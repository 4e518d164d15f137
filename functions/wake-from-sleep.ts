import { accepted, completed, failed, Outcome, VmContext } from './runtime/function';
import { awaitTarget } from './runtime/lifecycle';
import { isRunning } from './runtime/vm-state';
import { reportWake, sleptAt, Wake } from './ladder';

// Waking a paused VM for io.virtwake.vm.start and io.virtwake.vm.activity
// `wake` (contract §5): PUT …/virtualmachineinstances/{name}/unpause, then, with
// `wait`, hold the reply until it is Running and ready again (the unpaused
// readiness gate has caught up). Only the delivery whose unpause KubeVirt
// accepted reports the wake, so two deliveries count one.

export async function unpauseToWake(ctx: VmContext, trigger: Wake['trigger']): Promise<Outcome> {
  const { namespace, name, kubevirt, command } = ctx;
  const began = process.hrtime.bigint();
  // The request ledger (contract §6) records the unpause right before the call, as lifecycleAction does.
  if (!command.dryRun) await ctx.claim?.({ target: 'unpaused' });
  const answer = await kubevirt.lifecycle('unpause', namespace, name, command.dryRun ? { dryRun: ['All'] } : {});
  if (answer !== 'ok') {
    if (answer.kind === 'depends') return failed('Refused', answer.message, { vm: ctx.vm });
    if (answer.outcome === 'failed') return failed(answer.reason, answer.message, { vm: ctx.vm });
    if (answer.outcome === 'completed') return completed(answer.reason, { message: answer.message, vm: ctx.vm });
    return accepted(answer.reason, { message: answer.message, vm: ctx.vm });
  }
  if (command.dryRun)
    return accepted('DryRun', { message: 'KubeVirt validated the unpause; nothing was changed', vm: ctx.vm });
  await reportWake(ctx, ctx.vm, {
    tier: 'paused',
    trigger,
    phases: { accepted: Number(process.hrtime.bigint() - began) / 1e9 },
  });
  return awaitTarget(ctx, isRunning);
}

/** After a start that KubeVirt accepted: if virtwake had stopped the VM, that is a wake from the stopped tier. */
export async function reportStartedFromSleep(
  ctx: VmContext,
  outcome: Outcome,
  trigger: Wake['trigger'],
  seconds: number,
): Promise<void> {
  const callAccepted =
    !ctx.command.dryRun &&
    outcome.outcome !== 'failed' &&
    (outcome.reason === undefined || outcome.reason === 'WaitTimeout');
  if (!callAccepted || sleptAt(ctx.vm, 'stopped') === undefined) return;
  // With `wait` the reply came once the VM ran; without, once KubeVirt accepted the start.
  const phase = outcome.outcome === 'completed' ? 'running' : 'accepted';
  await reportWake(ctx, ctx.vm, { tier: 'stopped', trigger, phases: { [phase]: seconds } });
}
