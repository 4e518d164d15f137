import type { Action } from './kubevirt-answers';
import { accepted, completed, failed, Outcome, VmContext } from './function';
import type { Refusal, Resource, WatchResult } from './kubevirt';
import type { VirtualMachine } from './kubevirt-types';
import { Abandoned, HandBack } from './errors';
import type { Target } from './ledger';

// The shape shared by start, stop, pause and unpause: one subresource call,
// KubeVirt's answer judged by the table, then an optional watch for the target.

/** What each call's outcome waits for, by name, for the ledger (contract §2). */
const TARGETS: Record<Action, (body: Record<string, unknown>) => Target> = {
  start: (body) => (body.paused === true ? 'paused' : 'running'),
  stop: () => 'stopped',
  restart: () => 'new-vmi',
  pause: () => 'paused',
  unpause: () => 'unpaused',
};

export async function lifecycleAction(
  ctx: VmContext,
  action: Action,
  body: Record<string, unknown>,
  target: (vm: VirtualMachine | undefined) => boolean,
  /** For answers the table marks `depends`: the function looks at the VM and decides. */
  recheck?: (answer: Refusal & { kind: 'depends' }) => Promise<Outcome>,
): Promise<Outcome> {
  const { namespace, name, kubevirt, command } = ctx;
  if (command.dryRun) body = { ...body, dryRun: ['All'] };
  else await ctx.claim?.({ target: TARGETS[action](body) });
  const answer = await kubevirt.lifecycle(action, namespace, name, body);
  if (answer !== 'ok' && answer.kind === 'depends') {
    if (recheck) return recheck(answer);
    return failed('Refused', answer.message, { vm: ctx.vm });
  }
  if (answer !== 'ok') {
    if (answer.outcome === 'failed') return failed(answer.reason, answer.message, { vm: ctx.vm });
    if (answer.outcome === 'completed') return completed(answer.reason, { message: answer.message, vm: ctx.vm });
  }
  if (command.dryRun)
    return accepted('DryRun', { message: 'KubeVirt validated the request; nothing was changed', vm: ctx.vm });
  const reason = answer === 'ok' ? undefined : answer.reason;
  return awaitTarget(ctx, target, reason);
}

/** Holds the reply until the VM reaches `target` or the command's wait runs out. */
export async function awaitTarget(
  ctx: VmContext,
  target: (vm: VirtualMachine | undefined) => boolean,
  reasonIfNotWaiting?: string,
): Promise<Outcome> {
  if (ctx.waitUntil === undefined) return accepted(reasonIfNotWaiting, { vm: ctx.vm });
  const seen = await watchWhileWaiting<VirtualMachine>(ctx, 'virtualmachines', ctx.name, target);
  if (seen.done) return completed(undefined, { vm: seen.object });
  return accepted('WaitTimeout', {
    message: `target state not observed within ${ctx.command.wait?.timeoutSeconds}s`,
    vm: ctx.vm,
  });
}

/**
 * Watches one object until `test` accepts it or the command's wait (which the
 * caller checked is set) runs out. A shutdown cuts the wait short and hands the
 * event back to Knative (503), so it is redelivered and observed elsewhere.
 */
export async function watchWhileWaiting<T extends { metadata: { resourceVersion?: string } }>(
  ctx: VmContext,
  resource: Resource,
  name: string,
  test: (o: T | undefined) => boolean,
): Promise<WatchResult<T | undefined>> {
  const seen = await ctx.kubevirt.waitFor<T>(
    resource,
    ctx.namespace,
    name,
    test,
    ctx.waitUntil ?? Date.now(),
    ctx.signal,
  );
  if (!seen.done && ctx.signal.reason instanceof Abandoned) throw ctx.signal.reason;
  if (!seen.done && ctx.signal.aborted)
    throw new HandBack('server is shutting down; redeliver to observe the result', 1);
  return seen;
}
