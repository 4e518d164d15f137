import { accepted, completed, failed, Outcome, VmCommand, VmContext, VmFunction } from './runtime/function';
import { lifecycleAction } from './runtime/lifecycle';
import {
  API_VERSION,
  awaitSettled,
  belongsTo,
  conditionReason,
  createOwn,
  derivedName,
  findOwn,
  ownedMetadata,
  progressOf,
  VirtualMachineRestore,
  VirtualMachineSnapshot,
  vmRef,
} from './runtime/snapshot-objects';
import { isRunning } from './runtime/vm-state';

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
// failed, of another VM; a restore already in progress) are refused up front.
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
      const inProgress = /VirtualMachineRestore "[^"]*" in progress/.test(found.error.message);
      return failed(inProgress ? 'RestoreInProgress' : 'Refused', found.error.message, { vm: ctx.vm });
    }
    if (command.dryRun)
      return accepted('DryRun', { message: 'KubeVirt validated the restore; nothing was changed', restore: { name } });
    return settle(ctx, found.object);
  },
};

/** Why this restore cannot work now, said before KubeVirt would sit on it. */
async function preflight(ctx: VmContext<RestoreCommand>): Promise<Outcome | undefined> {
  const { kubevirt, namespace, name: vm, command } = ctx;
  const ref = `VirtualMachineSnapshot ${namespace}/${command.snapshotName}`;
  const snap = await kubevirt.get<VirtualMachineSnapshot>('virtualmachinesnapshots', namespace, command.snapshotName);
  if (!snap) return failed('SnapshotNotFound', `${ref} does not exist`, { vm: ctx.vm });
  if (snap.spec?.source?.name !== vm) {
    return failed(
      'SnapshotOfOtherVM',
      `${ref} is a snapshot of VM ${snap.spec?.source?.name ?? '(unknown)'}, not of ${vm}`,
      { vm: ctx.vm },
    );
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
  if (!command.stopFirst) {
    const vmi = await kubevirt.getVMI(namespace, vm);
    if (vmi) {
      return failed(
        'TargetRunning',
        `VM ${vm} has a VirtualMachineInstance (phase ${vmi.status?.phase ?? 'unknown'}); KubeVirt restores only a stopped VM: stop it first or send stopFirst: true`,
        { vm: ctx.vm },
      );
    }
  }
  return undefined;
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
  if (command.startAfter) return { ...(await lifecycleAction(ctx, 'start', {}, isRunning)), restore: done };
  return completed(undefined, { restore: done, vm: (await kubevirt.getVM(namespace, ctx.name)) ?? ctx.vm });
}
