import { REAPER_REPLY_TYPE } from '../commands';
import type { EventFunction } from '../runtime/runtime';
import { reap } from './pass';
import { hasDue, sweepDeadlines } from '../results/deadlines';
import type { VirtualMachine } from '../runtime/kubevirt-types';

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
    // The same tick checks the deadlines of pending results (contract §2) on the VMs it lists; they go to K_SINK.
    const due: VirtualMachine[] = [];
    const summary = await reap(rt, (vm) => {
      if (hasDue(vm, rt.now().getTime())) due.push(vm);
    });
    const deadlines = await sweepDeadlines(rt, due).catch((err: unknown) => {
      log.warn({ err: (err as Error).message }, 'deadlines not checked on this tick; the next one tries again');
      return { timedOut: 0, undelivered: 0, error: (err as Error).message };
    });
    log.info(
      {
        scanned: summary.scanned,
        pages: summary.pages,
        idle: summary.idle,
        stopped: summary.stoppedCount,
        failed: summary.failedCount,
        skipped: summary.skipped,
        deadlines,
      },
      'reaper run finished',
    );
    return {
      type: REAPER_REPLY_TYPE,
      subject: summary.namespaces === '*' ? '*' : summary.namespaces.join(','),
      data: { ...summary, deadlines },
    };
  },
};
