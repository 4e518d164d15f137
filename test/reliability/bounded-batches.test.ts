import http from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { Harness, startHarness } from '../helpers/harness';
import type { App } from '../../functions/app';

// Issue 12 §2: what one request may make virtwake do is bounded. A batch over
// VIRTWAKE_MAX_BATCH is refused whole before anything runs; the events of a batch
// run a few at a time (so a batch of waits takes about one wait, not their sum);
// selector commands share one VM budget per request; and a client that hangs up
// stops its request: nothing not yet started is started.

const OPT_IN = { 'virtwake.io/enabled': 'true' };
const BATCH = 'application/cloudevents-batch+json';
let h: Harness;

beforeAll(async () => {
  // VMIs step through their phases once a minute: a start never becomes ready within a test's wait.
  h = await startHarness({ sim: { stepMs: 60_000 } });
});
afterAll(() => h.close());

let n = 0;
function addVMs(count: number, prefix: string, labels: Record<string, string> = {}, running = false): string[] {
  const names = Array.from({ length: count }, () => `${prefix}-${++n}`);
  h.sim.store.addVMs(
    names.map((name) => ({
      vm: {
        metadata: { name, namespace: 'default', labels: { ...OPT_IN, ...labels } },
        spec: { runStrategy: running ? 'Always' : 'Halted' },
      },
      opts: { running },
    })),
  );
  return names;
}

const event = (i: number, data: unknown, type = 'io.virtwake.vm.start') => ({
  specversion: '1.0',
  id: `b-${n}-${i}`,
  source: '/test/batches',
  type,
  datacontenttype: 'application/json',
  data,
});

function postBatch(app: App, events: unknown[]): request.Test {
  return request(app.server).post('/').set('content-type', BATCH).send(JSON.stringify(events));
}

describe('a batch over VIRTWAKE_MAX_BATCH is refused whole, before any API call', () => {
  test('101 events with the default limit of 100: 413 naming the limit', async () => {
    const [name] = addVMs(1, 'big');
    h.sim.resetCalls();
    const res = await postBatch(
      h.app,
      Array.from({ length: 101 }, (_, i) => event(i, { name })),
    );
    expect(res.status).toBe(413);
    expect(JSON.parse(res.text).detail).toBe(
      'batch of 101 events is over the limit of 100 events per batch (VIRTWAKE_MAX_BATCH); nothing in it was processed, send it in smaller batches',
    );
    expect(h.sim.calls).toEqual([]);
  });

  test('a 10,000-event batch that fits the body limit: 413, nothing done', async () => {
    const app = await h.replica({ VIRTWAKE_MAX_BODY_BYTES: String(4 * 1024 * 1024) });
    const [name] = addVMs(1, 'huge');
    h.sim.resetCalls();
    const res = await postBatch(
      app,
      Array.from({ length: 10_000 }, (_, i) => event(i, { name })),
    );
    expect(res.status).toBe(413);
    expect(JSON.parse(res.text).detail).toMatch(/^batch of 10000 events is over the limit of 100 events per batch/);
    expect(h.sim.calls).toEqual([]);
    expect(h.sim.store.getVM('default', name)?.spec?.runStrategy).toBe('Halted');
  });

  test('the limit is configurable; a batch at the limit runs', async () => {
    const app = await h.replica({ VIRTWAKE_MAX_BATCH: '3' });
    const names = addVMs(4, 'cfg');
    const over = await postBatch(
      app,
      names.map((name, i) => event(i, { name })),
    );
    expect(over.status).toBe(413);
    expect(JSON.parse(over.text).detail).toMatch(/over the limit of 3 events per batch \(VIRTWAKE_MAX_BATCH\)/);
    const at = await postBatch(
      app,
      names.slice(0, 3).map((name, i) => event(i, { name })),
    );
    expect(at.status).toBe(200);
    expect(JSON.parse(at.text).map((r: { type: string }) => r.type)).toEqual(
      Array(3).fill('io.virtwake.vm.start.accepted'),
    );
  });
});

test('a batch of waits runs them side by side: eight 3 s waits answer together, each WaitTimeout', async () => {
  const names = addVMs(8, 'waits');
  const begun = Date.now();
  const res = await postBatch(
    h.app,
    names.map((name, i) => event(i, { name, wait: { timeoutSeconds: 3 } })),
  );
  expect(res.status).toBe(200);
  const replies = JSON.parse(res.text) as { type: string; data: { name: string; reason: string } }[];
  expect(replies.map((r) => [r.data.name, r.type, r.data.reason])).toEqual(
    names.map((name) => [name, 'io.virtwake.vm.start.accepted', 'WaitTimeout']),
  );
  // Liveness, not speed: one after another they would need 24 s.
  expect(Date.now() - begun).toBeLessThan(15_000);
}, 30_000);

test('selector commands share one VM budget per request: 100 selector events over 40 VMs stay bounded', async () => {
  addVMs(40, 'sel', { fleet: 'budget' }, true);
  h.sim.resetCalls();
  const events = Array.from({ length: 100 }, (_, i) =>
    event(i, { selector: { matchLabels: { fleet: 'budget' } } }, 'io.virtwake.vm.start'),
  );
  expect(JSON.stringify(events).length).toBeLessThan(20 * 1024);
  // One event at a time: 100 commands on the same 40 VMs at once would contend for each VM's request ledger.
  const app = await h.replica({ VIRTWAKE_BATCH_CONCURRENCY: '1' });
  const res = await postBatch(app, events);
  expect(res.status).toBe(200);
  const replies = JSON.parse(res.text) as {
    data: { results: { outcome: string; reason?: string; message?: string }[] };
  }[];
  const entries = replies.flatMap((r) => r.data.results);
  const acted = entries.filter((e) => e.reason !== 'LimitExceeded');
  const refused = entries.filter((e) => e.reason === 'LimitExceeded');
  expect(acted).toHaveLength(200);
  expect(refused.length).toBeGreaterThan(0);
  expect(refused[0]).toMatchObject({
    outcome: 'failed',
    message: expect.stringMatching(/already acted on 200 VMs \(VIRTWAKE_MAX_VMS_PER_REQUEST\)/),
  });
  // Without the budget: 4,000 VM actions. With it: 200 VMs, a few calls each (read, ledger, start), plus one list per event.
  const starts = h.sim.calls.filter((c) => c.subresource === 'start');
  expect(starts).toHaveLength(200);
  expect(h.sim.calls.filter((c) => c.verb === 'list').length).toBeLessThanOrEqual(100);
  expect(h.sim.calls.length).toBeLessThan(200 * 6 + 100);
}, 30_000);

test('a client that hangs up stops its batch: nothing not yet started is started', async () => {
  const app = await h.replica({ VIRTWAKE_BATCH_CONCURRENCY: '2' });
  const names = addVMs(20, 'gone');
  h.sim.resetCalls();
  const starts = () => h.sim.calls.filter((c) => c.subresource === 'start' && names.includes(c.name ?? ''));
  const { port } = app.server.address() as AddressInfo;
  const req = http.request({ port, host: '127.0.0.1', method: 'POST', path: '/', headers: { 'content-type': BATCH } });
  req.on('error', () => {});
  req.end(JSON.stringify(names.map((name, i) => event(i, { name, wait: { timeoutSeconds: 60 } }))));
  // The first two are waiting on their VMs; the client gives up.
  while (starts().length < 2) await new Promise((r) => setTimeout(r, 20));
  req.destroy();
  await new Promise((r) => setTimeout(r, 1500));
  expect(starts()).toHaveLength(2);
  for (const name of names.slice(2)) expect(h.sim.store.getVM('default', name)?.spec?.runStrategy).toBe('Halted');
  // The two waits end with the client: the instance is left with nothing in flight (long before their 60 s).
  for (let i = 0; i < 200 && app.inFlight() > 0; i++) await new Promise((r) => setTimeout(r, 50));
  expect(app.inFlight()).toBe(0);
}, 30_000);
