import type { VmContext } from './runtime/function';
import { KubeApiError } from './runtime/kube/errors';
import { listAll } from './runtime/paging';
import { readLedger } from './runtime/ledger';
import {
  ANNOTATION_CREATED_AT,
  LABEL_MANAGED_BY,
  MANAGER,
  ownedBySelector,
  VirtualMachineRestore,
  VirtualMachineSnapshot,
} from './runtime/snapshot-objects';

// Snapshot retention (`keep: N` on io.virtwake.vm.snapshot): keep the N newest
// *ready* snapshots virtwake made of the VM, delete its older and failed ones.
// A good snapshot is never deleted before N others are ready, nor one that an
// unfinished restore reads, nor one a newer request made: a late delivery of
// an older request must not delete what came after it (contract §6). Which
// are newer is the VM's request ledger's order, not the clocks'.

const RESOURCE = 'virtualmachinesnapshots';

export const isFailed = (s: VirtualMachineSnapshot) => s.status?.phase === 'Failed';
export const isReady = (s: VirtualMachineSnapshot) => s.status?.readyToUse === true && !isFailed(s);
export const isGoing = (s: VirtualMachineSnapshot) => !!s.metadata.deletionTimestamp || s.status?.phase === 'Deleting';

/** Deletes what retention lets go and says so; a refusal is reported, not fatal: the snapshot itself succeeded. */
export async function applyRetention(ctx: VmContext, keep: number, current: string): Promise<string> {
  const { kubevirt, namespace, name: vm } = ctx;
  const [snaps, restores] = await Promise.all([
    listOwn<VirtualMachineSnapshot>(ctx, RESOURCE, ownedBySelector(vm)),
    listOwn<VirtualMachineRestore>(ctx, 'virtualmachinerestores'),
  ]);
  const inUse = new Set(
    restores.filter((r) => r.status?.complete !== true).map((r) => r.spec?.virtualMachineSnapshotName),
  );
  const doomed = retention(snaps, vm, keep, inUse, current, madeAfter(ctx));
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
 * deleted, one an unfinished restore reads, or one a newer request made
 * (`newerRequests`, from the VM's ledger).
 */
export function retention(
  snaps: VirtualMachineSnapshot[],
  vm: string,
  keep: number,
  inUse: ReadonlySet<string | undefined>,
  current?: string,
  newerRequests: ReadonlySet<string> = new Set(),
): string[] {
  const candidates = snaps
    .filter((s) => s.metadata.labels?.[LABEL_MANAGED_BY] === MANAGER && s.spec?.source?.name === vm && !isGoing(s))
    .sort(newestFirst);
  // Our own ready snapshot counts first, whatever clock skew says about its age.
  const ready = candidates
    .filter(isReady)
    .sort((a, b) => Number(b.metadata.name === current) - Number(a.metadata.name === current));
  const kept = new Set(ready.slice(0, keep));
  const newer = (s: VirtualMachineSnapshot) => newerRequests.has(s.metadata.name);
  return candidates
    .filter(
      (s) =>
        !kept.has(s) &&
        s.metadata.name !== current &&
        !newer(s) &&
        (isReady(s) || isFailed(s)) &&
        !inUse.has(s.metadata.name),
    )
    .map((s) => s.metadata.name)
    .reverse(); // oldest first: an interrupted clean-up has then removed the least valuable ones
}

/** Objects that requests recorded after this one (in the VM's ledger) created. */
function madeAfter(ctx: VmContext): Set<string> {
  const entries = readLedger(ctx.vm).entries;
  const i = entries.findIndex((e) => e.key === ctx.requestKey);
  if (i < 0) return new Set();
  return new Set(entries.slice(i + 1).flatMap((e) => (e.object ? [e.object] : [])));
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

function listOwn<T extends { metadata: { name: string } }>(
  ctx: VmContext,
  resource: 'virtualmachinesnapshots' | 'virtualmachinerestores',
  labelSelector?: string,
): Promise<T[]> {
  return listAll((continueToken) =>
    ctx.kubevirt.list<T>(resource, ctx.namespace, { labelSelector, limit: 250, continueToken }),
  );
}
