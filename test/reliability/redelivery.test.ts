import request from 'supertest';
import type { StoreEvent } from '../../simulator/store';
import { HANDLERS } from '../../functions';
import type { FunctionName } from '../../functions/commands';
import type { App } from '../../functions/app';
import { Harness, replyData, startHarness } from '../helpers/harness';

// contract §6: Knative delivers at least once, to any replica. Every command type,
// delivered 1 to 10 times (same source and id) to two server instances at
// once, has one effect. Effects are counted on the simulator's object store
// (every write any controller or API call made), not on virtwake's answers:
// a VMI created, a VMI deleted, a Paused condition set, a snapshot created…
// After the burst one more, late, delivery still changes nothing and is
// answered with a result event (a 503 in the burst is Knative's cue to do
// exactly that).

const OPT_IN = { 'virtwake.io/enabled': 'true' };
let h: Harness;
let second: App;
const events: StoreEvent[] = [];

beforeAll(async () => {
  h = await startHarness({ sim: { stepMs: 5, snapshotStepMs: 5 } });
  second = await h.replica();
  h.sim.store.raw.subscribe((e) => events.push(e));
});
afterAll(() => h.close());

let n = 0;

type Counts = Record<string, number>;

interface Scenario {
  fn: FunctionName;
  /** Shown in the test name when one type has several scenarios. */
  label?: string;
  /** Send ce-time (default): restart uses it as a second guard (contract §6), so it runs both ways. */
  withTime?: boolean;
  /** Seed the VM (and whatever it needs); returns the command data. */
  setup(name: string): Promise<Record<string, unknown>>;
  /** What happened to the VM, from store events since the burst began. */
  effects(name: string, since: number): Counts;
  /** The one effect the command must have. */
  expected: Counts;
}

const of = (kind: string, type: StoreEvent['type'], name: string, since: number) =>
  events.filter((e) => e.rv > since && e.resource.kind === kind && e.type === type && e.object.metadata.name === name)
    .length;
const vmiChanges = (name: string, since: number): Counts => ({
  vmiCreated: of('VirtualMachineInstance', 'ADDED', name, since),
  vmiDeleted: of('VirtualMachineInstance', 'DELETED', name, since),
});
const pausedFlips = (name: string, since: number): Counts => {
  const paused = (o: StoreEvent['object'] | undefined) =>
    !!o?.status?.conditions?.some((c: { type: string; status: string }) => c.type === 'Paused' && c.status === 'True');
  const mods = events.filter(
    (e) =>
      e.rv > since &&
      e.resource.kind === 'VirtualMachineInstance' &&
      e.type === 'MODIFIED' &&
      e.object.metadata.name === name,
  );
  return {
    paused: mods.filter((e) => !paused(e.old) && paused(e.object)).length,
    unpaused: mods.filter((e) => paused(e.old) && !paused(e.object)).length,
    ...vmiChanges(name, since),
  };
};
const created = (kind: string, vm: string, since: number) =>
  events.filter(
    (e) =>
      e.rv > since &&
      e.resource.kind === kind &&
      e.type === 'ADDED' &&
      (e.object.spec?.source?.name === vm || e.object.spec?.target?.name === vm),
  ).length;

function addVM(
  name: string,
  runStrategy: string,
  state: { running?: boolean; paused?: boolean; vmiCreatedAt?: Date } = {},
): void {
  h.sim.store.addVM({ metadata: { name, namespace: 'default', labels: OPT_IN }, spec: { runStrategy } }, state);
}

const SCENARIOS: Scenario[] = [
  {
    fn: 'start',
    setup: async (name) => (addVM(name, 'Halted'), { name }),
    effects: vmiChanges,
    expected: { vmiCreated: 1, vmiDeleted: 0 },
  },
  {
    fn: 'stop',
    setup: async (name) => (addVM(name, 'Always', { running: true }), { name }),
    effects: vmiChanges,
    expected: { vmiCreated: 0, vmiDeleted: 1 },
  },
  {
    fn: 'restart',
    label: 'restart (with ce-time)',
    setup: async (name) => (
      addVM(name, 'Always', { running: true, vmiCreatedAt: new Date(Date.now() - 3_600_000) }),
      { name }
    ),
    effects: vmiChanges,
    expected: { vmiCreated: 1, vmiDeleted: 1 },
  },
  {
    fn: 'restart',
    label: 'restart (no ce-time: the claim alone)',
    withTime: false,
    setup: async (name) => (
      addVM(name, 'Always', { running: true, vmiCreatedAt: new Date(Date.now() - 3_600_000) }),
      { name }
    ),
    effects: vmiChanges,
    expected: { vmiCreated: 1, vmiDeleted: 1 },
  },
  {
    fn: 'pause',
    setup: async (name) => (addVM(name, 'Always', { running: true }), { name }),
    effects: pausedFlips,
    expected: { paused: 1, unpaused: 0, vmiCreated: 0, vmiDeleted: 0 },
  },
  {
    fn: 'unpause',
    setup: async (name) => (addVM(name, 'Always', { running: true, paused: true }), { name }),
    effects: pausedFlips,
    expected: { paused: 0, unpaused: 1, vmiCreated: 0, vmiDeleted: 0 },
  },
  {
    fn: 'snapshot',
    setup: async (name) => (addVM(name, 'Always', { running: true }), { name }),
    effects: (name, since) => ({ snapshots: created('VirtualMachineSnapshot', name, since) }),
    expected: { snapshots: 1 },
  },
  {
    fn: 'restore',
    async setup(name) {
      addVM(name, 'Halted');
      const snap = await h
        .send('io.virtwake.vm.snapshot', { name, snapshotName: `${name}-base`, wait: { timeoutSeconds: 20 } })
        .expect(200);
      expect(snap.headers['ce-type']).toBe('io.virtwake.vm.snapshot.completed');
      return { name, snapshotName: `${name}-base` };
    },
    effects: (name, since) => ({ restores: created('VirtualMachineRestore', name, since), ...vmiChanges(name, since) }),
    expected: { restores: 1, vmiCreated: 0, vmiDeleted: 0 },
  },
  {
    fn: 'activity',
    setup: async (name) => (addVM(name, 'Halted'), { name, wake: true }),
    effects: vmiChanges,
    expected: { vmiCreated: 1, vmiDeleted: 0 },
  },
];

const typeOf = (fn: FunctionName) => `io.virtwake.vm.${fn}`;
/** Run a command type's cases only when its handler is registered (functions/index.ts). */
const served = SCENARIOS.filter((s) => HANDLERS[s.fn]);

/** One delivery's answer: a result event, or a 503 that Knative redelivers; never another status. */
function answerOf(res: request.Response): string {
  if (res.status === 200) return `${res.headers['ce-type'].split('.').pop()}/${replyData(res).reason ?? ''}`;
  expect([res.status, res.headers['retry-after'] !== undefined]).toEqual([503, true]);
  return '503';
}

test('every VM command type registered in functions/index.ts has a scenario here', () => {
  const vmCommands = Object.entries(HANDLERS)
    .filter(([, handler]) => handler?.kind === 'vm')
    .map(([fn]) => fn);
  expect(vmCommands.filter((fn) => !SCENARIOS.some((s) => s.fn === fn))).toEqual([]);
  for (const fn of ['start', 'stop', 'restart', 'pause', 'unpause']) expect(vmCommands).toContain(fn);
});

describe.each(served.map((s) => [s.label ?? s.fn, s] as const))('%s', (_label, scenario) => {
  test.concurrent.each(Array.from({ length: 10 }, (_, i) => i + 1))(
    'delivered %i time(s) at once to two instances: one effect',
    async (times) => {
      const name = `rd-${scenario.fn}-${times}-${++n}`;
      const data = await scenario.setup(name);
      await h.sim.settle();
      const since = Number(h.sim.store.resourceVersion());
      const event = {
        id: `redeliver-${name}`,
        source: '/test/redelivery',
        time: scenario.withTime === false ? undefined : new Date(Date.now() - 60_000).toISOString(),
      };

      const answers = (
        await Promise.all(
          Array.from({ length: times }, (_, i) =>
            h.send(typeOf(scenario.fn), data, { ...event, to: i % 2 ? second : h.app }),
          ),
        )
      ).map(answerOf);
      await h.sim.settle();
      expect([answers, scenario.effects(name, since)]).toEqual([answers, scenario.expected]);

      // Knative's next attempt (or a redelivery after a restart) comes later: still one effect, and a result.
      const late = answerOf(await h.send(typeOf(scenario.fn), data, { ...event, to: times % 2 ? h.app : second }));
      expect(late).not.toBe('503');
      await h.sim.settle();
      expect(scenario.effects(name, since)).toEqual(scenario.expected);
      // contract §6: a repeat is answered as done (completed/accepted), never as a failure.
      // Known gap for start (and activity with wake): a delivery that reads the VM
      // after the controller already shows it Starting gets KubeVirt's "Always does
      // not support manual start requests", which contract §2 reads as Refused; nothing
      // on the VM says which request started it. The effect is still one (above).
      if (scenario.fn !== 'start' && scenario.fn !== 'activity')
        expect(answers.filter((a) => a.startsWith('failed'))).toEqual([]);
    },
  );
});

// KubeVirt answers a start of a VM whose runStrategy is already Always with 409
// "Always does not support manual start requests". A start of a Halted VM sets
// runStrategy Always at once, so a redelivery that arrives before the
// controller catches up gets that refusal although its start is under way:
// start.ts answers it AlreadyInProgress (vm-state.ts startLagging).
test('a start redelivered while the VM is still starting is answered accepted or completed, not failed', async () => {
  const name = `rd-start-gap-${++n}`;
  addVM(name, 'Halted');
  const event = { id: `gap-${name}`, source: '/test/redelivery' };
  h.sim.pauseControllers();
  try {
    expect(answerOf(await h.send('io.virtwake.vm.start', { name }, event))).toBe('accepted/');
    expect(answerOf(await h.send('io.virtwake.vm.start', { name }, { ...event, to: second }))).not.toMatch(/^failed/);
  } finally {
    h.sim.resumeControllers();
  }
});
