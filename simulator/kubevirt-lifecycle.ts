// virt-api's start/stop/restart answers as one table: runStrategy x action, each cell an
// ordered list of rules (first match wins) over the facts the handler looks at. The HTTP
// handlers walk it and the tests walk it; the messages are KubeVirt's, typos included.

import type { RunStrategy, VirtualMachineInstance } from './types';

export type LifecycleAction = 'start' | 'stop' | 'restart';

/** What the handler sees of the VMI: absent, phase ""/Unknown, another live phase, or final. */
export type VmiState = 'none' | 'unset' | 'active' | 'Succeeded' | 'Failed';

export const VMI_STATES: VmiState[] = ['none', 'unset', 'active', 'Succeeded', 'Failed'];

export type Effect =
  /** JSON patch on the VM spec: runStrategy Always/Halted, or running true/false for legacy VMs. */
  | { kind: 'spec'; running: boolean }
  /** JSON patch on status.stateChangeRequests; StopCurrent carries the live VMI's uid. */
  | { kind: 'requests'; requests: Array<'Start' | 'StopCurrent'> }
  /** Accepted and nothing changes (WaitAsReceiver falls through virt-api's switch). */
  | { kind: 'none' };

export type Outcome = { code: 202; effect: Effect } | { code: 409; message: string };

export interface Facts {
  vmi: VmiState;
  /** start: body asked for a paused start. */
  paused: boolean;
  /** stop: gracePeriod given and shorter than the VMI's current terminationGracePeriodSeconds (or that is unset). */
  shorterGrace: boolean;
}

export interface Rule {
  when?: { vmi?: VmiState[]; paused?: boolean; shorterGrace?: boolean };
  then: Outcome;
}

const conflict = (message: string): Outcome => ({ code: 409, message });
const spec = (running: boolean): Outcome => ({ code: 202, effect: { kind: 'spec', running } });
const requests = (...r: Array<'Start' | 'StopCurrent'>): Outcome => ({
  code: 202,
  effect: { kind: 'requests', requests: r },
});
const accepted: Outcome = { code: 202, effect: { kind: 'none' } };

const NOT_LIVE: VmiState[] = ['none', 'Succeeded', 'Failed'];

/** Checks that run before the strategy is looked at. */
export const PRECHECKS: Record<LifecycleAction, Rule[]> = {
  start: [{ when: { vmi: ['active'] }, then: conflict('VM is already running') }],
  stop: [],
  restart: [],
};

export const LIFECYCLE_TABLE: Record<RunStrategy, Record<LifecycleAction, Rule[]>> = {
  Always: {
    start: [{ then: conflict('Always does not support manual start requests') }],
    stop: [{ then: spec(false) }],
    restart: [
      { when: { vmi: ['none'] }, then: conflict('VM is not running: Halted') },
      { then: requests('StopCurrent', 'Start') },
    ],
  },
  Halted: {
    // virt-api compares StartStrategy pointers, so a paused start always goes through a request.
    start: [{ when: { paused: true }, then: requests('Start') }, { then: spec(true) }],
    stop: [
      { when: { vmi: NOT_LIVE }, then: conflict('VM is not running') },
      { when: { shorterGrace: true }, then: requests('StopCurrent') },
      { then: conflict('Halted only supports manual stop requests with a shorter graceperiod') },
    ],
    restart: [{ then: conflict('RunStategy Halted does not support manual restart requests') }],
  },
  Manual: {
    start: [
      { when: { vmi: ['Succeeded', 'Failed'] }, then: requests('StopCurrent', 'Start') },
      { then: requests('Start') },
    ],
    stop: [{ when: { vmi: NOT_LIVE }, then: conflict('VM is not running') }, { then: requests('StopCurrent') }],
    restart: [
      { when: { vmi: ['none'] }, then: conflict('VM is not running: Halted') },
      { then: requests('StopCurrent', 'Start') },
    ],
  },
  RerunOnFailure: {
    start: [
      { when: { vmi: ['Succeeded'] }, then: requests('StopCurrent', 'Start') },
      { when: { vmi: ['Failed'] }, then: conflict('RerunOnFailure does not support starting VM from failed state') },
      { then: requests('Start') },
    ],
    stop: [{ when: { vmi: NOT_LIVE }, then: conflict('VM is not running') }, { then: requests('StopCurrent') }],
    restart: [
      { when: { vmi: ['none'] }, then: conflict('VM is not running: Halted') },
      { then: requests('StopCurrent', 'Start') },
    ],
  },
  Once: {
    start: [{ then: conflict('Once does not support manual start requests') }],
    stop: [{ then: spec(false) }],
    restart: [{ then: conflict('RunStategy Once does not support manual restart requests') }],
  },
  WaitAsReceiver: {
    start: [{ then: accepted }],
    stop: [{ then: accepted }],
    restart: [
      { when: { vmi: ['none'] }, then: conflict('VM is not running: Halted') },
      { then: requests('StopCurrent', 'Start') },
    ],
  },
};

function ruleMatches(rule: Rule, facts: Facts): boolean {
  const w = rule.when;
  if (!w) return true;
  if (w.vmi && !w.vmi.includes(facts.vmi)) return false;
  if (w.paused !== undefined && w.paused !== facts.paused) return false;
  if (w.shorterGrace !== undefined && w.shorterGrace !== facts.shorterGrace) return false;
  return true;
}

export function decidePrecheck(action: LifecycleAction, facts: Facts): Outcome | undefined {
  return PRECHECKS[action].find((rule) => ruleMatches(rule, facts))?.then;
}

export function decideCell(strategy: RunStrategy, action: LifecycleAction, facts: Facts): Outcome {
  const cell = LIFECYCLE_TABLE[strategy]?.[action];
  return cell?.find((rule) => ruleMatches(rule, facts))?.then ?? accepted;
}

/** The whole decision as a client observes it (prechecks, then the cell). */
export function decide(strategy: RunStrategy, action: LifecycleAction, facts: Facts): Outcome {
  return decidePrecheck(action, facts) ?? decideCell(strategy, action, facts);
}

export function vmiStateOf(vmi: VirtualMachineInstance | undefined): VmiState {
  if (!vmi) return 'none';
  const phase = vmi.status?.phase ?? '';
  if (phase === 'Succeeded' || phase === 'Failed') return phase;
  if (phase === '' || phase === 'Unknown') return 'unset';
  return 'active';
}
