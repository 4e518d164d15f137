import { accepted, completed, failed, Outcome, VmCommand, VmContext, VmFunction } from './runtime/function';
import { applyRetention, isFailed, isGoing, isReady } from './snapshot-retention';
import {
  API_VERSION,
  awaitSettled,
  belongsTo,
  conditionReason,
  createOwn,
  derivedName,
  findOwn,
  indicationsOf,
  ownedMetadata,
  progressOf,
  snapshotApiProblem,
  snapshotInfo,
  VirtualMachineSnapshot,
  vmRef,
} from './runtime/snapshot-objects';

// io.virtwake.vm.snapshot: create a snapshot.kubevirt.io/v1beta1
// VirtualMachineSnapshot of the VM; `wait` holds the reply until readyToUse
// (phase Succeeded can come earlier, reference kubevirt-api.md §4.2) or Failed.
//
// Without snapshotName the name derives from the request (contract §6), so every
// delivery of one event finds the one snapshot the first delivery created.
// `keep: N` keeps the N newest *ready* snapshots virtwake made of the VM and
// deletes its older (and failed) ones: a good snapshot is never deleted before
// N others are ready, so without `wait` the new snapshot, not ready yet, is
// counted by the next snapshot command instead (snapshot-retention.ts).

export interface SnapshotCommand extends VmCommand {
  snapshotName?: string;
  failureDeadline?: string;
  keep?: number;
}

const RESOURCE = 'virtualmachinesnapshots';

export const snapshot: VmFunction<SnapshotCommand> = {
  adopts: true,
  async run(ctx) {
    const { command, namespace, name: vm, requestKey } = ctx;
    const name = command.snapshotName ?? derivedName('snapshot', requestKey, vm);
    const ours = (s: VirtualMachineSnapshot) => belongsTo(s.metadata, requestKey) && s.spec?.source?.name === vm;
    const body: VirtualMachineSnapshot = {
      apiVersion: API_VERSION,
      kind: 'VirtualMachineSnapshot',
      metadata: ownedMetadata(ctx, name),
      spec: {
        source: vmRef(vm),
        ...(command.failureDeadline !== undefined && { failureDeadline: command.failureDeadline }),
      },
    };
    let found;
    try {
      found = await findOwn(ctx, RESOURCE, name, ours);
      if (!found) {
        // Recorded but gone (deleted by the retention of a newer request): never made again (contract §6).
        if (ctx.recorded && ctx.recorded.state !== 'claimed') return gone(ctx, name);
        if (!command.dryRun) await ctx.claim?.({ target: 'snapshot-ready', object: name });
        found = await createOwn(ctx, RESOURCE, body, ours);
      }
    } catch (e) {
      const why = snapshotApiProblem(e);
      if (why) return failed('SnapshotApiUnavailable', `cannot snapshot VM ${namespace}/${vm}: ${why}`, { vm: ctx.vm });
      throw e;
    }
    if (found.kind === 'taken') {
      return failed(
        'NameInUse',
        `VirtualMachineSnapshot ${namespace}/${name} already exists and was not created by this request for VM ${vm}`,
      );
    }
    if (found.kind === 'refused') {
      const why = snapshotApiProblem(found.error);
      if (why) return failed('SnapshotApiUnavailable', `cannot snapshot VM ${namespace}/${vm}: ${why}`, { vm: ctx.vm });
      return failed('Refused', found.error.message, { vm: ctx.vm });
    }
    if (command.dryRun)
      return accepted('DryRun', {
        message: 'KubeVirt validated the snapshot; nothing was created or deleted',
        snapshot: { name },
      });
    return settle(ctx, found.object);
  },
};

function gone(ctx: VmContext<SnapshotCommand>, name: string): Outcome {
  const e = ctx.recorded;
  const message = `an earlier delivery of this request created VirtualMachineSnapshot ${ctx.namespace}/${name}, which has been deleted since; nothing was done`;
  const extra = { message, snapshot: { name }, vm: ctx.vm };
  if (e?.outcome === 'failed') return failed(e.reason ?? 'SnapshotFailed', message, extra);
  return e?.outcome === 'accepted' ? accepted(e.reason, extra) : completed(e?.reason, extra);
}

async function settle(ctx: VmContext<SnapshotCommand>, created: VirtualMachineSnapshot): Promise<Outcome> {
  const { namespace, command } = ctx;
  const name = created.metadata.name;
  const settled = (s: VirtualMachineSnapshot | undefined) => !s || isReady(s) || isFailed(s) || isGoing(s);
  const { object: snap, timedOut } = await awaitSettled(ctx, RESOURCE, created, settled);

  if (!snap || isGoing(snap)) {
    const what = snap ? 'is being deleted' : 'was deleted before it became ready';
    return failed('SnapshotFailed', `VirtualMachineSnapshot ${namespace}/${name} ${what}`, {
      snapshot: { name },
      vm: ctx.vm,
    });
  }
  const info = snapshotInfo(snap);
  if (isFailed(snap)) {
    // KubeVirt retries errors until the deadline, so a deadline with an error recorded failed for that error.
    const failure = conditionReason(snap.status?.conditions, 'Failure');
    const error = snap.status?.error?.message;
    const why = [error, failure].filter(Boolean).join('; ') || 'phase Failed';
    const reason = !error && /deadline exceeded/i.test(failure ?? '') ? 'DeadlineExceeded' : 'SnapshotFailed';
    return failed(reason, `VirtualMachineSnapshot ${namespace}/${name} failed: ${why}`, { snapshot: info, vm: ctx.vm });
  }

  const notes: string[] = [];
  if (isReady(snap)) notes.push(consistency(indicationsOf(snap)));
  else if (timedOut) {
    const doing = progressOf(snap.status?.conditions);
    notes.push(
      `not ready within ${command.wait?.timeoutSeconds}s (phase ${info.phase ?? 'pending'}${doing ? `; KubeVirt: ${doing}` : ''})`,
    );
  }
  if (command.keep !== undefined) notes.push(await applyRetention(ctx, command.keep, name));
  const message = notes.filter(Boolean).join('; ') || undefined;
  if (isReady(snap)) return completed(undefined, { message, snapshot: info, vm: ctx.vm });
  return accepted(timedOut ? 'WaitTimeout' : undefined, { message, snapshot: info, vm: ctx.vm });
}

/** What the indications mean for the caller (reference kubevirt-api.md §4.3). */
export function consistency(indications: string[]): string {
  const has = (i: string) => indications.includes(i);
  let text: string;
  if (!has('Online')) text = 'taken while the VM was stopped';
  else if (has('GuestAgent') && !has('QuiesceTimeout')) text = 'online, filesystems frozen by the guest agent';
  else if (has('QuiesceTimeout')) text = 'online, crash-consistent: the guest agent freeze timed out';
  else if (has('Paused')) text = 'online while paused, crash-consistent';
  else text = 'online without a guest agent, crash-consistent';
  return has('PartialSnapshot') ? `${text}; partial: some volumes could not be snapshotted` : text;
}
