import { ManualClock, type RecordedCall } from '../../simulator';
import { LAST_ACTIVITY } from '../../functions/runtime/activity';
import { replyData, startHarness, type Harness } from '../helpers/harness';

// io.virtwake.vm.activity and the activity every command records, through the
// real server against the simulator, with an injected clock.

const T0 = new Date('2030-03-01T12:00:00Z');
const OPT_IN = { 'virtwake.io/enabled': 'true' };
const clock = new ManualClock(T0);
let h: Harness;

beforeAll(async () => {
  h = await startHarness({ sim: { clock, stepMs: 5 }, now: () => clock.now() });
});
afterAll(() => h?.close());

const activityPatches = (name: string) =>
  h.sim.calls.filter(
    (c: RecordedCall) => c.method === 'PATCH' && c.name === name && JSON.stringify(c.body).includes(LAST_ACTIVITY),
  );

async function inBatches(n: number, width: number, send: (i: number) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < n; i += width)
    await Promise.all(Array.from({ length: Math.min(width, n - i) }, (_, k) => send(i + k)));
}

function addVM(
  name: string,
  o: { running?: boolean; labels?: Record<string, string>; annotations?: Record<string, string> } = {},
) {
  h.sim.store.addVM(
    {
      metadata: { name, namespace: 'default', labels: o.labels ?? OPT_IN, annotations: o.annotations },
      spec: { runStrategy: o.running ? 'Always' : 'Halted' },
    },
    { running: o.running },
  );
}

// The 10,000-event version of this burst is a load, not a proof: `npm run bench` (scripts/bench/activity.ts).
test('a burst of 1,000 activity events for one VM, on two replicas, makes at most one PATCH per replica, touching only the annotation', async () => {
  addVM('busy', { running: true, annotations: { 'virtwake.io/idle-timeout': '30m', keep: 'me' } });
  await h.sim.settle();
  const other = await h.replica();
  h.sim.resetCalls();
  await inBatches(1_000, 100, (i) =>
    h.send('io.virtwake.vm.activity', { name: 'busy' }, { to: i % 2 ? other : h.app }).expect(200),
  );

  const patches = activityPatches('busy');
  expect(patches.length).toBeGreaterThanOrEqual(1);
  expect(patches.length).toBeLessThanOrEqual(2);
  for (const p of patches) {
    expect(p.contentType).toBe('application/merge-patch+json');
    expect(p.body).toEqual({ metadata: { annotations: { [LAST_ACTIVITY]: '2030-03-01T12:00:00Z' } } });
  }
  const vm = h.sim.store.getVM('default', 'busy')!;
  expect(vm.metadata.annotations).toMatchObject({
    [LAST_ACTIVITY]: '2030-03-01T12:00:00Z',
    keep: 'me',
    'virtwake.io/idle-timeout': '30m',
  });

  // Within the minute: nothing more, whatever the rate. A minute later: one more.
  clock.advance(59_000);
  h.sim.resetCalls();
  await inBatches(200, 50, () => h.send('io.virtwake.vm.activity', { name: 'busy' }).expect(200));
  expect(activityPatches('busy')).toHaveLength(0);
  clock.advance(1_000);
  await inBatches(200, 50, () => h.send('io.virtwake.vm.activity', { name: 'busy' }).expect(200));
  expect(activityPatches('busy')).toHaveLength(1);
  expect(h.sim.store.getVM('default', 'busy')!.metadata.annotations?.[LAST_ACTIVITY]).toBe('2030-03-01T12:01:00Z');
}, 120_000);

test('the reply: completed; and every other command records activity too', async () => {
  addVM('plain');
  const res = await h.send('io.virtwake.vm.activity', { name: 'plain' }).expect(200);
  expect(res.headers['ce-type']).toBe('io.virtwake.vm.activity.completed');
  expect(replyData(res)).toMatchObject({ name: 'plain', action: 'activity', outcome: 'completed' });

  addVM('commanded');
  await h.send('io.virtwake.vm.start', { name: 'commanded' }).expect(200);
  expect(h.sim.store.getVM('default', 'commanded')!.metadata.annotations?.[LAST_ACTIVITY]).toBe(
    clock.now().toISOString().replace('.000Z', 'Z'),
  );
});

test('dryRun records nothing; a VM that has not opted in is refused 403', async () => {
  addVM('dry');
  h.sim.resetCalls();
  const res = await h.send('io.virtwake.vm.activity', { name: 'dry', dryRun: true }).expect(200);
  expect(replyData(res)).toMatchObject({ outcome: 'accepted', reason: 'DryRun' });
  expect(activityPatches('dry')).toHaveLength(0);

  addVM('outsider', { labels: { app: 'x' } });
  const denied = await h.send('io.virtwake.vm.activity', { name: 'outsider' }).expect(403);
  expect(denied.body.detail).toMatch(/virtwake.io\/enabled=true is missing/);
  expect(h.sim.store.getVM('default', 'outsider')!.metadata.annotations?.[LAST_ACTIVITY]).toBeUndefined();
});

test('wake starts a stopped VM once; a running one is left as it is', async () => {
  addVM('sleepy');
  h.sim.resetCalls();
  const res = await h
    .send('io.virtwake.vm.activity', { name: 'sleepy', wake: true, wait: { timeoutSeconds: 30 } })
    .expect(200);
  expect(res.headers['ce-type']).toBe('io.virtwake.vm.activity.completed');
  expect(replyData(res).status).toEqual({ printableStatus: 'Running', ready: true });
  expect(h.sim.calls.filter((c) => c.subresource === 'start')).toHaveLength(1);
  expect(h.sim.store.getVM('default', 'sleepy')!.metadata.annotations?.[LAST_ACTIVITY]).toBeDefined();

  h.sim.resetCalls();
  const again = await h.send('io.virtwake.vm.activity', { name: 'sleepy', wake: true }).expect(200);
  expect(replyData(again)).toMatchObject({ outcome: 'completed', reason: 'AlreadyInState' });
  expect(h.sim.calls.filter((c) => c.subresource === 'start')).toHaveLength(0);
});

test('fresh activity keeps an otherwise idle VM from the reaper', async () => {
  addVM('saved', {
    running: true,
    annotations: { 'virtwake.io/idle-timeout': '1m', [LAST_ACTIVITY]: '2030-03-01T10:00:00Z' },
  });
  await h.sim.settle();
  clock.advance(61 * 60_000);
  await h.send('io.virtwake.vm.activity', { name: 'saved' }).expect(200);
  const s = replyData(await h.send('dev.knative.sources.ping', {}, { source: '/ping' }).expect(200));
  expect(s.stopped).not.toContain('default/saved');
  expect(h.sim.store.getVM('default', 'saved')!.status?.printableStatus).toBe('Running');
});
