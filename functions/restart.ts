import { accepted, completed, failed, Outcome, VmCommand, VmContext, VmFunction } from './runtime/function';
import type { VirtualMachineInstance } from './runtime/kubevirt-types';
import { watchWhileWaiting } from './runtime/lifecycle';

// io.virtwake.vm.restart: PUT …/virtualmachines/{name}/restart; wait for a new
// VMI (another uid) Running.
//
// A redelivered restart must not restart twice, on any replica (contract §6).
// Before the PUT the request is claimed in the VM's ledger (runtime/ledger.ts)
// with the VMI uid it saw. The ledger answers a delivery of a request it holds
// as recorded; a claim that never got its outcome (the replica died around
// the PUT) is taken over only after it expired, and then this function looks
// first: that VMI replaced, or a restart under way, means the PUT happened.
// A request older than the current VMI (by ce-time) was already served by
// some start or restart.

export interface RestartCommand extends VmCommand {
  force?: boolean;
}

export const restart: VmFunction<RestartCommand> = {
  async run(ctx) {
    const { vm, namespace, name, kubevirt, command, event } = ctx;
    const vmi = await kubevirt.getVMI(namespace, name);
    const earlier = ctx.recorded?.pending?.target === 'new-vmi' ? ctx.recorded.pending : undefined;

    if (earlier && !command.dryRun) {
      const sameVmi = vmi?.metadata.uid === earlier.vmi;
      const underway = !!vm.status?.stateChangeRequests?.length || !!vmi?.metadata.deletionTimestamp;
      if (!sameVmi || underway) return settle(ctx, earlier.vmi, vmi);
    } else if (!command.dryRun && vmi && event.time && newerThan(vmi, event.time)) {
      return completed('AlreadyInState', { message: 'the VM was (re)started after this request was made', vm });
    }
    if (!command.dryRun) await ctx.claim?.({ target: 'new-vmi', ...(vmi?.metadata.uid && { vmi: vmi.metadata.uid }) });

    const body: Record<string, unknown> = command.force ? { gracePeriodSeconds: 0 } : {};
    if (command.dryRun) body.dryRun = ['All'];
    const answer = await kubevirt.lifecycle('restart', namespace, name, body);
    if (answer !== 'ok') {
      if (answer.kind === 'depends') return failed('Refused', answer.message, { vm });
      return answer.outcome === 'failed'
        ? failed(answer.reason, answer.message, { vm })
        : { outcome: answer.outcome, reason: answer.reason, message: answer.message, vm };
    }
    if (command.dryRun)
      return accepted('DryRun', { message: 'KubeVirt validated the request; nothing was changed', vm });
    return settle(ctx, vmi?.metadata.uid, undefined);
  },
};

/** After the restart was issued: wait (if asked) for a VMI other than `oldUid` to run. */
async function settle(
  ctx: VmContext,
  oldUid: string | undefined,
  current: VirtualMachineInstance | undefined,
): Promise<Outcome> {
  const replaced = (vmi: VirtualMachineInstance | undefined) =>
    !!vmi && vmi.metadata.uid !== oldUid && vmi.status?.phase === 'Running';
  if (current && replaced(current)) return completed('AlreadyInState', { vm: ctx.vm });
  if (ctx.waitUntil === undefined) return accepted(current ? 'AlreadyInProgress' : undefined, { vm: ctx.vm });
  const seen = await watchWhileWaiting<VirtualMachineInstance>(ctx, 'virtualmachineinstances', ctx.name, replaced);
  if (seen.done) return completed(undefined, { vm: (await ctx.kubevirt.getVM(ctx.namespace, ctx.name)) ?? ctx.vm });
  return accepted('WaitTimeout', {
    message: `no new VMI running within ${ctx.command.wait?.timeoutSeconds}s`,
    vm: ctx.vm,
  });
}

function newerThan(vmi: VirtualMachineInstance, eventTime: string): boolean {
  const created = Date.parse(vmi.metadata.creationTimestamp ?? '');
  const asked = Date.parse(eventTime);
  // creationTimestamp has one-second resolution: only a VMI from a later second counts.
  return !Number.isNaN(created) && !Number.isNaN(asked) && created >= Math.floor(asked / 1000) * 1000 + 1000;
}
