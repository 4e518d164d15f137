import { rfc3339 } from '../runtime/activity';
import type { ListOptions } from '../runtime/kubevirt';
import type { VirtualMachine, VirtualMachineInstance } from '../runtime/kubevirt-types';
import { format } from '../runtime/labels';
import { withRetries } from '../runtime/retry';
import type { Runtime } from '../runtime/runtime';
import { inPool } from '../runtime/async';
import { eachPage as pages } from '../runtime/paging';
import { conditionTrue } from '../runtime/kubevirt-types';
import {
  Candidate,
  classify,
  CLAIM_TTL_MS,
  decide,
  InvalidAnnotation,
  reaperSelector,
  SkipReason,
  stalePause,
  vmiStart,
  WarmUp,
} from './rules';
import { clearStalePause, sleepIdle, warmUp } from './claims';

// One reaper pass over the scope: list the opted-in VMs page by page, find the
// idle ones (reading VMI start times only for those), pause or stop them
// through claims, and wake the ones whose keep-warm window just began.

export interface ReaperSummary {
  namespaces: string[] | '*';
  startedAt: string;
  scanned: number;
  pages: number;
  vmiGets: number;
  idle: number;
  pausedCount: number;
  paused: string[];
  stoppedCount: number;
  stopped: string[];
  /** Woken because a keep-warm window began. */
  wokenCount: number;
  woken: string[];
  /** Opted-in VMs listed, by state: what the ladder holds right now. */
  tiers: { running: number; paused: number; stopped: number };
  /** Annotations that could not be read, per VM; such a VM is left as it is. */
  invalid: InvalidAnnotation[];
  /** Running VMs whose stale virtwake.io/paused-at (someone else unpaused them) was cleared. */
  cleared: number;
  skipped: Partial<Record<SkipReason, number>>;
  failedCount: number;
  failed: { vm: string; reason: string; message: string }[];
  truncated?: boolean;
  durationMs: number;
}

/** `listed` sees every VM the pass lists (the deadline check of contract §2 reads the same pages). */
export async function reap(rt: Runtime, listed?: (vm: VirtualMachine) => void): Promise<ReaperSummary> {
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
    pausedCount: 0,
    paused: [],
    stoppedCount: 0,
    stopped: [],
    wokenCount: 0,
    woken: [],
    tiers: { running: 0, paused: 0, stopped: 0 },
    invalid: [],
    cleared: 0,
    skipped: {},
    failedCount: 0,
    failed: [],
    durationMs: 0,
  };
  const skip = (r: SkipReason) => (s.skipped[r] = (s.skipped[r] ?? 0) + 1);
  const labelSelector = format(reaperSelector(config.vmSelector));

  const report = (list: string[], vm: string) => {
    if (list.length < config.reaperReportMax) list.push(vm);
    else s.truncated = true;
  };
  const invalid = (bad: InvalidAnnotation) => {
    if (s.invalid.length < config.reaperReportMax) s.invalid.push(bad);
    else s.truncated = true;
  };

  for (const ns of namespaces ?? [undefined]) {
    const vmPagesBefore = s.pages;
    const candidates = new Map<string, Candidate>();
    const warm: WarmUp[] = [];
    const stale: VirtualMachine[] = [];
    await eachPage<VirtualMachine>(rt, 'virtualmachines', ns, { labelSelector }, s, (vm) => {
      s.scanned++;
      listed?.(vm);
      const status = vm.status?.printableStatus;
      if (status === 'Running') s.tiers.running++;
      else if (status === 'Paused') s.tiers.paused++;
      else if (status === 'Stopped') s.tiers.stopped++;
      if (stalePause(vm, now)) stale.push(vm);
      const c = classify(vm, config, now, invalid);
      if (typeof c === 'string') skip(c);
      else if ('warm' in c) warm.push(c);
      else candidates.set(`${c.namespace}/${c.name}`, c);
    });
    await inPool(warm, config.reaperConcurrency, async (w) => {
      const r = await warmUp(rt, w, now);
      if (r === 'woken') {
        s.wokenCount++;
        report(s.woken, `${w.namespace}/${w.name}`);
      } else if (typeof r === 'string') skip(r);
      else {
        s.failedCount++;
        if (s.failed.length < config.reaperReportMax) s.failed.push({ vm: `${w.namespace}/${w.name}`, ...r });
        else s.truncated = true;
      }
    });
    await inPool(stale, config.reaperConcurrency, async (vm) => {
      if (await clearStalePause(rt, vm)) s.cleared++;
    });
    if (candidates.size === 0) continue;

    const vmis = await vmiFacts(rt, ns, candidates, s.pages - vmPagesBefore, s);
    const idle: { c: Candidate; action: 'stop' | 'pause'; idleMs: number; agent: boolean }[] = [];
    for (const [key, c] of candidates) {
      const vmi = vmis.get(key);
      if (vmi === undefined) {
        skip('noVmi');
        continue;
      }
      const d = decide(now, c, vmi.start);
      if (d !== 'stop' && d !== 'pause') skip(d);
      else if (c.reapedAt !== undefined && c.reapedAt >= vmi.start && now - c.reapedAt < CLAIM_TTL_MS) skip('claimed');
      else
        idle.push({ c, action: d, idleMs: now - Math.max(c.lastActivity ?? -Infinity, vmi.start), agent: vmi.agent });
    }
    await inPool(idle, config.reaperConcurrency, async ({ c, action, idleMs, agent }) => {
      const vm = `${c.namespace}/${c.name}`;
      // A guest with someone logged in is in use whatever the traffic says (unless the VM opts out).
      if (!c.paused && !c.trafficOnly && agent && (await loggedIn(rt, c))) {
        skip('loggedIn');
        return;
      }
      s.idle++;
      const r = await sleepIdle(rt, c, action, now, idleMs);
      if (r === 'stopped') {
        s.stoppedCount++;
        report(s.stopped, vm);
      } else if (r === 'paused') {
        s.pausedCount++;
        report(s.paused, vm);
      } else if (typeof r === 'string') {
        skip(r);
      } else {
        s.failedCount++;
        if (s.failed.length < config.reaperReportMax) s.failed.push({ vm, ...r });
        else s.truncated = true;
      }
    });
  }
  rt.metrics.vmsByTier(s.tiers);
  s.paused.sort();
  s.woken.sort();
  s.stopped.sort();
  s.failed.sort((a, b) => a.vm.localeCompare(b.vm));
  s.durationMs = Math.round(Number(process.hrtime.bigint() - started) / 1e6);
  return s;
}

/**
 * Whether the guest agent reports anyone logged in (GET …/userlist). Asked
 * only of running VMs about to be put to sleep whose agent is connected. A
 * VM whose list cannot be read is treated as in use this tick: the error is
 * logged and the next tick asks again.
 */
async function loggedIn(rt: Runtime, c: Candidate): Promise<boolean> {
  if (!rt.kubevirt.userList) return false;
  try {
    const users = await withRetries(rt.config.retry, `userlist ${c.namespace}/${c.name}`, () =>
      (rt.kubevirt.userList as NonNullable<typeof rt.kubevirt.userList>)(c.namespace, c.name),
    );
    return users.length > 0;
  } catch (e) {
    rt.log.warn(
      { vm: `${c.namespace}/${c.name}`, err: (e as Error).message },
      'could not read logged-in users; left awake',
    );
    return true;
  }
}

/**
 * VMI start times (and whether the guest agent is connected) for the
 * candidates. VMIs carry their template's labels, not the VM's, so they cannot
 * be selected like the VMs: either read each one, or page through the scope's
 * VMIs, whichever costs fewer calls.
 */
async function vmiFacts(
  rt: Runtime,
  ns: string | undefined,
  candidates: Map<string, Candidate>,
  vmPages: number,
  s: ReaperSummary,
): Promise<Map<string, { start: number; agent: boolean }>> {
  const out = new Map<string, { start: number; agent: boolean }>();
  const take = (vmi: VirtualMachineInstance | undefined) => {
    const key = vmi && `${vmi.metadata.namespace}/${vmi.metadata.name}`;
    const t = vmi && vmiStart(vmi);
    if (key && t !== undefined && candidates.has(key))
      out.set(key, { start: t, agent: conditionTrue(vmi.status?.conditions, 'AgentConnected') });
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

/** Page through the scope's list (runtime/paging.ts: an expired continue token lists again, once). */
async function eachPage<T extends { metadata: { namespace?: string; name: string } }>(
  rt: Runtime,
  resource: 'virtualmachines' | 'virtualmachineinstances',
  ns: string | undefined,
  opts: ListOptions,
  s: ReaperSummary,
  visit: (item: T) => void,
): Promise<void> {
  const { kubevirt, config } = rt;
  await pages<T>(
    (continueToken) =>
      withRetries(config.retry, `list ${resource} in ${ns ?? 'all namespaces'}`, () => {
        const o = { ...opts, limit: config.reaperPageSize, continueToken };
        if (ns !== undefined) return kubevirt.list<T>(resource, ns, o);
        if (!kubevirt.listAllNamespaces) throw new Error('this KubeVirt client cannot list across namespaces');
        return kubevirt.listAllNamespaces<T>(resource, o);
      }),
    (items) => {
      s.pages++;
      items.forEach(visit);
    },
    () => rt.log.warn({ resource, namespace: ns }, 'list continue token expired; listing again from the start'),
  );
}
