import { LAST_ACTIVITY, parseStamp } from '../runtime/activity';
import type { Config } from '../runtime/config';
import { parseDuration } from '../runtime/duration';
import type { VirtualMachine, VirtualMachineInstance } from '../runtime/kubevirt-types';
import { matches, Requirement } from '../runtime/labels';
import { HOLD_UNTIL, IDLE_SIGNALS, PAUSE_AFTER, PAUSED_AT, pausedByVirtwake, sleptAt, WARMED_FOR } from '../ladder';
import { activeWindow, KEEP_WARM, KeepWarmError, parseKeepWarm } from './keep-warm';

// The reaper's rules (contract §5), pure: which VMs it lists, what a listed VM is
// (a reason to leave it, a candidate for sleep, or one to wake for its keep-warm
// window), and what an idle candidate gets: paused past virtwake.io/pause-after,
// stopped past virtwake.io/idle-timeout. No API calls here: pass.ts reads,
// claims.ts writes.

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
  | 'alreadyStopped'
  | 'invalidPauseAfter'
  | 'invalidKeepWarm'
  /** Inside a virtwake.io/keep-warm window. */
  | 'keepWarm'
  /** io.virtwake.vm.activity holdFor has not run out. */
  | 'held'
  /** The guest agent reports logged-in users. */
  | 'loggedIn'
  /** Paused, and no idle-timeout to stop it. */
  | 'asleep';

export interface Candidate {
  namespace: string;
  name: string;
  resourceVersion?: string;
  /** idle-timeout: stop past it; undefined = never stopped. */
  timeoutMs?: number;
  /** pause-after: pause a running VM past it; undefined = never paused. */
  pauseAfterMs?: number;
  lastActivity?: number;
  reapedAt?: number;
  /** Set when the VM is Paused (only a stop can follow). */
  paused?: true;
  /** When virtwake paused it (its sleep in the paused tier ends with a stop). */
  pausedAt?: number;
  /** virtwake.io/idle-signals: traffic — logged-in users do not keep it awake. */
  trafficOnly?: true;
}

/** A sleeping VM whose keep-warm window just began: wake it ahead of its users. */
export interface WarmUp {
  warm: true;
  namespace: string;
  name: string;
  resourceVersion?: string;
  tier: 'paused' | 'stopped';
  /** The window occurrence (keep-warm.ts activeWindow), written to virtwake.io/warmed-for. */
  window: string;
  vm: VirtualMachine;
}

/** A VM annotation the reaper could not read, reported per VM in the summary. */
export interface InvalidAnnotation {
  vm: string;
  annotation: string;
  message: string;
}

/** Opt-in selector AND not protected, evaluated by the API server. (`!key` would let `=false` through… and out.) */
export function reaperSelector(vmSelector: readonly Requirement[]): Requirement[] {
  return [...vmSelector, { key: PROTECTED, op: '!=', value: 'true' }];
}

/** What a listed VM is: a reason to leave it, a candidate whose VMI start decides, or a keep-warm wake. */
export function classify(
  vm: VirtualMachine,
  config: Pick<Config, 'vmSelector' | 'idleTimeoutMs'>,
  now: number,
  invalid?: (bad: InvalidAnnotation) => void,
): SkipReason | Candidate | WarmUp {
  const labels = vm.metadata.labels;
  const annotations = vm.metadata.annotations ?? {};
  const key = `${vm.metadata.namespace ?? ''}/${vm.metadata.name}`;
  // The server applied the selector; checked again so a misbehaving list can never stop a protected VM.
  if (labels?.[PROTECTED] === 'true') return 'protected';
  if (!matches(config.vmSelector, labels)) return 'notOptedIn';
  let timeoutMs = config.idleTimeoutMs;
  if (annotations[IDLE_TIMEOUT] !== undefined) {
    timeoutMs = parseDuration(annotations[IDLE_TIMEOUT]);
    if (timeoutMs === undefined) {
      invalid?.({
        vm: key,
        annotation: IDLE_TIMEOUT,
        message: `${JSON.stringify(annotations[IDLE_TIMEOUT])} is not a duration (e.g. 2h, 30m)`,
      });
      return 'invalidIdleTimeout';
    }
  }
  let pauseAfterMs: number | undefined;
  if (annotations[PAUSE_AFTER] !== undefined) {
    pauseAfterMs = parseDuration(annotations[PAUSE_AFTER]);
    if (pauseAfterMs === undefined) {
      invalid?.({
        vm: key,
        annotation: PAUSE_AFTER,
        message: `${JSON.stringify(annotations[PAUSE_AFTER])} is not a duration (e.g. 5m)`,
      });
      return 'invalidPauseAfter';
    }
  }
  const status = vm.status?.printableStatus ?? '';
  // Inside a keep-warm window nothing sleeps, and the first tick inside wakes what virtwake put to sleep.
  if (annotations[KEEP_WARM] !== undefined) {
    let window: string | undefined;
    try {
      window = activeWindow(parseKeepWarm(annotations[KEEP_WARM]), now);
    } catch (e) {
      if (!(e instanceof KeepWarmError)) throw e;
      invalid?.({ vm: key, annotation: KEEP_WARM, message: e.message });
      return 'invalidKeepWarm';
    }
    if (window !== undefined) {
      const tier = pausedByVirtwake(vm)
        ? 'paused'
        : status === 'Stopped' && !vm.metadata.deletionTimestamp
          ? 'stopped'
          : undefined;
      if (tier && annotations[WARMED_FOR] !== window)
        return {
          warm: true,
          namespace: vm.metadata.namespace ?? '',
          name: vm.metadata.name,
          resourceVersion: vm.metadata.resourceVersion,
          tier,
          window,
          vm,
        };
      return 'keepWarm';
    }
  }
  if (!timeoutMs) timeoutMs = undefined;
  if (!pauseAfterMs) pauseAfterMs = undefined;
  if (timeoutMs === undefined && pauseAfterMs === undefined) return 'noIdleTimeout';
  // Serving throughout a live migration (KubeVirt shows Migrating before Running): left to a later tick.
  if (status === 'Migrating' && !vm.metadata.deletionTimestamp) return 'migrating';
  if (vm.metadata.deletionTimestamp || !REAPABLE.has(status)) return 'notRunning';
  // KubeVirt's stop turns Once into Halted and the next start into Always: a Once VM would lose what it is.
  if (vm.spec?.runStrategy === 'Once') return 'runOnce';
  const paused = status === 'Paused';
  if (paused && timeoutMs === undefined) return 'asleep';
  const holdUntil = Date.parse(annotations[HOLD_UNTIL] ?? '');
  if (!Number.isNaN(holdUntil) && holdUntil > now) return 'held';
  const lastActivity = parseStamp(annotations[LAST_ACTIVITY], now);
  // The shortest threshold that applies; recent activity alone keeps a VM (the later of activity and VMI start can only be later still).
  const threshold = paused ? (timeoutMs as number) : Math.min(timeoutMs ?? Infinity, pauseAfterMs ?? Infinity);
  if (lastActivity !== undefined && now - lastActivity <= threshold) return 'active';
  const reapedAt = Date.parse(annotations[REAPED_AT] ?? '');
  const pausedAt = paused && annotations[PAUSED_AT] !== undefined ? sleptAt(vm, 'paused') : undefined;
  const c: Candidate = {
    namespace: vm.metadata.namespace ?? '',
    name: vm.metadata.name,
    resourceVersion: vm.metadata.resourceVersion,
    timeoutMs,
    pauseAfterMs,
    lastActivity,
    reapedAt: Number.isNaN(reapedAt) ? undefined : reapedAt,
  };
  if (paused) c.paused = true;
  if (pausedAt !== undefined) c.pausedAt = pausedAt;
  if (annotations[IDLE_SIGNALS]?.trim() === 'traffic') c.trafficOnly = true;
  return c;
}

/**
 * A Running VM that still carries virtwake.io/paused-at was unpaused by someone
 * else (a wake by virtwake clears it). Left there, a later manual pause would
 * read as virtwake's and be undone by the next wake; the reaper clears it. A
 * fresh claim is left alone: the pause it made may not show yet.
 */
export function stalePause(vm: VirtualMachine, now: number): boolean {
  const a = vm.metadata.annotations ?? {};
  if (vm.status?.printableStatus !== 'Running' || a[PAUSED_AT] === undefined) return false;
  const reapedAt = Date.parse(a[REAPED_AT] ?? '');
  return Number.isNaN(reapedAt) || now - reapedAt >= CLAIM_TTL_MS;
}

/** What an idle-looking candidate gets once its VMI start is known: stop, pause, or why neither. */
export function decide(now: number, c: Candidate, vmiStart: number): 'stop' | 'pause' | 'active' | 'recentlyStarted' {
  const idle = now - Math.max(c.lastActivity ?? -Infinity, vmiStart);
  if (c.timeoutMs !== undefined && idle > c.timeoutMs) return 'stop';
  if (!c.paused && c.pauseAfterMs !== undefined && idle > c.pauseAfterMs) return 'pause';
  return c.lastActivity !== undefined && c.lastActivity >= vmiStart ? 'active' : 'recentlyStarted';
}

export function idleLongEnough(
  now: number,
  c: Pick<Candidate, 'timeoutMs' | 'lastActivity'>,
  vmiStart: number,
): boolean {
  return c.timeoutMs !== undefined && now - Math.max(c.lastActivity ?? -Infinity, vmiStart) > c.timeoutMs;
}

/** When the guest started: the VMI's Running transition, else its creation. */
export function vmiStart(vmi: VirtualMachineInstance): number | undefined {
  const running = vmi.status?.phaseTransitionTimestamps
    ?.filter((p) => p.phase === 'Running')
    .map((p) => Date.parse(p.phaseTransitionTimestamp));
  const t = running?.length ? Math.max(...running) : Date.parse(vmi.metadata.creationTimestamp ?? '');
  return Number.isNaN(t) ? undefined : t;
}
