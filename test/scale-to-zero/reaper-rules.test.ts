import {
  classify,
  idleLongEnough,
  IDLE_TIMEOUT,
  PROTECTED,
  REAPED_AT,
  reaperSelector,
  vmiStart,
} from '../../functions/reaper/rules';
import { LAST_ACTIVITY, rfc3339 } from '../../functions/runtime/activity';
import { format, parseSelector } from '../../functions/runtime/labels';
import type { VirtualMachine } from '../../functions/runtime/kubevirt-types';

// Which VMs the reaper considers, as pure rules (the end-to-end runs are in reaper.test.ts).

const now = Date.parse('2030-01-01T12:00:00Z');
const min = 60_000;
const config = {
  vmSelector: parseSelector('virtwake.io/enabled=true'),
  idleTimeoutMs: undefined as number | undefined,
};

function vm(
  o: { labels?: Record<string, string>; annotations?: Record<string, string>; status?: string } = {},
): VirtualMachine {
  return {
    metadata: {
      name: 'v',
      namespace: 'vms',
      resourceVersion: '7',
      labels: { 'virtwake.io/enabled': 'true', ...o.labels },
      annotations: o.annotations,
    },
    status: { printableStatus: o.status ?? 'Running' },
  };
}

test('the list selector is opt-in AND not protected=true (so protected=false still counts)', () => {
  expect(format(reaperSelector(config.vmSelector))).toBe('virtwake.io/enabled=true,virtwake.io/protected!=true');
  expect(format(reaperSelector([]))).toBe('virtwake.io/protected!=true');
});

test.each([
  ['no timeout anywhere', vm(), 'noIdleTimeout'],
  ['a timeout that is not a duration', vm({ annotations: { [IDLE_TIMEOUT]: 'soon' } }), 'invalidIdleTimeout'],
  ['timeout 0 switches it off', vm({ annotations: { [IDLE_TIMEOUT]: '0' } }), 'noIdleTimeout'],
  ['protected', vm({ labels: { [PROTECTED]: 'true' }, annotations: { [IDLE_TIMEOUT]: '30m' } }), 'protected'],
  [
    'not opted in',
    {
      ...vm({ annotations: { [IDLE_TIMEOUT]: '30m' } }),
      metadata: { name: 'v', namespace: 'vms', annotations: { [IDLE_TIMEOUT]: '30m' } },
    },
    'notOptedIn',
  ],
  ['stopped', vm({ annotations: { [IDLE_TIMEOUT]: '30m' }, status: 'Stopped' }), 'notRunning'],
  ['starting', vm({ annotations: { [IDLE_TIMEOUT]: '30m' }, status: 'Starting' }), 'notRunning'],
  [
    'used 10 minutes ago',
    vm({ annotations: { [IDLE_TIMEOUT]: '30m', [LAST_ACTIVITY]: rfc3339(now - 10 * min) } }),
    'active',
  ],
])('%s: %s', (_what, v, reason) => {
  expect(classify(v as VirtualMachine, config, now)).toBe(reason);
});

test('candidates carry what the VMI start and the claim decide on', () => {
  const c = classify(
    vm({
      annotations: {
        [IDLE_TIMEOUT]: '30m',
        [LAST_ACTIVITY]: rfc3339(now - 40 * min),
        [REAPED_AT]: rfc3339(now - 5 * min),
      },
    }),
    config,
    now,
  );
  expect(c).toEqual({
    namespace: 'vms',
    name: 'v',
    resourceVersion: '7',
    timeoutMs: 30 * min,
    lastActivity: now - 40 * min,
    reapedAt: now - 5 * min,
  });
  // Paused guests hold their memory: they are reaped too.
  expect(typeof classify(vm({ annotations: { [IDLE_TIMEOUT]: '1h' }, status: 'Paused' }), config, now)).toBe('object');
  // VIRTWAKE_IDLE_TIMEOUT covers opted-in VMs without the annotation; the annotation wins.
  expect(classify(vm(), { ...config, idleTimeoutMs: 5 * min }, now)).toMatchObject({ timeoutMs: 5 * min });
  expect(
    classify(vm({ annotations: { [IDLE_TIMEOUT]: '2h' } }), { ...config, idleTimeoutMs: 5 * min }, now),
  ).toMatchObject({ timeoutMs: 120 * min });
});

test('idle time counts from the later of last activity and VMI start', () => {
  const c = { timeoutMs: 30 * min, lastActivity: now - 40 * min };
  expect(idleLongEnough(now, c, now - 50 * min)).toBe(true);
  expect(idleLongEnough(now, c, now - 20 * min)).toBe(false);
  expect(idleLongEnough(now, { timeoutMs: 30 * min }, now - 31 * min)).toBe(true);
  expect(idleLongEnough(now, { timeoutMs: 30 * min }, now - 30 * min)).toBe(false);
});

test('VMI start is the Running transition, else creation', () => {
  const created = '2030-01-01T10:00:00Z';
  expect(vmiStart({ metadata: { name: 'v', creationTimestamp: created } })).toBe(Date.parse(created));
  expect(
    vmiStart({
      metadata: { name: 'v', creationTimestamp: created },
      status: {
        phaseTransitionTimestamps: [
          { phase: 'Pending', phaseTransitionTimestamp: created },
          { phase: 'Running', phaseTransitionTimestamp: '2030-01-01T10:01:00Z' },
        ],
      },
    }),
  ).toBe(Date.parse('2030-01-01T10:01:00Z'));
  expect(vmiStart({ metadata: { name: 'v' } })).toBeUndefined();
});
