// Watches: event types and order, resumption from a resourceVersion, 410 for a too-old
// start, selector-boundary transitions, bookmarks, and server-side timeouts.
import { Watch } from '@kubernetes/client-node';
import { request, startEnv, subresource, vmPath, type TestEnv } from './helpers';

let env: TestEnv;
beforeAll(async () => {
  env = await startEnv({ bookmarkIntervalMs: 30 });
});
afterAll(() => env.sim.close());

let seq = 0;
const fresh = (p: string) => `${p}-${++seq}`;

interface Seen {
  type: string;
  name?: string;
  rv?: string;
  obj: any;
}

async function open(path: string, query: Record<string, string | number | boolean> = {}) {
  const events: Seen[] = [];
  let doneErr: unknown = 'open';
  const done = new Promise<unknown>((resolve) => {
    void new Watch(env.kc)
      .watch(
        path,
        query,
        (type, obj: any) => events.push({ type, name: obj?.metadata?.name, rv: obj?.metadata?.resourceVersion, obj }),
        (err) => {
          doneErr = err;
          resolve(err);
        },
      )
      .then((ctl) => (controller = ctl));
  });
  let controller: AbortController | undefined;
  // Wait until the stream is established (the initial response has been received).
  const t0 = Date.now();
  while (!controller && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 2));
  return {
    events,
    done,
    stop: () => controller?.abort(),
    get ended() {
      return doneErr !== 'open';
    },
  };
}

const waitFor = async (pred: () => boolean, ms = 5000) => {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > ms) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 2));
  }
};

test('initial ADDED events, then MODIFIED and DELETED as things change', async () => {
  const { sim, kc } = env;
  const ns = fresh('ns');
  sim.store.addVM({ metadata: { name: 'a', namespace: ns }, spec: { runStrategy: 'Halted' } });
  const w = await open(vmPath(ns));
  await waitFor(() => w.events.length === 1);
  expect(w.events[0]).toMatchObject({ type: 'ADDED', name: 'a' });
  sim.store.addVM({ metadata: { name: 'b', namespace: ns }, spec: { runStrategy: 'Halted' } });
  await subresource(kc, 'virtualmachines', 'a', 'start', undefined, ns);
  await sim.settle();
  await request(kc, 'DELETE', vmPath(ns, 'b'));
  await sim.settle();
  await waitFor(() => w.events.some((e) => e.type === 'DELETED'));
  w.stop();
  const types = w.events.map((e) => `${e.type}:${e.name}`);
  expect(types[1]).toBe('ADDED:b');
  expect(types).toContain('MODIFIED:a');
  expect(types.at(-1)).toBe('DELETED:b');
  const rvs = w.events.slice(1).map((e) => Number(e.rv));
  expect([...rvs].sort((x, y) => x - y)).toEqual(rvs);
  expect(w.events.filter((e) => e.name === 'a').map((e) => e.obj.status?.printableStatus)).toEqual(
    expect.arrayContaining(['Starting', 'Running']),
  );
});

test('resuming from a resourceVersion replays exactly the later events', async () => {
  const { sim } = env;
  const ns = fresh('ns');
  sim.store.addVM({ metadata: { name: 'x', namespace: ns }, spec: { runStrategy: 'Halted' } });
  const rv = sim.store.resourceVersion();
  sim.store.updateVM(ns, 'x', (vm) => {
    vm.metadata.labels = { step: '1' };
  });
  sim.store.addVM({ metadata: { name: 'y', namespace: ns }, spec: { runStrategy: 'Halted' } });
  const w = await open(vmPath(ns), { resourceVersion: rv });
  await waitFor(() => w.events.length >= 2);
  w.stop();
  expect(w.events.map((e) => `${e.type}:${e.name}`)).toEqual(['MODIFIED:x', 'ADDED:y']);
  expect(w.events[0].obj.metadata.labels).toEqual({ step: '1' });
});

test('a resourceVersion older than the retained history gets an ERROR event with 410 Expired', async () => {
  const { sim } = env;
  const ns = fresh('ns');
  sim.store.addVM({ metadata: { name: 'old', namespace: ns } });
  const rv = sim.store.resourceVersion();
  sim.store.addVM({ metadata: { name: 'newer', namespace: ns } });
  sim.store.compact();
  const w = await open(vmPath(ns), { resourceVersion: rv });
  await w.done;
  expect(w.events).toHaveLength(1);
  expect(w.events[0].type).toBe('ERROR');
  expect(w.events[0].obj).toMatchObject({ kind: 'Status', status: 'Failure', reason: 'Expired', code: 410 });
  expect(w.events[0].obj.message).toMatch(/^too old resource version: \d+ \(\d+\)$/);
});

test('selector watches see objects enter (ADDED) and leave (DELETED) the selection', async () => {
  const { sim } = env;
  const ns = fresh('ns');
  sim.store.addVM({ metadata: { name: 'm', namespace: ns }, spec: { runStrategy: 'Halted' } });
  const w = await open(vmPath(ns), { labelSelector: 'virtwake.io/enabled=true' });
  sim.store.updateVM(ns, 'm', (vm) => {
    vm.metadata.labels = { 'virtwake.io/enabled': 'true' };
  });
  sim.store.updateVM(ns, 'm', (vm) => {
    vm.metadata.annotations = { touched: 'yes' };
  });
  sim.store.updateVM(ns, 'm', (vm) => {
    vm.metadata.labels = {};
  });
  await waitFor(() => w.events.length >= 3);
  w.stop();
  expect(w.events.map((e) => e.type)).toEqual(['ADDED', 'MODIFIED', 'DELETED']);
  expect(w.events[2].obj.metadata.labels).toEqual({ 'virtwake.io/enabled': 'true' });
});

test('bookmarks carry the current resourceVersion; sendInitialEvents ends with an annotated bookmark', async () => {
  const { sim } = env;
  const ns = fresh('ns');
  sim.store.addVM({ metadata: { name: 'bm', namespace: ns } });
  const w = await open(vmPath(ns), {
    allowWatchBookmarks: true,
    sendInitialEvents: true,
    resourceVersionMatch: 'NotOlderThan',
  });
  await waitFor(() => w.events.filter((e) => e.type === 'BOOKMARK').length >= 2);
  w.stop();
  expect(w.events[0]).toMatchObject({ type: 'ADDED', name: 'bm' });
  expect(w.events[1].type).toBe('BOOKMARK');
  expect(w.events[1].obj.metadata.annotations).toEqual({ 'k8s.io/initial-events-end': 'true' });
  const later = w.events.filter((e) => e.type === 'BOOKMARK').at(-1)!;
  expect(later.obj).toMatchObject({ kind: 'VirtualMachine', apiVersion: 'kubevirt.io/v1' });
  expect(Number(later.obj.metadata.resourceVersion)).toBeGreaterThanOrEqual(Number(sim.store.resourceVersion()) - 100);
});

test('timeoutSeconds ends the stream from the server side', async () => {
  const w = await open(vmPath(fresh('ns')), { timeoutSeconds: 1 });
  const err = await w.done;
  expect(err).toBeNull();
});

test('watching a single VM by name, and the legacy /watch/ path', async () => {
  const { sim, kc } = env;
  const ns = fresh('ns');
  sim.store.addVM({ metadata: { name: 'one', namespace: ns } });
  sim.store.addVM({ metadata: { name: 'two', namespace: ns } });
  const w = await open(vmPath(ns), { fieldSelector: 'metadata.name=two' });
  await waitFor(() => w.events.length >= 1);
  w.stop();
  expect(w.events.map((e) => e.name)).toEqual(['two']);
  const legacy = await request(
    kc,
    'GET',
    `/apis/kubevirt.io/v1/watch/namespaces/${ns}/virtualmachines?timeoutSeconds=1`,
  );
  expect(legacy.status).toBe(200);
  expect(
    legacy.text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).type),
  ).toEqual(['ADDED', 'ADDED']);
  expect(sim.calls.filter((c) => c.verb === 'watch').length).toBeGreaterThan(0);
});

test("client-node's informer lists, then watches from the list's resourceVersion", async () => {
  const { makeInformer } = await import('@kubernetes/client-node');
  const { sim, api, kc } = env;
  const ns = fresh('ns');
  sim.store.addVM({ metadata: { name: 'i1', namespace: ns } });
  const informer = makeInformer<any>(
    kc,
    vmPath(ns),
    () =>
      api.listNamespacedCustomObject({
        group: 'kubevirt.io',
        version: 'v1',
        namespace: ns,
        plural: 'virtualmachines',
      }) as any,
  );
  const added: string[] = [];
  informer.on('add', (o: any) => added.push(o.metadata.name));
  await informer.start();
  await waitFor(() => added.includes('i1'));
  sim.store.addVM({ metadata: { name: 'i2', namespace: ns } });
  await waitFor(() => added.includes('i2'));
  expect(
    informer
      .list(ns)
      .map((o: any) => o.metadata.name)
      .sort(),
  ).toEqual(['i1', 'i2']);
  await informer.stop();
});
