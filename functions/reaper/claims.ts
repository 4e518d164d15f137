import { rfc3339 } from '../runtime/activity';
import { RetriesExhausted } from '../runtime/errors';
import { KubeApiError } from '../runtime/kube/errors';
import { vmSpecInvalid, vmSpecInvalidMessage, type Action } from '../runtime/kubevirt-answers';
import { Transient, withRetries } from '../runtime/retry';
import type { Runtime } from '../runtime/runtime';
import type { VirtualMachine } from '../runtime/kubevirt-types';
import { PAUSED_AT, reportSleep, reportWake, STOPPED_AT, WARMED_FOR } from '../ladder';
import { Candidate, REAPED_AT, SkipReason, WarmUp } from './rules';

// Putting an idle VM to sleep (pause or stop), and waking one for its keep-warm
// window, safely against a second reaper: claim it first (a merge patch with
// the listed resourceVersion as a precondition), then act; a claim whose
// action did not happen is released. The claim also records the sleep on the
// VM (virtwake.io/paused-at or stopped-at), so a wake knows virtwake put it
// there, and since when.

export type SleepResult = 'stopped' | 'paused' | SkipReason | { reason: string; message: string };

export async function sleepIdle(
  rt: Runtime,
  c: Candidate,
  action: 'stop' | 'pause',
  now: number,
  idleMs: number,
): Promise<SleepResult> {
  const { log } = rt;
  const vm = `${c.namespace}/${c.name}`;
  const at = rfc3339(now);
  const sleep: Record<string, string | null> =
    action === 'pause' ? { [PAUSED_AT]: at } : { [STOPPED_AT]: at, [PAUSED_AT]: null };
  const claimed = await claim(rt, c, { [REAPED_AT]: at, ...sleep });
  if (claimed !== 'ok') return claimed;
  const answer = await act(rt, c, action);
  if (answer === 'ok') {
    const thresholdMs = (action === 'pause' ? c.pauseAfterMs : c.timeoutMs) ?? 0;
    log.info(
      { vm, action, idleMs, thresholdMs, lastActivity: c.lastActivity && rfc3339(c.lastActivity) },
      `${action === 'pause' ? 'paused' : 'stopped'} idle VM`,
    );
    reportSleep(rt, c, {
      tier: action === 'pause' ? 'paused' : 'stopped',
      from: c.paused ? 'paused' : 'running',
      idleMs,
      thresholdMs,
      pausedAt: c.pausedAt,
    });
    return action === 'pause' ? 'paused' : 'stopped';
  }
  await release(rt, c, {
    [REAPED_AT]: null,
    [PAUSED_AT]: c.pausedAt !== undefined ? rfc3339(c.pausedAt) : null,
    [STOPPED_AT]: null,
  });
  if (answer === 'gone') return 'gone';
  if ('outcome' in answer && (answer.outcome === 'completed' || answer.outcome === 'accepted'))
    return action === 'stop' ? 'alreadyStopped' : 'changed';
  return { reason: answer.reason, message: answer.message };
}

/** The first tick inside a keep-warm window: unpause what virtwake paused, start what it (or anyone) stopped. */
export async function warmUp(
  rt: Runtime,
  w: WarmUp,
  now: number,
): Promise<'woken' | SkipReason | { reason: string; message: string }> {
  const began = process.hrtime.bigint();
  const claimed = await claim(rt, w, { [WARMED_FOR]: w.window });
  if (claimed !== 'ok') return claimed;
  const answer = await act(rt, w, w.tier === 'paused' ? 'unpause' : 'start');
  if (answer === 'ok') {
    rt.log.info(
      { vm: `${w.namespace}/${w.name}`, tier: w.tier, window: w.window, at: rfc3339(now) },
      'keep-warm window began; woke VM',
    );
    await reportWake(rt, w.vm, {
      tier: w.tier,
      trigger: 'keepWarm',
      phases: { accepted: Number(process.hrtime.bigint() - began) / 1e9 },
    });
    return 'woken';
  }
  // Already awake (a race with a user) counts as warm; anything else may be retried next tick.
  if (answer !== 'gone' && 'outcome' in answer && answer.outcome !== 'failed') return 'keepWarm';
  await release(rt, w, { [WARMED_FOR]: null });
  if (answer === 'gone') return 'gone';
  return { reason: answer.reason, message: answer.message };
}

type Target = { namespace: string; name: string; resourceVersion?: string };

/** The precondition patch: only one claimant wins; a VM changed since it was listed is left alone. */
async function claim(
  rt: Runtime,
  t: Target,
  annotations: Record<string, string | null>,
): Promise<'ok' | 'changed' | 'gone' | { reason: string; message: string }> {
  try {
    await rt.kubevirt.mergePatch('virtualmachines', t.namespace, t.name, {
      metadata: { resourceVersion: t.resourceVersion, annotations },
    });
    return 'ok';
  } catch (e) {
    const cause = e instanceof Transient ? e.cause : e;
    if (cause instanceof KubeApiError && cause.status === 409) return 'changed';
    if (cause instanceof KubeApiError && cause.status === 404) return 'gone';
    const invalid = vmSpecInvalid(e);
    if (invalid) return { reason: 'VmInvalid', message: vmSpecInvalidMessage(`${t.namespace}/${t.name}`, invalid) };
    // Unknown whether the claim landed: leave the VM for the next tick rather than risk acting twice.
    return { reason: 'ClaimFailed', message: (e as Error).message };
  }
}

async function act(
  rt: Runtime,
  t: Target,
  action: Action,
): Promise<'ok' | 'gone' | { outcome?: string; reason: string; message: string }> {
  const vm = `${t.namespace}/${t.name}`;
  try {
    const answer = await withRetries(rt.config.retry, `${action} ${vm}`, () =>
      rt.kubevirt.lifecycle(action, t.namespace, t.name, {}),
    );
    if (answer === 'ok') return answer;
    // "It depends on the VMI": a stop of a VM whose VMI is already going or gone; nothing left to do here.
    if (answer.kind === 'depends') return { outcome: 'completed', reason: 'AlreadyInState', message: answer.message };
    if (answer.reason === 'NotFound') return 'gone';
    return answer;
  } catch (e) {
    if (!(e instanceof RetriesExhausted)) throw e;
    return { reason: 'Unavailable', message: e.message };
  }
}

/** A claim whose action did not happen would keep other reapers off the VM for CLAIM_TTL_MS: take it back. */
async function release(rt: Runtime, t: Target, annotations: Record<string, string | null>): Promise<void> {
  try {
    await rt.kubevirt.mergePatch('virtualmachines', t.namespace, t.name, { metadata: { annotations } });
  } catch (e) {
    rt.log.warn({ vm: `${t.namespace}/${t.name}`, err: (e as Error).message }, 'could not release reaper claim');
  }
}

/** Clear a stale virtwake.io/paused-at, with the listed resourceVersion: a VM changed since is left for the next tick. */
export async function clearStalePause(rt: Runtime, vm: VirtualMachine): Promise<boolean> {
  const t = {
    namespace: vm.metadata.namespace ?? '',
    name: vm.metadata.name,
    resourceVersion: vm.metadata.resourceVersion,
  };
  return (await claim(rt, t, { [PAUSED_AT]: null })) === 'ok';
}
