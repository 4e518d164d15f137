import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import request from 'supertest';
import type { App } from '../../functions/app';
import { readLedger } from '../../functions/runtime/ledger';
import type { VirtualMachine } from '../../functions/runtime/kubevirt-types';
import { Harness, replyData, startHarness } from '../helpers/harness';
import { ChangeEvent, ChangeFeed, changeFeed, deliver, SNAPSHOTS, VMS } from '../helpers/apiserversource';
import { compareRoleWithCalls } from '../knative/rbac';

// contract §2, results as events. A command through the Broker (no `wait`) is
// answered at once (`.accepted`); the outcome that takes time arrives later as
// its own event, from the ApiServerSource's change events (built from the
// simulator's watch as the adapter builds them: test/helpers/apiserversource.ts),
// whichever instance gets them, however often, in whatever order, also after
// the instance that accepted the command is gone: exactly one `.completed`
// (one id), with the command's causationid. A deadline passed is reported
// `.failed` / Timeout on the next reaper tick, once, at K_SINK.

interface Received {
  type: string;
  id: string;
  headers: http.IncomingHttpHeaders;
  data: Record<string, any>;
}

const sunk: Received[] = [];
/** Runs before the sink answers an event: a test holds a delivery to K_SINK while something else happens. */
let beforeSinkAnswers: ((r: Received) => Promise<void>) | undefined;
let sink: http.Server;
let h: Harness;
let second: App;
let feed: ChangeFeed;
const OPT_IN = { 'virtwake.io/enabled': 'true' };

beforeAll(async () => {
  sink = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r: Received = {
        type: String(req.headers['ce-type']),
        id: String(req.headers['ce-id']),
        headers: req.headers,
        data: JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null'),
      };
      sunk.push(r);
      void (beforeSinkAnswers?.(r) ?? Promise.resolve()).finally(() => res.writeHead(202).end());
    });
  });
  await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
  const K_SINK = `http://127.0.0.1:${(sink.address() as AddressInfo).port}/`;
  h = await startHarness({ sim: { stepMs: 5, snapshotStepMs: 5 }, env: { K_SINK } });
  second = await h.replica();
  feed = await changeFeed(h, [VMS, SNAPSHOTS]);
});
afterAll(async () => {
  feed.stop();
  await h.close();
  await new Promise((r) => sink.close(r));
});

let n = 0;
function addVM(name: string, runStrategy: string, state: { running?: boolean } = {}): void {
  h.sim.store.addVM({ metadata: { name, namespace: 'default', labels: OPT_IN }, spec: { runStrategy } }, state);
}
const vmOf = (name: string) => h.sim.store.getVM('default', name) as unknown as VirtualMachine;

/** Until the feed has seen the VM as the store holds it now (a liveness wait, bounded by jest's timeout). */
async function caughtUp(name: string): Promise<void> {
  const rv = vmOf(name).metadata.resourceVersion;
  while (feed.about('VirtualMachine', name).at(-1)?.data.metadata.resourceVersion !== rv)
    await new Promise((r) => setTimeout(r, 10));
}

/** Result events, from the replies to change events and from K_SINK. */
interface Result {
  type: string;
  id: string;
  ext: Record<string, string | undefined>;
  data: Record<string, any>;
}
const fromReply = (res: request.Response): Result[] =>
  res.status === 200
    ? [
        {
          type: res.headers['ce-type'],
          id: res.headers['ce-id'],
          ext: {
            causationid: res.headers['ce-causationid'],
            vmnamespace: res.headers['ce-vmnamespace'],
            vmname: res.headers['ce-vmname'],
          },
          data: replyData(res),
        },
      ]
    : [];

async function deliverAll(events: ChangeEvent[], to?: App): Promise<Result[]> {
  const out: Result[] = [];
  for (const e of events) {
    const res = await deliver(h, e, to);
    expect([e.type, res.status]).toEqual([e.type, res.status === 202 ? 202 : 200]);
    out.push(...fromReply(res));
  }
  return out;
}
const sunkSince = (i: number): Result[] =>
  sunk.slice(i).map((s) => ({
    type: s.type,
    id: s.id,
    ext: {
      causationid: s.headers['ce-causationid'] as string,
      vmnamespace: s.headers['ce-vmnamespace'] as string,
      vmname: s.headers['ce-vmname'] as string,
    },
    data: s.data,
  }));

/** Start a stopped VM through the "Broker" (no wait) and let the simulator bring it up. */
async function startViaBroker(name: string, to?: App) {
  addVM(name, 'Halted');
  await h.sim.settle();
  const id = `cmd-${name}`;
  const res = await h.send('io.virtwake.vm.start', { name }, { id, source: '/test/broker', to }).expect(200);
  expect(res.headers['ce-type']).toBe('io.virtwake.vm.start.accepted');
  await h.sim.settle();
  expect(vmOf(name).status?.printableStatus).toBe('Running');
  await caughtUp(name);
  return { id, accepted: res };
}

const completions = (rs: Result[], name: string) =>
  rs.filter((r) => r.type === 'io.virtwake.vm.start.completed' && r.ext.vmname === name);

test('accepted at once; the change events, at another instance, yield one .completed with the right causation', async () => {
  const name = `rs-start-${++n}`;
  const { id } = await startViaBroker(name);
  const mark = sunk.length;
  const events = feed.about('VirtualMachine', name);
  expect(events.length).toBeGreaterThan(1);
  const got = [...(await deliverAll(events, second)), ...sunkSince(mark)];
  const done = completions(got, name);
  expect(done).toHaveLength(1);
  expect(done[0].ext).toEqual({ causationid: id, vmnamespace: 'default', vmname: name });
  expect(done[0].data).toMatchObject({
    namespace: 'default',
    name,
    action: 'start',
    outcome: 'completed',
    request: { id, source: '/test/broker', type: 'io.virtwake.vm.start' },
  });
  // The entry is closed, with the change event that closed it.
  const entry = readLedger(vmOf(name)).entries.find((e) => e.request.id === id);
  expect(entry).toMatchObject({ state: 'done', outcome: 'completed' });
  expect(events.map((e) => e.id)).toContain(entry?.by);
});

test('delivered twice, out of order, to both instances: still one .completed (one id)', async () => {
  const name = `rs-twice-${++n}`;
  await startViaBroker(name);
  const mark = sunk.length;
  const events = feed.about('VirtualMachine', name);
  const reversed = [...events].reverse();
  const results = await Promise.all([deliverAll(reversed, second), deliverAll(events, h.app)]);
  const again = await deliverAll(events, second);
  const all = [...results.flat(), ...again, ...sunkSince(mark)];
  const done = completions(all, name);
  expect(done.length).toBeGreaterThanOrEqual(1);
  expect(new Set(done.map((d) => d.id)).size).toBe(1);
  // Only a redelivery of the change event that closed the entry repeats it.
  const by = readLedger(vmOf(name)).entries.find((e) => e.request.id === `cmd-${name}`)?.by;
  const closer = events.find((e) => e.id === by)!;
  const repeat = fromReply(await deliver(h, closer, h.app));
  expect(completions(repeat, name).map((d) => d.id)).toEqual([done[0].id]);
  const other = events.find((e) => e.id !== by)!;
  expect(completions(fromReply(await deliver(h, other, second)), name)).toEqual([]);
});

test('after the instance that accepted the command is gone: one .completed from another', async () => {
  const name = `rs-killed-${++n}`;
  const doomed = await h.replica();
  const { id } = await startViaBroker(name, doomed);
  await doomed.close();
  const mark = sunk.length;
  const got = [...(await deliverAll(feed.about('VirtualMachine', name), h.app)), ...sunkSince(mark)];
  const done = completions(got, name);
  expect(done.map((d) => d.ext.causationid)).toEqual([id]);
});

test('a snapshot through the Broker: accepted, then one .completed naming the snapshot', async () => {
  const name = `rs-snap-${++n}`;
  addVM(name, 'Always', { running: true });
  await h.sim.settle();
  const res = await h.send('io.virtwake.vm.snapshot', { name }, { id: `snap-${name}`, source: '/test/broker' });
  expect(res.headers['ce-type']).toBe('io.virtwake.vm.snapshot.accepted');
  const snap = replyData(res).snapshot.name;
  await h.sim.settle();
  const rv = h.sim.store.getSnapshot('default', snap)?.metadata.resourceVersion;
  while (feed.about('VirtualMachineSnapshot', snap).at(-1)?.data.metadata.resourceVersion !== rv)
    await new Promise((r) => setTimeout(r, 10));
  const mark = sunk.length;
  const got = [...(await deliverAll(feed.about('VirtualMachineSnapshot', snap), second)), ...sunkSince(mark)];
  const done = got.filter((r) => r.type === 'io.virtwake.vm.snapshot.completed');
  expect(done).toHaveLength(1);
  expect(done[0].ext.causationid).toBe(`snap-${name}`);
  expect(done[0].data.snapshot).toMatchObject({ name: snap, readyToUse: true });
});

test('a printableStatus change of an opted-in VM is published as io.virtwake.vm.state.changed', async () => {
  const name = `rs-state-${++n}`;
  addVM(name, 'Halted');
  await h.sim.settle();
  await caughtUp(name);
  // First sight: recorded, nothing to tell yet (no "from").
  const before = feed.about('VirtualMachine', name);
  const first = await deliverAll(before, h.app);
  expect(first.filter((r) => r.type === 'io.virtwake.vm.state.changed')).toEqual([]);
  expect(readLedger(vmOf(name)).seen?.status).toBe('Stopped');

  await h.send('io.virtwake.vm.start', { name }, { id: `cmd-${name}`, source: '/test/broker' }).expect(200);
  await h.sim.settle();
  await caughtUp(name);
  const mark = sunk.length;
  const later = feed.about('VirtualMachine', name).slice(before.length);
  const got = [...(await deliverAll(later, second)), ...sunkSince(mark)];
  const changes = got.filter((r) => r.type === 'io.virtwake.vm.state.changed' && r.ext.vmname === name);
  // Judged on the VM as it is when an event arrives: states passed between two looks are not told.
  expect(changes.map((c) => [c.data.from, c.data.to])).toEqual([['Stopped', 'Running']]);
  expect(changes[0].ext).toEqual({ causationid: expect.any(String), vmnamespace: 'default', vmname: name });
  expect(readLedger(vmOf(name)).seen?.status).toBe('Running');
});

test('a deadline passed: .failed / Timeout with the state seen, on the next tick, once, at K_SINK', async () => {
  const name = `rs-late-${++n}`;
  addVM(name, 'Always', { running: true });
  await h.sim.settle();
  const hurried = await h.replica({ VIRTWAKE_RESULT_TIMEOUT: '1ms' });
  // Nothing happens on the cluster: the pause never shows.
  h.sim.pauseControllers();
  try {
    const res = await h.send(
      'io.virtwake.vm.pause',
      { name },
      { id: `late-${name}`, source: '/test/broker', to: hurried },
    );
    expect(res.headers['ce-type']).toBe('io.virtwake.vm.pause.accepted');
    await new Promise((r) => setTimeout(r, 20));
    const mark = sunk.length;
    const tick = { id: `tick-${name}`, source: '/apis/v1/namespaces/default/pingsources/virtwake-reaper' };
    await h.send('dev.knative.sources.ping', { action: 'reap' }, tick).expect(200);
    await h
      .send('dev.knative.sources.ping', { action: 'reap' }, { ...tick, id: `tick2-${name}`, to: second })
      .expect(200);
    const failed = sunkSince(mark).filter((r) => r.ext.vmname === name);
    expect(failed.map((f) => [f.type, f.data.reason, f.ext.causationid])).toEqual([
      ['io.virtwake.vm.pause.failed', 'Timeout', `late-${name}`],
    ]);
    expect(failed[0].data.message).toMatch(/paused not observed by .*; the VM is Running/);
    expect(readLedger(vmOf(name)).entries.find((e) => e.request.id === `late-${name}`)).toMatchObject({
      state: 'done',
      outcome: 'failed',
      reason: 'Timeout',
    });
  } finally {
    h.sim.resumeControllers();
    await hurried.close();
  }
});

describe('the deadline passes as the completion arrives: one outcome per request, whichever instance wins', () => {
  // A pause accepted with a deadline already past, the VM not paused yet: then the controllers run, the VM
  // pauses, and the change event reaches one instance (results) while another (the reaper's tick) times the
  // request out. The ledger entry is the arbiter: each side settles it with the VM's resourceVersion, and
  // the one that loses re-reads and finds it settled.
  async function racing(name: string): Promise<{ hurried: App; tick: () => Promise<void>; change: ChangeEvent }> {
    addVM(name, 'Always', { running: true });
    await h.sim.settle();
    const hurried = await h.replica({ VIRTWAKE_RESULT_TIMEOUT: '1ms' });
    h.sim.pauseControllers();
    const res = await h.send(
      'io.virtwake.vm.pause',
      { name },
      { id: `race-${name}`, source: '/test/broker', to: hurried },
    );
    expect(res.headers['ce-type']).toBe('io.virtwake.vm.pause.accepted');
    await new Promise((r) => setTimeout(r, 20));
    h.sim.resumeControllers();
    await h.sim.settle();
    expect(vmOf(name).status?.printableStatus).toBe('Paused');
    await caughtUp(name);
    const change = feed.about('VirtualMachine', name).at(-1) as ChangeEvent;
    const tick = async () => {
      await h
        .send(
          'dev.knative.sources.ping',
          { action: 'reap' },
          { id: `tick-${name}`, source: '/apis/v1/namespaces/default/pingsources/virtwake-reaper' },
        )
        .expect(200);
    };
    return { hurried, tick, change };
  }
  const outcomes = (rs: Result[], name: string) =>
    rs
      .filter((r) => r.ext.vmname === name && /^io\.virtwake\.vm\.pause\.(completed|failed)$/.test(r.type))
      .map((r) => [r.type, r.data.reason ?? null]);

  test('the completion is handled while the tick is writing the timeout: the tick loses, one .completed', async () => {
    const name = `rs-race-write-${++n}`;
    const { hurried, tick, change } = await racing(name);
    try {
      const mark = sunk.length;
      // The tick's ledger write is held in the API server; the results instance settles meanwhile.
      const held = h.sim.faults.add({
        method: 'PATCH',
        path: new RegExp(`/virtualmachines/${name}$`),
        delayMs: 600,
        times: 1,
      });
      const ticked = tick();
      while (h.sim.faults.list().some((f) => f.id === held)) await new Promise((r) => setTimeout(r, 5));
      const completed = fromReply(await deliver(h, change, second));
      await ticked;
      expect(outcomes([...completed, ...sunkSince(mark)], name)).toEqual([['io.virtwake.vm.pause.completed', null]]);
      expect(readLedger(vmOf(name)).entries.find((e) => e.request.id === `race-${name}`)).toMatchObject({
        state: 'done',
        outcome: 'completed',
      });
    } finally {
      await hurried.close();
    }
  });

  test('the completion arrives while the timeout is being delivered: the tick won, one .failed/Timeout', async () => {
    const name = `rs-race-send-${++n}`;
    const { hurried, tick, change } = await racing(name);
    const completed: Result[] = [];
    beforeSinkAnswers = async (r) => {
      if (r.headers['ce-vmname'] === name) completed.push(...fromReply(await deliver(h, change, second)));
    };
    try {
      const mark = sunk.length;
      await tick();
      expect(outcomes([...completed, ...sunkSince(mark)], name)).toEqual([['io.virtwake.vm.pause.failed', 'Timeout']]);
      expect(readLedger(vmOf(name)).entries.find((e) => e.request.id === `race-${name}`)).toMatchObject({
        state: 'done',
        outcome: 'failed',
        reason: 'Timeout',
      });
      // Delivered: the next tick sends it no more.
      const again = sunk.length;
      await h
        .send(
          'dev.knative.sources.ping',
          { action: 'reap' },
          { id: `tick2-${name}`, source: '/apis/v1/namespaces/default/pingsources/virtwake-reaper', to: second },
        )
        .expect(200);
      expect(outcomes(sunkSince(again), name)).toEqual([]);
    } finally {
      beforeSinkAnswers = undefined;
      await hurried.close();
    }
  });
});

test('change events virtwake has no business with are answered 202 and change nothing', async () => {
  const name = `rs-other-${++n}`;
  h.sim.store.addVM({ metadata: { name, namespace: 'default' }, spec: { runStrategy: 'Halted' } });
  h.sim.resetCalls();
  const base: ChangeEvent = {
    id: `other-${name}`,
    type: 'dev.knative.apiserver.resource.update',
    source: 'https://127.0.0.1:6443',
    subject: `/apis/kubevirt.io/v1/namespaces/default/virtualmachines/${name}`,
    extensions: { kind: 'VirtualMachine', apiversion: 'kubevirt.io/v1', name, namespace: 'default' },
    data: { kind: 'VirtualMachine', metadata: { name, namespace: 'default' } },
  };
  // A VM that did not opt in; a kind virtwake does not watch; a namespace it may not touch.
  await deliver(h, base).expect(202);
  await deliver(h, {
    ...base,
    id: `pod-${name}`,
    data: { kind: 'Pod', metadata: { name, namespace: 'default' } },
  }).expect(202);
  await deliver(h, {
    ...base,
    id: `ns-${name}`,
    data: { kind: 'VirtualMachine', metadata: { name, namespace: 'kube-system' } },
  }).expect(202);
  expect(h.sim.calls.filter((c) => c.verb !== 'get' && c.verb !== 'list' && c.verb !== 'watch')).toEqual([]);
});

test('knative/apiserversource.yaml grants what the adapter does (list, watch) and the get Knative checks for', () => {
  const role = path.join(__dirname, '../../knative/apiserversource.yaml');
  const { missing, unused } = compareRoleWithCalls(role, feed.calls);
  expect(missing).toEqual([]);
  expect(unused).toEqual([
    'get kubevirt.io/virtualmachines',
    'get snapshot.kubevirt.io/virtualmachinerestores',
    'get snapshot.kubevirt.io/virtualmachinesnapshots',
    'list snapshot.kubevirt.io/virtualmachinerestores',
    'watch snapshot.kubevirt.io/virtualmachinerestores',
  ]);
});
