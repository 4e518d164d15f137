import { LAST_ACTIVITY, parseStamp } from '../runtime/activity';
import type { Config } from '../runtime/config';
import { parseDuration } from '../runtime/duration';
import type { VirtualMachine, VirtualMachineInstance } from '../runtime/kubevirt-types';
import { matches, Requirement } from '../runtime/labels';

// The reaper's rules (contract §5), pure: which VMs it lists, what a listed VM is
// (a reason to leave it, or a candidate), and when a candidate has been idle
// long enough. No API calls here: pass.ts reads, claims.ts writes.

export const IDLE_TIMEOUT = 'virtwake.io/idle-timeout';
export const PROTECTED = 'virtwake.io/protected';
export const REAPED_AT = 'virtwake.io/reaped-at';
/** How long a claim keeps other reapers off a VM whose stop has not shown yet. */
export const CLAIM_TTL_MS = 10 * 60_000;
/** printableStatus values of a VM whose guest holds resources and can be stopped. */
const REAPABLE = new Set(['Running', 'Paused']);

export type SkipReason =
  | 'notRunning'
  | 'migrating'
  | 'runOnce'
  | 'noIdleTimeout'
  | 'invalidIdleTimeout'
  | 'protected'
  | 'notOptedIn'
  | 'active'
  | 'recentlyStarted'
  | 'noVmi'
  | 'claimed'
  | 'changed'
  | 'gone'
  | 'alreadyStopped';

export interface Candidate {
  namespace: string;
  name: string;
  resourceVersion?: string;
  timeoutMs: number;
  lastActivity?: number;
  reapedAt?: number;
}

/** Opt-in selector AND not protected, evaluated by the API server. (`!key` would let `=false` through… and out.) */
export function reaperSelector(vmSelector: readonly Requirement[]): Requirement[] {
  return [...vmSelector, { key: PROTECTED, op: '!=', value: 'true' }];
}

/** What a listed VM is: a reason to leave it, or a candidate whose VMI start decides. */
export function classify(
  vm: VirtualMachine,
  config: Pick<Config, 'vmSelector' | 'idleTimeoutMs'>,
  now: number,
): SkipReason | Candidate {
  const labels = vm.metadata.labels;
  const annotations = vm.metadata.annotations ?? {};
  // The server applied the selector; checked again so a misbehaving list can never stop a protected VM.
  if (labels?.[PROTECTED] === 'true') return 'protected';
  if (!matches(config.vmSelector, labels)) return 'notOptedIn';
  let timeoutMs = config.idleTimeoutMs;
  if (annotations[IDLE_TIMEOUT] !== undefined) {
    timeoutMs = parseDuration(annotations[IDLE_TIMEOUT]);
    if (timeoutMs === undefined) return 'invalidIdleTimeout';
  }
  if (!timeoutMs) return 'noIdleTimeout';
  // Serving throughout a live migration (KubeVirt shows Migrating before Running): left to a later tick.
  if (vm.status?.printableStatus === 'Migrating' && !vm.metadata.deletionTimestamp) return 'migrating';
  if (vm.metadata.deletionTimestamp || !REAPABLE.has(vm.status?.printableStatus ?? '')) return 'notRunning';
  // KubeVirt's stop turns Once into Halted and the next start into Always: a Once VM would lose what it is.
  if (vm.spec?.runStrategy === 'Once') return 'runOnce';
  const lastActivity = parseStamp(annotations[LAST_ACTIVITY], now);
  // Recent activity alone keeps a VM: the later of activity and VMI start can only be later still.
  if (lastActivity !== undefined && now - lastActivity <= timeoutMs) return 'active';
  const reapedAt = Date.parse(annotations[REAPED_AT] ?? '');
  return {
    namespace: vm.metadata.namespace ?? '',
    name: vm.metadata.name,
    resourceVersion: vm.metadata.resourceVersion,
    timeoutMs,
    lastActivity,
    reapedAt: Number.isNaN(reapedAt) ? undefined : reapedAt,
  };
}

export function idleLongEnough(
  now: number,
  c: Pick<Candidate, 'timeoutMs' | 'lastActivity'>,
  vmiStart: number,
): boolean {
  return now - Math.max(c.lastActivity ?? -Infinity, vmiStart) > c.timeoutMs;
}

/** When the guest started: the VMI's Running transition, else its creation. */
export function vmiStart(vmi: VirtualMachineInstance): number | undefined {
  const running = vmi.status?.phaseTransitionTimestamps
    ?.filter((p) => p.phase === 'Running')
    .map((p) => Date.parse(p.phaseTransitionTimestamp));
  const t = running?.length ? Math.max(...running) : Date.parse(vmi.metadata.creationTimestamp ?? '');
  return Number.isNaN(t) ? undefined : t;
}
