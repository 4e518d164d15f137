import request from 'supertest';
import type { StoreEvent } from '../../simulator/store';
import type { App } from '../../functions/app';
import { LEDGER, readLedger } from '../../functions/runtime/ledger';
import type { VirtualMachine } from '../../functions/runtime/kubevirt-types';
import { Harness, replyData, startHarness } from '../helpers/harness';

// contract §6, the request ledger: A, then B (another request), then a late
// redelivery of A, which is what Knative produces when A's first delivery was
// slow and other traffic came in between. One effect per request; the late A
// has none and is answered with A's recorded outcome, or `completed` /
// Superseded naming B. A and B go to different instances, the late A to
// either: nothing that decides lives in one process. Effects are counted on
// the simulator's store (every write any controller or API call made).

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
const since = () => Number(h.sim.store.resourceVersion());
const count = (kind: string, type: StoreEvent['type'], name: string, from: number, vm?: string) =>
  events.filter(
    (e) =>
      e.rv > from &&
      e.resource.kind === kind &&
      e.type === type &&
      (vm ? e.object.spec?.source?.name === vm : e.object.metadata.name === name),
  ).length;
const pausedFlips = (name: string, from: number) => {
  const paused = (o: StoreEvent['object'] | undefined) =>
    !!o?.status?.conditions?.some((c: { type: string; status: string }) => c.type === 'Paused' && c.status === 'True');
  const mods = events.filter(
    (e) =>
      e.rv > from &&
      e.resource.kind === 'VirtualMachineInstance' &&
      e.type === 'MODIFIED' &&
      e.object.metadata.name === name,
  );
  return {
    paused: mods.filter((e) => !paused(e.old) && paused(e.object)).length,
    unpaused: mods.filter((e) => paused(e.old) && !paused(e.object)).length,
  };
};

function addVM(
  name: string,
  runStrategy: string,
  state: { running?: boolean; paused?: boolean; vmiCreatedAt?: Date } = {},
): void {
  h.sim.store.addVM({ metadata: { name, namespace: 'default', labels: OPT_IN }, spec: { runStrategy } }, state);
}
const vmOf = (name: string) => h.sim.store.getVM('default', name) as unknown as VirtualMachine;
const answer = (res: request.Response) =>
  res.status === 200 ? `${res.headers['ce-type'].split('.').pop()}/${replyData(res).reason ?? ''}` : String(res.status);
const ago = (s: number) => new Date(Date.now() - s * 1000).toISOString();

describe.each([
  ['without ce-time', false],
  ['with ce-time', true],
])('A, B, late A (%s)', (_label, withTime) => {
  const t = (s: number) => (withTime ? { time: ago(s) } : {});

  test('restart: two restarts for two requests; the late A restarts nothing', async () => {
    const name = `lg-restart-${++n}`;
    // A VMI from before both requests: with ce-time, restart also compares the two.
    addVM(name, 'Always', { running: true, vmiCreatedAt: new Date(Date.now() - 3_600_000) });
    await h.sim.settle();
    const from = since();
    const a = { id: `a-${name}`, source: '/test/ledger', ...t(60) };
    expect(answer(await h.send('io.virtwake.vm.restart', { name }, a))).toBe('accepted/');
    await h.sim.settle();
    // B is made after A's restart (a ce-time older than the VMI A made would be AlreadyInState).
    const b = { id: `b-${name}`, source: '/test/ledger', ...t(-2), to: second };
    expect(answer(await h.send('io.virtwake.vm.restart', { name }, b))).toBe('accepted/');
    await h.sim.settle();
    const late = await h.send('io.virtwake.vm.restart', { name }, { ...a, to: second });
    await h.sim.settle();
    expect(answer(late)).toMatch(/^(accepted|completed)\//);
    expect(count('VirtualMachineInstance', 'ADDED', name, from)).toBe(2);
    expect(count('VirtualMachineInstance', 'DELETED', name, from)).toBe(2);
  });

  test('stop A, start B, late A: the VM keeps running', async () => {
    const name = `lg-stop-${++n}`;
    addVM(name, 'Always', { running: true });
    await h.sim.settle();
    const a = { id: `a-${name}`, source: '/test/ledger', ...t(60) };
    expect(answer(await h.send('io.virtwake.vm.stop', { name, wait: { timeoutSeconds: 20 } }, a))).toBe('completed/');
    const b = { id: `b-${name}`, source: '/test/ledger', ...t(30), to: second };
    expect(answer(await h.send('io.virtwake.vm.start', { name, wait: { timeoutSeconds: 20 } }, b))).toBe('completed/');
    const from = since();
    const late = await h.send('io.virtwake.vm.stop', { name }, { ...a, to: second });
    await h.sim.settle();
    expect(answer(late)).toBe('completed/');
    expect(replyData(late).message).toMatch(/earlier delivery of this request/);
    expect(count('VirtualMachineInstance', 'DELETED', name, from)).toBe(0);
    expect(vmOf(name).status?.printableStatus).toBe('Running');
  });

  test('pause A, unpause B, late A: the VM stays unpaused', async () => {
    const name = `lg-pause-${++n}`;
    addVM(name, 'Always', { running: true });
    await h.sim.settle();
    const a = { id: `a-${name}`, source: '/test/ledger', ...t(60) };
    expect(answer(await h.send('io.virtwake.vm.pause', { name, wait: { timeoutSeconds: 20 } }, a))).toBe('completed/');
    const b = { id: `b-${name}`, source: '/test/ledger', ...t(30), to: second };
    expect(answer(await h.send('io.virtwake.vm.unpause', { name, wait: { timeoutSeconds: 20 } }, b))).toBe(
      'completed/',
    );
    const from = since();
    const late = await h.send('io.virtwake.vm.pause', { name }, { ...a, to: second });
    await h.sim.settle();
    expect(answer(late)).toBe('completed/');
    expect(pausedFlips(name, from)).toEqual({ paused: 0, unpaused: 0 });
  });

  test('snapshot A keep 1, snapshot B keep 1, late A: not made again, B kept', async () => {
    const name = `lg-snap-${++n}`;
    addVM(name, 'Always', { running: true });
    await h.sim.settle();
    const from = since();
    const a = { id: `a-${name}`, source: '/test/ledger', ...t(60) };
    const ra = await h.send('io.virtwake.vm.snapshot', { name, keep: 1, wait: { timeoutSeconds: 20 } }, a);
    expect(answer(ra)).toBe('completed/');
    const b = { id: `b-${name}`, source: '/test/ledger', ...t(30), to: second };
    const rb = await h.send('io.virtwake.vm.snapshot', { name, keep: 1, wait: { timeoutSeconds: 20 } }, b);
    expect(answer(rb)).toBe('completed/');
    await h.sim.settle();
    const snapA = replyData(ra).snapshot.name;
    const snapB = replyData(rb).snapshot.name;
    expect(h.sim.store.getSnapshot('default', snapA)).toBeUndefined();

    const late = await h.send('io.virtwake.vm.snapshot', { name, keep: 1, wait: { timeoutSeconds: 20 } }, a);
    await h.sim.settle();
    expect(answer(late)).toBe('completed/');
    expect(replyData(late).message).toMatch(/deleted since; nothing was done/);
    expect(count('VirtualMachineSnapshot', 'ADDED', '', from, name)).toBe(2);
    // The snapshot B's reply names is still there to restore from.
    expect(h.sim.store.getSnapshot('default', snapB)).toBeDefined();
  });
});

test('a command older (ce-time) than one applied since, never seen before: completed/Superseded naming it', async () => {
  const name = `lg-super-${++n}`;
  addVM(name, 'Always', { running: true });
  await h.sim.settle();
  const b = { id: `b-${name}`, source: '/test/ledger', time: ago(30) };
  expect(answer(await h.send('io.virtwake.vm.stop', { name, wait: { timeoutSeconds: 20 } }, b))).toBe('completed/');
  const from = since();
  const old = await h.send(
    'io.virtwake.vm.start',
    { name },
    { id: `a-${name}`, source: '/test/ledger', time: ago(60), to: second },
  );
  await h.sim.settle();
  expect(answer(old)).toBe('completed/Superseded');
  expect(replyData(old).message).toContain(`io.virtwake.vm.stop b-${name} from /test/ledger`);
  expect(count('VirtualMachineInstance', 'ADDED', name, from)).toBe(0);
  // A newer one still acts.
  const newer = await h.send(
    'io.virtwake.vm.start',
    { name },
    { id: `c-${name}`, source: '/test/ledger', time: ago(1) },
  );
  expect(answer(newer)).toBe('accepted/');
});

test('the ledger on the VM is one bounded annotation: 40 requests keep the newest 32, resourceVersion-guarded', async () => {
  const name = `lg-bound-${++n}`;
  addVM(name, 'Always', { running: true });
  await h.sim.settle();
  for (let i = 0; i < 40; i++)
    expect(
      answer(await h.send('io.virtwake.vm.unpause', { name }, { id: `u-${name}-${i}`, source: '/test/ledger' })),
    ).toMatch(/^completed\//);
  const l = readLedger(vmOf(name));
  expect(l.entries).toHaveLength(32);
  expect(l.entries[0].request.id).toBe(`u-${name}-8`);
  expect(l.entries[31].request.id).toBe(`u-${name}-39`);
  expect(vmOf(name).metadata.annotations?.[LEDGER]?.length).toBeLessThan(16_000);
  // Every write of the ledger named the resourceVersion it read.
  const writes = h.sim.calls.filter(
    (c) => c.verb === 'patch' && c.name === name && JSON.stringify(c.body ?? {}).includes(LEDGER),
  );
  expect(writes.length).toBeGreaterThanOrEqual(40);
  for (const w of writes)
    expect((w.body as { metadata: { resourceVersion?: string } }).metadata.resourceVersion).toMatch(/^\d+$/);
});
