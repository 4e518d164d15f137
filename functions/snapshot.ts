import { accepted, completed, failed, Outcome, VmCommand, VmContext, VmFunction } from './runtime/function';
import { KubeApiError } from './runtime/kube/errors';
import {
  ANNOTATION_CREATED_AT,
  API_VERSION,
  awaitSettled,
  belongsTo,
  conditionReason,
  createOwn,
  derivedName,
  findOwn,
  indicationsOf,
  LABEL_MANAGED_BY,
  MANAGER,
  ownedBySelector,
  ownedMetadata,
  progressOf,
  snapshotInfo,
  VirtualMachineRestore,
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
// counted by the next snapshot command instead.

export interface SnapshotCommand extends VmCommand {
  snapshotName?: string;
  failureDeadline?: string;
  keep?: number;
}

const RESOURCE = 'virtualmachinesnapshots';

export const snapshot: VmFunction<SnapshotCommand> = {
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
    const found = (await findOwn(ctx, RESOURCE, name, ours)) ?? (await createOwn(ctx, RESOURCE, body, ours));
    if (found.kind === 'taken') {
      return failed(
        'NameInUse',
        `VirtualMachineSnapshot ${namespace}/${name} already exists and was not created by this request for VM ${vm}`,
      );
    }
    if (found.kind === 'refused') return failed('Refused', found.error.message, { vm: ctx.vm });
    if (command.dryRun)
      return accepted('DryRun', {
        message: 'KubeVirt validated the snapshot; nothing was created or deleted',
        snapshot: { name },
      });
    return settle(ctx, found.object);
  },
};

const isFailed = (s: VirtualMachineSnapshot) => s.status?.phase === 'Failed';
const isReady = (s: VirtualMachineSnapshot) => s.status?.readyToUse === true && !isFailed(s);
const isGoing = (s: VirtualMachineSnapshot) => !!s.metadata.deletionTimestamp || s.status?.phase === 'Deleting';

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

/** Deletes what retention lets go and says so; a refusal is reported, not fatal: the snapshot itself succeeded. */
async function applyRetention(ctx: VmContext<SnapshotCommand>, keep: number, current: string): Promise<string> {
  const { kubevirt, namespace, name: vm } = ctx;
  const [snaps, restores] = await Promise.all([
    listAll<VirtualMachineSnapshot>(ctx, RESOURCE, ownedBySelector(vm)),
    listAll<VirtualMachineRestore>(ctx, 'virtualmachinerestores'),
  ]);
  const inUse = new Set(
    restores.filter((r) => r.status?.complete !== true).map((r) => r.spec?.virtualMachineSnapshotName),
  );
  const doomed = retention(snaps, vm, keep, inUse, current);
  const deleted: string[] = [];
  const refused: string[] = [];
  for (const name of doomed) {
    try {
      await kubevirt.delete(RESOURCE, namespace, name);
      deleted.push(name);
    } catch (e) {
      if (!(e instanceof KubeApiError)) throw e;
      refused.push(`${name} (${e.message})`);
    }
  }
  const parts: string[] = [];
  if (deleted.length) parts.push(`keep ${keep}: deleted ${deleted.join(', ')}`);
  if (refused.length) parts.push(`keep ${keep}: could not delete ${refused.join(', ')}`);
  return parts.join('; ');
}

/**
 * Which of `snaps` retention deletes: virtwake's snapshots of `vm` beyond the
 * `keep` newest ready ones, and its failed ones; never `current` (this
 * request's own), one still in progress (another request's), one being
 * deleted, or one an unfinished restore reads.
 */
export function retention(
  snaps: VirtualMachineSnapshot[],
  vm: string,
  keep: number,
  inUse: ReadonlySet<string | undefined>,
  current?: string,
): string[] {
  const candidates = snaps
    .filter((s) => s.metadata.labels?.[LABEL_MANAGED_BY] === MANAGER && s.spec?.source?.name === vm && !isGoing(s))
    .sort(newestFirst);
  // Our own ready snapshot counts first, whatever clock skew says about its age.
  const ready = candidates
    .filter(isReady)
    .sort((a, b) => Number(b.metadata.name === current) - Number(a.metadata.name === current));
  const kept = new Set(ready.slice(0, keep));
  return candidates
    .filter(
      (s) => !kept.has(s) && s.metadata.name !== current && (isReady(s) || isFailed(s)) && !inUse.has(s.metadata.name),
    )
    .map((s) => s.metadata.name)
    .reverse(); // oldest first: an interrupted clean-up has then removed the least valuable ones
}

function newestFirst(a: VirtualMachineSnapshot, b: VirtualMachineSnapshot): number {
  const key = (s: VirtualMachineSnapshot) => [
    s.metadata.creationTimestamp ?? '',
    s.metadata.annotations?.[ANNOTATION_CREATED_AT] ?? '',
    s.metadata.name,
  ];
  const [ka, kb] = [key(a), key(b)];
  for (let i = 0; i < ka.length; i++) if (ka[i] !== kb[i]) return ka[i] < kb[i] ? 1 : -1;
  return 0;
}

async function listAll<T>(
  ctx: VmContext,
  resource: 'virtualmachinesnapshots' | 'virtualmachinerestores',
  labelSelector?: string,
): Promise<T[]> {
  const items: T[] = [];
  let continueToken: string | undefined;
  do {
    const page = await ctx.kubevirt.list<T>(resource, ctx.namespace, { labelSelector, limit: 250, continueToken });
    items.push(...page.items);
    continueToken = page.metadata?.continue || undefined;
  } while (continueToken);
  return items;
}
