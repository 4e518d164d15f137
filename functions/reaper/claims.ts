import { rfc3339 } from '../runtime/activity';
import { RetriesExhausted } from '../runtime/errors';
import { KubeApiError } from '../runtime/kube/errors';
import { vmSpecInvalid, vmSpecInvalidMessage } from '../runtime/kubevirt-answers';
import { Transient, withRetries } from '../runtime/retry';
import type { Runtime } from '../runtime/runtime';
import { Candidate, REAPED_AT, SkipReason } from './rules';

// Stopping an idle VM, safely against a second reaper: claim it first (a merge
// patch writing virtwake.io/reaped-at with the listed resourceVersion as a
// precondition), then stop it; a claim whose stop did not happen is released.

export type StopResult = 'stopped' | SkipReason | { reason: string; message: string };

export async function stopIdle(rt: Runtime, c: Candidate, now: number): Promise<StopResult> {
  const { kubevirt, config, log } = rt;
  const vm = `${c.namespace}/${c.name}`;
  try {
    await kubevirt.mergePatch('virtualmachines', c.namespace, c.name, {
      metadata: { resourceVersion: c.resourceVersion, annotations: { [REAPED_AT]: rfc3339(now) } },
    });
  } catch (e) {
    const cause = e instanceof Transient ? e.cause : e;
    if (cause instanceof KubeApiError && cause.status === 409) return 'changed';
    if (cause instanceof KubeApiError && cause.status === 404) return 'gone';
    const invalid = vmSpecInvalid(e);
    if (invalid) return { reason: 'VmInvalid', message: vmSpecInvalidMessage(vm, invalid) };
    // Unknown whether the claim landed: leave the VM for the next tick rather than risk a second stop.
    return { reason: 'ClaimFailed', message: (e as Error).message };
  }
  let answer;
  try {
    answer = await withRetries(config.retry, `stop ${vm}`, () => kubevirt.lifecycle('stop', c.namespace, c.name, {}));
  } catch (e) {
    if (!(e instanceof RetriesExhausted)) throw e;
    await release(rt, c);
    return { reason: 'Unavailable', message: e.message };
  }
  if (answer === 'ok') {
    log.info(
      { vm, idleTimeoutMs: c.timeoutMs, lastActivity: c.lastActivity && rfc3339(c.lastActivity) },
      'stopped idle VM',
    );
    return 'stopped';
  }
  if (answer.kind === 'depends' || answer.outcome === 'completed' || answer.outcome === 'accepted')
    return 'alreadyStopped';
  await release(rt, c);
  return answer.reason === 'NotFound' ? 'gone' : { reason: answer.reason, message: answer.message };
}

/** A claim whose stop did not happen would keep other reapers off the VM for CLAIM_TTL_MS: take it back. */
async function release(rt: Runtime, c: Candidate): Promise<void> {
  try {
    await rt.kubevirt.mergePatch('virtualmachines', c.namespace, c.name, {
      metadata: { annotations: { [REAPED_AT]: null } },
    });
  } catch (e) {
    rt.log.warn({ vm: `${c.namespace}/${c.name}`, err: (e as Error).message }, 'could not release reaper claim');
  }
}
