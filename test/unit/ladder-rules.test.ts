import { classify, decide, IDLE_TIMEOUT, type Candidate, type InvalidAnnotation } from '../../functions/reaper/rules';
import { HOLD_UNTIL, PAUSE_AFTER, PAUSED_AT, WARMED_FOR } from '../../functions/ladder';
import { KEEP_WARM } from '../../functions/reaper/keep-warm';
import { LAST_ACTIVITY, rfc3339 } from '../../functions/runtime/activity';
import { parseSelector } from '../../functions/runtime/labels';
import type { VirtualMachine } from '../../functions/runtime/kubevirt-types';

// The sleep ladder's rules, pure: which threshold applies to which state, what keeps a VM
// awake, when keep-warm wakes it, and how a bad annotation is reported.

// Monday 2030-03-04, 12:00 UTC.
const now = Date.parse('2030-03-04T12:00:00Z');
const min = 60_000;
const config = { vmSelector: parseSelector('virtwake.io/enabled=true'), idleTimeoutMs: undefined };

function vm(annotations: Record<string, string>, status = 'Running'): VirtualMachine {
  return {
    metadata: {
      name: 'v',
      namespace: 'vms',
      resourceVersion: '7',
      labels: { 'virtwake.io/enabled': 'true' },
      annotations,
    },
    status: { printableStatus: status },
  };
}

const idleSince = (minutes: number) => ({ [LAST_ACTIVITY]: rfc3339(now - minutes * min) });

test('pause-after alone: a running VM idle past it is paused, never stopped', () => {
  const c = classify(vm({ [PAUSE_AFTER]: '5m', ...idleSince(6) }), config, now) as Candidate;
  expect(c).toMatchObject({ pauseAfterMs: 5 * min, timeoutMs: undefined });
  expect(decide(now, c, now - 60 * min)).toBe('pause');
  // Recent activity keeps it, before any VMI is read.
  expect(classify(vm({ [PAUSE_AFTER]: '5m', ...idleSince(4) }), config, now)).toBe('active');
  // Paused already, and nothing to stop it with.
  expect(classify(vm({ [PAUSE_AFTER]: '5m', ...idleSince(60) }, 'Paused'), config, now)).toBe('asleep');
});

test('both thresholds: pause past pause-after, stop past idle-timeout, a paused VM only stops', () => {
  const both = { [PAUSE_AFTER]: '5m', [IDLE_TIMEOUT]: '2h' };
  const running = classify(vm({ ...both, ...idleSince(30) }), config, now) as Candidate;
  expect(decide(now, running, now - 300 * min)).toBe('pause');
  expect(decide(now, { ...running, lastActivity: now - 121 * min }, now - 300 * min)).toBe('stop');
  // A VMI started 3 minutes ago counts from its start.
  expect(decide(now, running, now - 3 * min)).toBe('recentlyStarted');
  const paused = classify(
    vm({ ...both, ...idleSince(130), [PAUSED_AT]: rfc3339(now - 125 * min) }, 'Paused'),
    config,
    now,
  ) as Candidate;
  expect(paused).toMatchObject({ paused: true, pausedAt: now - 125 * min });
  expect(classify(vm({ ...both, ...idleSince(30) }, 'Paused'), config, now)).toBe('active');
  expect(decide(now, paused, now - 300 * min)).toBe('stop');
  // Past pause-after only: a paused VM is not paused again.
  expect(decide(now, { ...paused, timeoutMs: 200 * min }, now - 300 * min)).toBe('active');
});

test('holdFor keeps a VM until its hold-until; idle-signals traffic is carried to the pass', () => {
  const a = { [PAUSE_AFTER]: '5m', ...idleSince(60) };
  expect(classify(vm({ ...a, [HOLD_UNTIL]: rfc3339(now + min) }), config, now)).toBe('held');
  expect(typeof classify(vm({ ...a, [HOLD_UNTIL]: rfc3339(now - min) }), config, now)).toBe('object');
  expect(classify(vm({ ...a, 'virtwake.io/idle-signals': 'traffic' }), config, now)).toMatchObject({
    trafficOnly: true,
  });
});

test('keep-warm: never asleep inside; the first tick inside wakes what sleeps, once per occurrence', () => {
  const inside = { [KEEP_WARM]: 'Mon-Fri 08:00-18:00 Europe/Berlin' };
  expect(classify(vm({ ...inside, [PAUSE_AFTER]: '5m', ...idleSince(60) }), config, now)).toBe('keepWarm');
  expect(classify(vm(inside, 'Stopped'), config, now)).toMatchObject({
    warm: true,
    tier: 'stopped',
    window: '0@2030-03-04',
  });
  expect(classify(vm({ ...inside, [PAUSED_AT]: rfc3339(now - min) }, 'Paused'), config, now)).toMatchObject({
    warm: true,
    tier: 'paused',
  });
  // Paused by someone else: left as it is.
  expect(classify(vm(inside, 'Paused'), config, now)).toBe('keepWarm');
  // Already woken for this occurrence.
  expect(classify(vm({ ...inside, [WARMED_FOR]: '0@2030-03-04' }, 'Stopped'), config, now)).toBe('keepWarm');
  // Outside the window the thresholds apply again.
  expect(
    classify(vm({ [KEEP_WARM]: 'Sat,Sun 08:00-18:00', [PAUSE_AFTER]: '5m', ...idleSince(60) }), config, now),
  ).toMatchObject({
    pauseAfterMs: 5 * min,
  });
});

test('a bad annotation is reported per VM with what to fix, and the VM is left', () => {
  const bad: InvalidAnnotation[] = [];
  expect(classify(vm({ [KEEP_WARM]: 'weekdays 9-5' }), config, now, (b) => bad.push(b))).toBe('invalidKeepWarm');
  expect(classify(vm({ [PAUSE_AFTER]: 'soon' }), config, now, (b) => bad.push(b))).toBe('invalidPauseAfter');
  expect(classify(vm({ [IDLE_TIMEOUT]: 'later' }), config, now, (b) => bad.push(b))).toBe('invalidIdleTimeout');
  expect(bad).toEqual([
    {
      vm: 'vms/v',
      annotation: KEEP_WARM,
      message: expect.stringContaining('e.g. "Mon-Fri 08:00-18:00 Europe/Berlin"'),
    },
    { vm: 'vms/v', annotation: PAUSE_AFTER, message: '"soon" is not a duration (e.g. 5m)' },
    { vm: 'vms/v', annotation: IDLE_TIMEOUT, message: '"later" is not a duration (e.g. 2h, 30m)' },
  ]);
});
