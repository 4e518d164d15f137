import { REAPER_REPLY_TYPE } from './commands';
import { LAST_ACTIVITY, parseStamp, rfc3339 } from './runtime/activity';
import type { Config } from './runtime/config';
import { parseDuration } from './runtime/duration';
import { KubeApiError } from './runtime/kube/errors';
import type { ListOptions } from './runtime/kubevirt';
import type { ObjectList, VirtualMachine, VirtualMachineInstance } from './runtime/kubevirt-types';
import { format, matches, Requirement } from './runtime/labels';
import { Problem } from './runtime/problems';
import { Transient, withRetries } from './runtime/retry';
import type { EventFunction, Runtime } from './runtime/runtime';
import { inPool } from './runtime/async';

// The reaper (contract §5): on each PingSource tick, list the opted-in VMs page by
// page and stop every running one that has been idle longer than its
// virtwake.io/idle-timeout, counting from the later of its last activity and
// its VMI's start. Protected VMs are excluded by the list's label selector.
//
// API calls per tick: one per page of VMs, then, only if some VM looks idle,
// either one VMI GET per such VM (when they are fewer than the VM pages) or
// the VMI pages of the scope; then a claim PATCH and a stop PUT per idle VM.
// Nothing is read per VM that turns out to be active.
//
// Two ticks at once (two replicas, a redelivered tick) must not both stop a VM.
// Each stop is preceded by a claim: a merge patch writing virtwake.io/reaped-at
// with the resourceVersion the list returned as a precondition. Only one
// claimant can win; the other gets 409 and leaves the VM alone. The same 409
// also protects a VM that was used (activity stamped) or restarted after it was
// listed. A later tick that lists a VM already claimed, while its VMI is the
// one the claim was for, leaves it to the claimant.

export const IDLE_TIMEOUT = 'virtwake.io/idle-timeout';
export const PROTECTED = 'virtwake.io/protected';
export const REAPED_AT = 'virtwake.io/reaped-at';
/** How long a claim keeps other reapers off a VM whose stop has not shown yet. */
export const CLAIM_TTL_MS = 10 * 60_000;
/** printableStatus values of a VM whose guest holds resources and can be stopped. */
const REAPABLE = new Set(['Running', 'Paused']);

export type SkipReason =
  | 'notRunning'
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

export interface ReaperSummary {
  namespaces: string[] | '*';
  startedAt: string;
  scanned: number;
  pages: number;
  vmiGets: number;
  idle: number;
  stoppedCount: number;
  stopped: string[];
  skipped: Partial<Record<SkipReason, number>>;
  failedCount: number;
  failed: { vm: string; reason: string; message: string }[];
  truncated?: boolean;
  durationMs: number;
}

interface Candidate {
  namespace: string;
  name: string;
  resourceVersion?: string;
  timeoutMs: number;
  lastActivity?: number;
  reapedAt?: number;
}

export const reaper: EventFunction = {
  async handle(event, rt) {
    const { config, log } = rt;
    if (config.reaperSource && event.source !== config.reaperSource) {
      log.info(
        { source: event.source, expected: config.reaperSource },
        'ping from another source ignored (VIRTWAKE_REAPER_SOURCE)',
      );
      return undefined;
    }
    const summary = await reap(rt);
    log.info(
      {
        scanned: summary.scanned,
        pages: summary.pages,
        idle: summary.idle,
        stopped: summary.stoppedCount,
        failed: summary.failedCount,
        skipped: summary.skipped,
      },
      'reaper run finished',
    );
    return {
      type: REAPER_REPLY_TYPE,
      subject: summary.namespaces === '*' ? '*' : summary.namespaces.join(','),
      data: summary,
    };
  },
};

export async function reap(rt: Runtime): Promise<ReaperSummary> {
  const { config } = rt;
  const started = process.hrtime.bigint();
  const now = rt.now().getTime();
  const namespaces = config.namespaces ? [...config.namespaces].sort() : undefined;
  const s: ReaperSummary = {
    namespaces: namespaces ?? '*',
    startedAt: rfc3339(now),
    scanned: 0,
    pages: 0,
    vmiGets: 0,
    idle: 0,
    stoppedCount: 0,
    stopped: [],
    skipped: {},
    failedCount: 0,
    failed: [],
    durationMs: 0,
  };
  const skip = (r: SkipReason) => (s.skipped[r] = (s.skipped[r] ?? 0) + 1);
  const labelSelector = format(reaperSelector(config.vmSelector));

  for (const ns of namespaces ?? [undefined]) {
    const vmPagesBefore = s.pages;
    const candidates = new Map<string, Candidate>();
    await eachPage<VirtualMachine>(rt, 'virtualmachines', ns, { labelSelector }, s, (vm) => {
      s.scanned++;
      const c = classify(vm, config, now);
      if (typeof c === 'string') skip(c);
      else candidates.set(`${c.namespace}/${c.name}`, c);
    });
    if (candidates.size === 0) continue;

    const starts = await vmiStarts(rt, ns, candidates, s.pages - vmPagesBefore, s);
    const idle: Candidate[] = [];
    for (const [key, c] of candidates) {
      const start = starts.get(key);
      if (start === undefined) skip('noVmi');
      else if (!idleLongEnough(now, c, start))
        skip(c.lastActivity !== undefined && c.lastActivity >= start ? 'active' : 'recentlyStarted');
      else if (c.reapedAt !== undefined && c.reapedAt >= start && now - c.reapedAt < CLAIM_TTL_MS) skip('claimed');
      else idle.push(c);
    }
    s.idle += idle.length;
    await inPool(idle, config.reaperConcurrency, async (c) => {
      const r = await stopIdle(rt, c, now);
      const vm = `${c.namespace}/${c.name}`;
      if (r === 'stopped') {
        s.stoppedCount++;
        if (s.stopped.length < config.reaperReportMax) s.stopped.push(vm);
        else s.truncated = true;
      } else if (typeof r === 'string') {
        skip(r);
      } else {
        s.failedCount++;
        if (s.failed.length < config.reaperReportMax) s.failed.push({ vm, ...r });
        else s.truncated = true;
      }
    });
  }
  s.stopped.sort();
  s.failed.sort((a, b) => a.vm.localeCompare(b.vm));
  s.durationMs = Math.round(Number(process.hrtime.bigint() - started) / 1e6);
  return s;
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
  if (vm.metadata.deletionTimestamp || !REAPABLE.has(vm.status?.printableStatus ?? '')) return 'notRunning';
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

/**
 * VMI start times for the candidates. VMIs carry their template's labels, not
 * the VM's, so they cannot be selected like the VMs: either read each one, or
 * page through the scope's VMIs, whichever costs fewer calls.
 */
async function vmiStarts(
  rt: Runtime,
  ns: string | undefined,
  candidates: Map<string, Candidate>,
  vmPages: number,
  s: ReaperSummary,
): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const take = (vmi: VirtualMachineInstance | undefined) => {
    const key = vmi && `${vmi.metadata.namespace}/${vmi.metadata.name}`;
    const t = vmi && vmiStart(vmi);
    if (key && t !== undefined && candidates.has(key)) out.set(key, t);
  };
  if (candidates.size <= vmPages) {
    for (const c of candidates.values()) {
      s.vmiGets++;
      take(
        await withRetries(rt.config.retry, `get VMI ${c.namespace}/${c.name}`, () =>
          rt.kubevirt.getVMI(c.namespace, c.name),
        ),
      );
    }
  } else {
    await eachPage<VirtualMachineInstance>(rt, 'virtualmachineinstances', ns, {}, s, take);
  }
  return out;
}

/** Page through a list; an expired continue token (410) restarts it once, as kubectl does. */
async function eachPage<T>(
  rt: Runtime,
  resource: 'virtualmachines' | 'virtualmachineinstances',
  ns: string | undefined,
  opts: ListOptions,
  s: ReaperSummary,
  visit: (item: T) => void,
): Promise<void> {
  const { kubevirt, config } = rt;
  const seen = new Set<string>();
  for (let attempt = 1; ; attempt++) {
    let continueToken: string | undefined;
    try {
      do {
        const page = await withRetries(config.retry, `list ${resource} in ${ns ?? 'all namespaces'}`, () => {
          const o = { ...opts, limit: config.reaperPageSize, continueToken };
          if (ns !== undefined) return kubevirt.list<T>(resource, ns, o);
          if (!kubevirt.listAllNamespaces) throw new Error('this KubeVirt client cannot list across namespaces');
          return kubevirt.listAllNamespaces<T>(resource, o);
        });
        s.pages++;
        for (const item of (page as ObjectList<T>).items ?? []) {
          const m = (item as { metadata: { namespace?: string; name: string } }).metadata;
          const key = `${m.namespace}/${m.name}`;
          if (seen.has(key)) continue;
          seen.add(key);
          visit(item);
        }
        continueToken = page.metadata?.continue || undefined;
      } while (continueToken);
      return;
    } catch (e) {
      if (!(e instanceof KubeApiError && e.status === 410) || attempt > 1) throw e;
      rt.log.warn({ resource, namespace: ns }, 'list continue token expired; listing again from the start');
    }
  }
}

type StopResult = 'stopped' | SkipReason | { reason: string; message: string };

async function stopIdle(rt: Runtime, c: Candidate, now: number): Promise<StopResult> {
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
    // Unknown whether the claim landed: leave the VM for the next tick rather than risk a second stop.
    return { reason: 'ClaimFailed', message: (e as Error).message };
  }
  let answer;
  try {
    answer = await withRetries(config.retry, `stop ${vm}`, () => kubevirt.lifecycle('stop', c.namespace, c.name, {}));
  } catch (e) {
    if (!(e instanceof Problem)) throw e;
    await release(rt, c);
    return { reason: 'Unavailable', message: e.detail };
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
