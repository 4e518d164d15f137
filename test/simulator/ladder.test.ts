// The simulator's side of the sleep ladder, over HTTP: pause and unpause with the
// kubevirt.io/virtual-machine-unpaused readiness gate lagging behind (the endpoint leaves
// after a pause and returns after an unpause), a frozen guest that answers nothing until
// it thaws, and the guest agent's userlist.
import http from 'node:http';
import { Watch } from '@kubernetes/client-node';
import { ManualClock } from '../../simulator';
import { request, startEnv, subresource, type TestEnv } from './helpers';

const clock = new ManualClock(new Date('2031-05-06T07:08:09Z'));
let env: TestEnv;
beforeAll(async () => {
  env = await startEnv({ clock });
});
afterAll(() => env.sim.close());

let seq = 0;
const fresh = (p: string) => `${p}-${++seq}`;
const USERLIST = (name: string) =>
  `/apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachineinstances/${name}/userlist`;

function runningVM(name: string, agent = false) {
  env.sim.store.addVM(
    { metadata: { name, namespace: 'default' }, spec: { runStrategy: 'Manual' } },
    { running: true, agentConnected: agent },
  );
}

/** Every state the VMI and the Service's endpoint pass through, in order, as "paused/ready endpoint". */
async function recordStates(name: string): Promise<{ states: string[]; stop(): void }> {
  const states: string[] = [];
  let paused = false;
  let ready = false;
  let endpoint = false;
  let seen = 0;
  const note = () => {
    if (seen !== 3) return;
    const s = `${paused ? 'paused' : 'running'}/${ready ? 'ready' : 'unready'} ${endpoint ? 'endpoint' : 'no-endpoint'}`;
    if (states.at(-1) !== s) states.push(s);
  };
  const w = new Watch(env.kc);
  const a = await w.watch(
    '/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstances',
    { fieldSelector: `metadata.name=${name}` },
    (_t, vmi: any) => {
      const c = (type: string) => vmi.status?.conditions?.some((x: any) => x.type === type && x.status === 'True');
      paused = !!c('Paused');
      ready = !!c('Ready');
      if (!(seen & 1)) seen += 1;
      note();
    },
    () => undefined,
  );
  const b = await w.watch(
    '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices',
    { labelSelector: `kubernetes.io/service-name=${name}` },
    (_t, slice: any) => {
      endpoint = !!slice.endpoints?.some((e: any) => e.conditions?.ready);
      if (!(seen & 2)) seen += 2;
      note();
    },
    () => undefined,
  );
  return { states, stop: () => (a.abort(), b.abort()) };
}

test('pause: Paused first, Ready and the endpoint leave after the readiness gate; unpause brings them back in that order', async () => {
  const { sim, kc } = env;
  const name = fresh('gate');
  runningVM(name);
  sim.store.addService('default', name, { vmName: name, port: 80, upstreamPort: 1 });
  sim.store.setReadinessGateDelay(40);
  try {
    await sim.settle();
    const rec = await recordStates(name);
    await sim.settle();
    expect((await subresource(kc, 'virtualmachineinstances', name, 'pause')).status).toBe(200);
    await sim.settle();
    expect(sim.store.getVM('default', name)!.status!.printableStatus).toBe('Paused');
    expect(sim.store.getEndpointSlice('default', name)!.endpoints[0].conditions!.ready).toBe(false);
    expect((await subresource(kc, 'virtualmachineinstances', name, 'unpause')).status).toBe(200);
    await sim.settle();
    await new Promise((r) => setTimeout(r, 50));
    rec.stop();
    expect(rec.states).toEqual([
      'running/ready endpoint',
      'paused/ready endpoint',
      'paused/unready endpoint',
      'paused/unready no-endpoint',
      'running/unready no-endpoint',
      'running/ready no-endpoint',
      'running/ready endpoint',
    ]);
    // While the gate lags an unpause the VM is Running but not ready, as KubeVirt shows it.
  } finally {
    sim.store.setReadinessGateDelay(0);
  }
});

test('without a gate delay, Paused and Ready change together (the default)', async () => {
  const { sim, kc } = env;
  const name = fresh('nogate');
  runningVM(name);
  sim.store.addService('default', name, { vmName: name, port: 80, upstreamPort: 1 });
  await sim.settle();
  const rec = await recordStates(name);
  await sim.settle();
  expect((await subresource(kc, 'virtualmachineinstances', name, 'pause')).status).toBe(200);
  await sim.settle();
  await new Promise((r) => setTimeout(r, 20));
  rec.stop();
  expect(rec.states).toEqual(['running/ready endpoint', 'paused/unready endpoint', 'paused/unready no-endpoint']);
});

test('a paused guest answers nothing until it is unpaused, then answers what it was sent', async () => {
  const { sim, kc } = env;
  const name = fresh('frozen');
  sim.store.addVM({ metadata: { name, namespace: 'default' }, spec: { runStrategy: 'Halted' } });
  await sim.store.addGuestService('default', name, { vmName: name, port: 80, guest: true });
  expect((await subresource(kc, 'virtualmachines', name, 'start')).status).toBe(202);
  await sim.settle();
  const port = sim.store.guestPort('default', name)!;
  expect((await subresource(kc, 'virtualmachineinstances', name, 'pause')).status).toBe(200);
  await sim.settle();
  let answered: string | undefined;
  const got = new Promise<string>((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/held', agent: false }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve((answered = body)));
      })
      .on('error', reject);
  });
  await new Promise((r) => setTimeout(r, 100));
  expect(answered).toBeUndefined();
  expect((await subresource(kc, 'virtualmachineinstances', name, 'unpause')).status).toBe(200);
  expect(await got).toContain('GET /held');
});

test('userlist: the users the guest agent reports; 409 without a running VMI or a connected agent', async () => {
  const { sim, kc } = env;
  const name = fresh('users');
  runningVM(name, true);
  await sim.settle();
  let res = await request(kc, 'GET', USERLIST(name));
  expect(res.status).toBe(200);
  expect(res.json.items).toEqual([]);
  sim.store.setGuestUsers('default', name, [{ userName: 'alice', domain: 'CORP', loginTime: 1_900_000_000.5 }]);
  res = await request(kc, 'GET', USERLIST(name));
  expect(res.json.items).toEqual([{ userName: 'alice', domain: 'CORP', loginTime: 1_900_000_000.5 }]);
  expect(sim.calls.at(-1)).toMatchObject({
    verb: 'get',
    group: 'subresources.kubevirt.io',
    resource: 'virtualmachineinstances',
    subresource: 'userlist',
  });

  const noAgent = fresh('users');
  runningVM(noAgent, false);
  await sim.settle();
  res = await request(kc, 'GET', USERLIST(noAgent));
  expect(res.status).toBe(409);
  expect(res.json.message).toContain('VMI does not have guest agent connected');

  const off = fresh('users');
  sim.store.addVM({ metadata: { name: off, namespace: 'default' }, spec: { runStrategy: 'Halted' } });
  expect((await request(kc, 'GET', USERLIST(off))).status).toBe(404);
  expect((await request(kc, 'PUT', USERLIST(name))).status).toBe(405);
});

test('out of process: guestUsers and readinessGateDelayMs through /_sim/, 400 for bad values', async () => {
  const { sim, kc } = env;
  const name = fresh('knob');
  runningVM(name, true);
  await sim.settle();
  const post = (path: string, body: unknown) =>
    fetch(`${sim.url}${path}`, { method: 'POST', body: JSON.stringify(body) }).then(async (r) => ({
      status: r.status,
      json: (await r.json()) as { error?: string },
    }));
  expect((await post(`/_sim/vms/default/${name}`, { guestUsers: [{ userName: 'bob' }] })).status).toBe(200);
  expect((await request(kc, 'GET', USERLIST(name))).json.items).toEqual([{ userName: 'bob' }]);
  expect((await post(`/_sim/vms/default/${name}`, { guestUsers: null })).status).toBe(200);
  expect((await request(kc, 'GET', USERLIST(name))).json.items).toEqual([]);
  const bad = await post(`/_sim/vms/default/${name}`, { guestUsers: [{ name: 'x' }] });
  expect(bad).toEqual({ status: 400, json: { error: expect.stringContaining('guestUsers must be') } });
  expect((await post('/_sim/settings', { readinessGateDelayMs: -1 })).json.error).toContain(
    'readinessGateDelayMs must be a non-negative number',
  );
  expect((await post('/_sim/settings', { readinessGateDelayMs: 0 })).status).toBe(200);
});
