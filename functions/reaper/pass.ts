import { rfc3339 } from '../runtime/activity';
import type { ListOptions } from '../runtime/kubevirt';
import type { VirtualMachine, VirtualMachineInstance } from '../runtime/kubevirt-types';
import { format } from '../runtime/labels';
import { withRetries } from '../runtime/retry';
import type { Runtime } from '../runtime/runtime';
import { inPool } from '../runtime/async';
import { eachPage as pages } from '../runtime/paging';
import { Candidate, classify, CLAIM_TTL_MS, idleLongEnough, reaperSelector, SkipReason, vmiStart } from './rules';
import { stopIdle } from './claims';

// One reaper pass over the scope: list the opted-in VMs page by page, find the
// idle ones (reading VMI start times only for those), stop them through claims.

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
      listed?.(vm);
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
