import { accepted, completed, failed, Outcome, VmCommand, VmContext, VmFunction } from './runtime/function';
import { watchWhileWaiting } from './runtime/lifecycle';
import type { VirtualMachineInstance } from './runtime/kubevirt-types';
import { Transient } from './runtime/retry';
import { start } from './start';
import {
  API_VERSION,
  awaitSettled,
  belongsTo,
  conditionReason,
  createOwn,
  derivedName,
  findOwn,
  LABEL_MANAGED_BY,
  MANAGER,
  ownedMetadata,
  progressOf,
  snapshotApiProblem,
  VirtualMachineRestore,
  VirtualMachineSnapshot,
  vmRef,
} from './runtime/snapshot-objects';
import { isFinal } from './runtime/vm-state';

// io.virtwake.vm.restore: create a VirtualMachineRestore of the named VM from
// one of its snapshots; `wait` holds the reply until complete, and with
// `startAfter` until the VM then runs (startAfter needs `wait`: the schema says so).
//
// KubeVirt restores only a VM without a VMI and by default waits 5 minutes for
// someone to stop it before failing (reference kubevirt-api.md §4.5). virtwake
// answers at once instead: with stopFirst KubeVirt stops the VM itself
// (targetReadinessPolicy StopTarget), otherwise a running VM is TargetRunning
// and a VM started meanwhile fails the restore at once (FailImmediate).
// Problems KubeVirt would only retry quietly (snapshot missing, not ready,
// failed, of another VM, which KubeVirt tells by UID; a restore already in
// progress) are refused up front. KubeVirt refuses a restore while any other
// of the VM is incomplete, and a failed one stays so forever: virtwake deletes
// the failed ones it made and names anyone else's (RestoreBlocked). A final
// VMI (a Manual VM whose guest powered off) cannot be stopped, so StopTarget
// would wait on it forever: with stopFirst virtwake deletes it, without it the
// answer says how to clear it (docs/kubevirt-answers.md).
// The restore's name derives from the request, so a redelivery finds it first
// and checks nothing again: by then the VM may well be running, as asked.

export interface RestoreCommand extends VmCommand {
  snapshotName: string;
  stopFirst?: boolean;
  startAfter?: boolean;
}

const RESOURCE = 'virtualmachinerestores';

export const restore: VmFunction<RestoreCommand> = {
  adopts: true,
  async run(ctx) {
    try {
      return await restoreOnce(ctx);
    } catch (e) {
      const why = snapshotApiProblem(e);
      if (why) return failed('SnapshotApiUnavailable', `cannot restore VM ${ctx.namespace}/${ctx.name}: ${why}`);
      throw e;
    }
  },
};

async function restoreOnce(ctx: VmContext<RestoreCommand>): Promise<Outcome> {
  const { command, namespace, name: vm, requestKey } = ctx;
  const name = derivedName('restore', requestKey, vm);
  const ours = (r: VirtualMachineRestore) => belongsTo(r.metadata, requestKey) && r.spec?.target?.name === vm;
  let found = await findOwn(ctx, RESOURCE, name, ours);
  if (!found) {
    // Recorded but gone: an earlier delivery restored and the restore was deleted since; never restore twice.
    if (ctx.recorded && ctx.recorded.state !== 'claimed') {
      const e = ctx.recorded;
      const message = `an earlier delivery of this request created VirtualMachineRestore ${namespace}/${name}, which has been deleted since; nothing was done`;
      const extra = { message, restore: { name }, vm: ctx.vm };
      if (e.outcome === 'failed') return failed(e.reason ?? 'RestoreFailed', message, extra);
      return e.outcome === 'accepted' ? accepted(e.reason, extra) : completed(e.reason, extra);
    }
    const refusal = await preflight(ctx);
    if (refusal) return refusal;
    const body: VirtualMachineRestore = {
      apiVersion: API_VERSION,
      kind: 'VirtualMachineRestore',
      metadata: ownedMetadata(ctx, name),
      spec: {
        target: vmRef(vm),
        virtualMachineSnapshotName: command.snapshotName,
        targetReadinessPolicy: command.stopFirst ? 'StopTarget' : 'FailImmediate',
      },
    };
    if (!command.dryRun) await ctx.claim?.({ target: 'restore-complete', object: name });
    found = await createOwn(ctx, RESOURCE, body, ours);
  }
  if (found.kind === 'taken') {
    return failed(
      'NameInUse',
      `VirtualMachineRestore ${namespace}/${name} already exists and was not created by this request for VM ${vm}`,
    );
  }
  if (found.kind === 'refused') {
    const unavailable = snapshotApiProblem(found.error);
    if (unavailable) return failed('SnapshotApiUnavailable', `cannot restore VM ${vm}: ${unavailable}`, { vm: ctx.vm });
    const inProgress = /VirtualMachineRestore "[^"]*" in progress/.test(found.error.message);
    return failed(inProgress ? 'RestoreInProgress' : 'Refused', found.error.message, { vm: ctx.vm });
  }
  if (command.dryRun)
    return accepted('DryRun', { message: 'KubeVirt validated the restore; nothing was changed', restore: { name } });
  return settle(ctx, found.object);
}

/** Why this restore cannot work now, said before KubeVirt would sit on it. */
async function preflight(ctx: VmContext<RestoreCommand>): Promise<Outcome | undefined> {
  const { kubevirt, namespace, name: vm, command } = ctx;
  const ref = `VirtualMachineSnapshot ${namespace}/${command.snapshotName}`;
  const snap = await kubevirt.get<VirtualMachineSnapshot>('virtualmachinesnapshots', namespace, command.snapshotName);
  if (!snap) return failed('SnapshotNotFound', `${ref} does not exist`, { vm: ctx.vm });
  // KubeVirt matches snapshot and target by UID: a snapshot of an earlier VM of the same name would hang forever.
  const sourceUID = snap.status?.sourceUID;
  if (snap.spec?.source?.name !== vm || (sourceUID && ctx.vm.metadata.uid && sourceUID !== ctx.vm.metadata.uid)) {
    const other =
      snap.spec?.source?.name === vm
        ? `an earlier VM named ${vm} (uid ${sourceUID}), not of this one (uid ${ctx.vm.metadata.uid}): KubeVirt restores a snapshot only onto the VM it was taken of`
        : `VM ${snap.spec?.source?.name ?? '(unknown)'}, not of ${vm}`;
    return failed('SnapshotOfOtherVM', `${ref} is a snapshot of ${other}`, { vm: ctx.vm });
  }
  if (snap.status?.phase === 'Failed') {
    const why = snap.status.error?.message || conditionReason(snap.status.conditions, 'Failure') || 'phase Failed';
    return failed('SnapshotFailed', `${ref} failed and cannot be restored: ${why}`, { vm: ctx.vm });
  }
  if (snap.metadata.deletionTimestamp || snap.status?.readyToUse !== true) {
    const state = snap.metadata.deletionTimestamp
      ? 'is being deleted'
      : `is not ready to use (phase ${snap.status?.phase || 'pending'})`;
    return failed('SnapshotNotReady', `${ref} ${state}`, { vm: ctx.vm });
  }
  const busy = ctx.vm.status?.restoreInProgress;
  if (busy)
    return failed('RestoreInProgress', `VirtualMachineRestore "${busy}" is in progress for VM ${vm}`, { vm: ctx.vm });
  const blocked = await clearBlockers(ctx);
  if (blocked) return blocked;
  const vmi = await kubevirt.getVMI(namespace, vm);
  if (isFinal(vmi)) {
    if (!command.stopFirst) {
      return failed(
        'FinalVMI',
        `VM ${vm} keeps its VirtualMachineInstance in phase ${vmi?.status?.phase} (its guest powered off; KubeVirt keeps it for a ${ctx.vm.spec?.runStrategy ?? 'Manual'} VM) and restores only a VM without one: send stopFirst: true (virtwake then deletes that VMI) or delete it (kubectl delete vmi ${vm} -n ${namespace})`,
        { vm: ctx.vm },
      );
    }
    // KubeVirt's stop refuses a final VMI, so StopTarget would retry forever; deleting it is what is left.
    await clearFinalVmi(ctx, vmi as VirtualMachineInstance);
  } else if (vmi && !command.stopFirst) {
    return failed(
      'TargetRunning',
      `VM ${vm} has a VirtualMachineInstance (phase ${vmi.status?.phase ?? 'unknown'}); KubeVirt restores only a stopped VM: stop it first or send stopFirst: true`,
      { vm: ctx.vm },
    );
  }
  return undefined;
}

/**
 * KubeVirt's webhook refuses a restore while any other restore of the VM is
 * incomplete, and a failed one stays incomplete forever. One virtwake made is
 * deleted (and waited out, within the retry budget); anyone else's is named.
 */
async function clearBlockers(ctx: VmContext<RestoreCommand>): Promise<Outcome | undefined> {
  const { kubevirt, namespace, name: vm } = ctx;
  const all = await eachRestore(ctx);
  // This request's own restore (another delivery of it created it meanwhile) is adopted when created, not a blocker.
  const blockers = all.filter(
    (r) =>
      !belongsTo(r.metadata, ctx.requestKey) &&
      r.spec?.target?.name === vm &&
      (r.spec.target.kind ?? 'VirtualMachine') === 'VirtualMachine' &&
      r.status?.complete !== true,
  );
  for (const r of blockers) {
    const ref = `VirtualMachineRestore ${namespace}/${r.metadata.name}`;
    const why = conditionReason(r.status?.conditions, 'Failure');
    const ours = r.metadata.labels?.[LABEL_MANAGED_BY] === MANAGER;
    if (!why) {
      if (r.metadata.deletionTimestamp && ours) continue;
      return failed(
        'RestoreInProgress',
        `VirtualMachineRestore "${r.metadata.name}" in progress for VM ${vm}; KubeVirt restores one at a time`,
        {
          vm: ctx.vm,
        },
      );
    }
    if (!ours)
      return failed(
        'RestoreBlocked',
        `${ref} of VM ${vm} failed (${why}) and, never complete, blocks every later restore of this VM; it was not created by virtwake: delete it (kubectl delete vmrestore ${r.metadata.name} -n ${namespace})`,
        { vm: ctx.vm },
      );
    if (ctx.command.dryRun) continue;
    await kubevirt.delete(RESOURCE, namespace, r.metadata.name);
  }
  // Deleted ones keep their finalizer until KubeVirt's controller lets go: wait for that within the budget.
  for (const r of blockers) {
    if (ctx.command.dryRun || r.metadata.labels?.[LABEL_MANAGED_BY] !== MANAGER) continue;
    const gone = await watchWhileWaiting<VirtualMachineRestore>(
      { ...ctx, waitUntil: ctx.waitUntil ?? ctx.budgetUntil ?? Date.now() },
      RESOURCE,
      r.metadata.name,
      (o) => !o,
    );
    if (!gone.done)
      throw new Transient(
        new Error(`the failed VirtualMachineRestore ${namespace}/${r.metadata.name} is still being deleted`),
      );
  }
  return undefined;
}

async function eachRestore(ctx: VmContext): Promise<VirtualMachineRestore[]> {
  const out: VirtualMachineRestore[] = [];
  let continueToken: string | undefined;
  do {
    const page = await ctx.kubevirt.list<VirtualMachineRestore>(RESOURCE, ctx.namespace, { limit: 500, continueToken });
    out.push(...page.items);
    continueToken = page.metadata?.continue || undefined;
  } while (continueToken);
  return out;
}

async function clearFinalVmi(ctx: VmContext<RestoreCommand>, vmi: VirtualMachineInstance): Promise<void> {
  if (ctx.command.dryRun) return;
  await ctx.kubevirt.delete('virtualmachineinstances', ctx.namespace, ctx.name);
  const uid = vmi.metadata.uid;
  const gone = await watchWhileWaiting<VirtualMachineInstance>(
    { ...ctx, waitUntil: ctx.waitUntil ?? ctx.budgetUntil ?? Date.now() },
    'virtualmachineinstances',
    ctx.name,
    (o) => !o || o.metadata.uid !== uid,
  );
  if (!gone.done)
    throw new Transient(new Error(`the final VMI of ${ctx.namespace}/${ctx.name} is still being deleted`));
}

async function settle(ctx: VmContext<RestoreCommand>, created: VirtualMachineRestore): Promise<Outcome> {
  const { kubevirt, namespace, command } = ctx;
  const name = created.metadata.name;
  const failure = (r: VirtualMachineRestore) => conditionReason(r.status?.conditions, 'Failure');
  const settled = (r: VirtualMachineRestore | undefined) => !r || r.status?.complete === true || !!failure(r);
  const { object: r, timedOut } = await awaitSettled(ctx, RESOURCE, created, settled);

  if (!r)
    return failed('RestoreFailed', `VirtualMachineRestore ${namespace}/${name} was deleted before it completed`, {
      restore: { name },
      vm: ctx.vm,
    });
  const why = failure(r);
  if (why)
    return failed('RestoreFailed', `VirtualMachineRestore ${namespace}/${name} failed: ${why}`, {
      restore: { name, complete: false },
      vm: ctx.vm,
    });
  if (r.status?.complete !== true) {
    const progress = progressOf(r.status?.conditions);
    const message = timedOut
      ? `restore not complete within ${command.wait?.timeoutSeconds}s${progress ? ` (KubeVirt: ${progress})` : ''}${command.startAfter ? '; the VM was not started: send the same event again to finish' : ''}`
      : undefined;
    return accepted(timedOut ? 'WaitTimeout' : undefined, { message, restore: { name, complete: false }, vm: ctx.vm });
  }

  const done = { name, complete: true };
  // KubeVirt keeps the VM's runStrategy across a restore, so a VM it stopped stays stopped until started.
  if (command.startAfter)
    return { ...(await start.run({ ...ctx, command: { ...command, paused: false } })), restore: done };
  return completed(undefined, { restore: done, vm: (await kubevirt.getVM(namespace, ctx.name)) ?? ctx.vm });
}
