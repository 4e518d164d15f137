// Walks virt-api's runStrategy x action table cell by cell over real HTTP: every rule's
// status code, message and effect (spec patch, state change requests, or nothing).
import {
  decide,
  LIFECYCLE_TABLE,
  VMI_STATES,
  type LifecycleAction,
  type RunStrategy,
  type VmiState,
} from '../../simulator';
import { startEnv, subresource, type TestEnv } from './helpers';

let env: TestEnv;
beforeAll(async () => {
  env = await startEnv();
  // Nothing may consume a request or move a VMI while a cell is being checked.
  env.sim.pauseControllers();
});
afterAll(() => env.sim.close());

const SEED: Record<VmiState, { running?: boolean; vmiPhase?: string }> = {
  none: { running: false },
  unset: { vmiPhase: '' },
  active: { vmiPhase: 'Running' },
  Succeeded: { vmiPhase: 'Succeeded' },
  Failed: { vmiPhase: 'Failed' },
};

interface Case {
  strategy: RunStrategy;
  action: LifecycleAction;
  vmi: VmiState;
  paused: boolean;
  grace: boolean;
}

const cases: Case[] = [];
for (const strategy of Object.keys(LIFECYCLE_TABLE) as RunStrategy[]) {
  for (const vmi of VMI_STATES) {
    for (const paused of [false, true]) cases.push({ strategy, action: 'start', vmi, paused, grace: false });
    for (const grace of [false, true]) cases.push({ strategy, action: 'stop', vmi, paused: false, grace });
    cases.push({ strategy, action: 'restart', vmi, paused: false, grace: false });
  }
}

let seq = 0;
test.each(cases)('$strategy $action vmi=$vmi paused=$paused gracePeriod=$grace', async (c) => {
  const { sim, kc } = env;
  const name = `cell-${++seq}`;
  // A template grace of 180 s (common templates) makes gracePeriod 0 "shorter".
  const template = { metadata: { labels: { 'kubevirt.io/vm': name } }, spec: { terminationGracePeriodSeconds: 180 } };
  sim.store.addVM({ metadata: { name }, spec: { runStrategy: c.strategy, template } }, SEED[c.vmi]);
  const before = sim.store.getVM('default', name)!;
  const vmiBefore = sim.store.getVMI('default', name);
  const body =
    c.action === 'start' && c.paused
      ? { paused: true }
      : c.action === 'stop' && c.grace
        ? { gracePeriod: 0 }
        : undefined;

  const res = await subresource(kc, 'virtualmachines', name, c.action, body);

  const shorterGrace = c.grace && c.vmi !== 'none' && c.vmi !== 'Succeeded' && c.vmi !== 'Failed';
  const expected = decide(c.strategy, c.action, { vmi: c.vmi, paused: c.paused, shorterGrace });
  expect(res.status).toBe(expected.code);
  const after = sim.store.getVM('default', name)!;
  if (expected.code === 409) {
    expect(res.json).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: `Operation cannot be fulfilled on virtualmachine.kubevirt.io "${name}": ${expected.message}`,
      reason: 'Conflict',
      details: { name, group: 'kubevirt.io', kind: 'virtualmachine' },
      code: 409,
    });
    expect(after.spec).toEqual(before.spec);
    expect(after.status?.stateChangeRequests).toEqual(before.status?.stateChangeRequests);
    return;
  }
  expect(res.text).toBe('');
  const effect = expected.effect;
  if (effect.kind === 'spec') {
    expect(after.spec.runStrategy).toBe(effect.running ? 'Always' : 'Halted');
    expect(after.status?.stateChangeRequests).toBeUndefined();
  } else if (effect.kind === 'requests') {
    expect(after.spec.runStrategy).toBe(c.strategy);
    expect(after.status?.stateChangeRequests).toEqual(
      effect.requests.map((r) =>
        r === 'StopCurrent'
          ? { action: 'Stop', uid: vmiBefore?.metadata.uid }
          : c.paused
            ? { action: 'Start', data: { paused: 'true' } }
            : { action: 'Start' },
      ),
    );
  } else {
    expect(after.spec).toEqual(before.spec);
    expect(after.status?.stateChangeRequests).toBeUndefined();
  }
  sim.store.deleteVM('default', name);
});

// The table itself, spot-checked against the reference notes (so a wrong cell cannot hide
// behind a test that only compares the simulator with its own table).
test.each([
  ['Always', 'start', 'none', 409, 'Always does not support manual start requests'],
  ['Always', 'start', 'active', 409, 'VM is already running'],
  ['Always', 'restart', 'none', 409, 'VM is not running: Halted'],
  ['Halted', 'stop', 'none', 409, 'VM is not running'],
  ['Halted', 'stop', 'active', 409, 'Halted only supports manual stop requests with a shorter graceperiod'],
  ['Halted', 'restart', 'active', 409, 'RunStategy Halted does not support manual restart requests'],
  ['Once', 'start', 'none', 409, 'Once does not support manual start requests'],
  ['Once', 'restart', 'active', 409, 'RunStategy Once does not support manual restart requests'],
  ['RerunOnFailure', 'start', 'Failed', 409, 'RerunOnFailure does not support starting VM from failed state'],
  ['Manual', 'stop', 'Succeeded', 409, 'VM is not running'],
  ['Manual', 'start', 'Failed', 202, undefined],
  ['Always', 'stop', 'none', 202, undefined],
  ['Once', 'stop', 'active', 202, undefined],
  ['WaitAsReceiver', 'start', 'none', 202, undefined],
] as const)('reference: %s %s (vmi %s) -> %d %s', (strategy, action, vmi, code, message) => {
  const out = decide(strategy, action, { vmi, paused: false, shorterGrace: false });
  expect(out.code).toBe(code);
  if (message) expect(out).toEqual({ code, message });
});
