import { accepted, completed, failed, Outcome, VmCommand, VmContext, VmFunction } from './runtime/function';
import type { VirtualMachineInstance } from './runtime/kubevirt-types';
import { watchWhileWaiting } from './runtime/lifecycle';
import { Transient } from './runtime/retry';
import { vmSpecInvalid, vmSpecInvalidMessage } from './runtime/kubevirt-answers';

// io.virtwake.vm.restart: PUT …/virtualmachines/{name}/restart; wait for a new
// VMI (another uid) Running.
//
// A redelivered restart must not restart twice, on any replica (contract §6). Before
// the PUT the request claims the restart on the VM itself, an annotation holding
// the request key and the VMI uid it saw, written with a resourceVersion
// precondition. A later delivery that finds its own claim restarts only if that
// VMI is still there and nothing is under way, and the claim is its own or has
// expired (a fresh claim of another delivery may be about to PUT: hand the
// event back with 503 rather than risk a second restart); an event older than
// the current VMI was already served by some start or restart.

export interface RestartCommand extends VmCommand {
  force?: boolean;
}

export const RESTART_CLAIM = 'virtwake.io/restart-request';
/** How long a claim by another delivery is trusted to be followed by its PUT. */
export const CLAIM_TTL_MS = 30_000;

export const restart: VmFunction<RestartCommand> = {
  async run(ctx) {
    const { vm, namespace, name, kubevirt, requestKey, command, event } = ctx;
    const vmi = await kubevirt.getVMI(namespace, name);
    const claim = parseClaim(vm.metadata.annotations?.[RESTART_CLAIM]);

    if (claim?.request === requestKey && !command.dryRun) {
      const sameVmi = vmi?.metadata.uid === claim.vmiUid;
      const underway = !!vm.status?.stateChangeRequests?.length || !!vmi?.metadata.deletionTimestamp;
      if (!sameVmi || underway) return settle(ctx, claim.vmiUid, vmi);
      if (claim.delivery !== ctx.deliveryId && ctx.now().getTime() - claim.at < CLAIM_TTL_MS) {
        throw new Transient(new Error('restart claimed by another delivery of this request, not yet under way'));
      }
    } else if (!command.dryRun && vmi) {
      if (vmi && event.time && newerThan(vmi, event.time)) {
        return completed('AlreadyInState', { message: 'the VM was (re)started after this request was made', vm });
      }
      // A conflict here means another delivery or replica got there first: re-read and decide again.
      try {
        await kubevirt.mergePatch('virtualmachines', namespace, name, {
          metadata: {
            resourceVersion: vm.metadata.resourceVersion,
            annotations: {
              [RESTART_CLAIM]: `${requestKey} ${vmi?.metadata.uid ?? '-'} ${ctx.deliveryId} ${ctx.now().getTime()}`,
            },
          },
        });
      } catch (e) {
        const invalid = vmSpecInvalid(e);
        if (invalid) return failed('VmInvalid', vmSpecInvalidMessage(`${namespace}/${name}`, invalid), { vm });
        throw e;
      }
    }

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

interface Claim {
  request: string;
  vmiUid: string | undefined;
  delivery: string;
  at: number;
}

function parseClaim(text: string | undefined): Claim | undefined {
  if (!text) return undefined;
  const [request, uid, delivery = '', at = '0'] = text.split(' ');
  return { request, vmiUid: uid === '-' ? undefined : uid, delivery, at: Number(at) || 0 };
}

function newerThan(vmi: VirtualMachineInstance, eventTime: string): boolean {
  const created = Date.parse(vmi.metadata.creationTimestamp ?? '');
  const asked = Date.parse(eventTime);
  // creationTimestamp has one-second resolution: only a VMI from a later second counts.
  return !Number.isNaN(created) && !Number.isNaN(asked) && created >= Math.floor(asked / 1000) * 1000 + 1000;
}
