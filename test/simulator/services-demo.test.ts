// Services/EndpointSlices that follow a VM's readiness (with a real loopback upstream),
// the demo seed, and the CLI.
import { spawn } from 'node:child_process';
import http from 'node:http';
import { once } from 'node:events';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { DEMO_VM_NAMES, seedDemo } from '../../simulator';
import { request, startEnv, subresource, type TestEnv } from './helpers';

let env: TestEnv;
beforeAll(async () => {
  env = await startEnv();
});
afterAll(() => env.sim.close());

test('an EndpointSlice is ready only while its VM is Running and ready; the address reaches a loopback upstream', async () => {
  const { sim, kc } = env;
  const upstream = http.createServer((_req, res) => res.end('hello from the guest'));
  upstream.listen(0, '127.0.0.1');
  await once(upstream, 'listening');
  const upstreamPort = (upstream.address() as { port: number }).port;
  try {
    sim.store.addVM({ metadata: { name: 'web' }, spec: { runStrategy: 'Halted' } });
    sim.store.addService('default', 'web', { vmName: 'web', port: 80, upstreamPort });
    const svc = await request(kc, 'GET', '/api/v1/namespaces/default/services/web');
    expect(svc.json).toMatchObject({
      kind: 'Service',
      apiVersion: 'v1',
      spec: { selector: { 'kubevirt.io/vm': 'web' }, ports: [{ port: 80, targetPort: upstreamPort }] },
    });
    const slices = async () =>
      (
        await request(
          kc,
          'GET',
          `/apis/discovery.k8s.io/v1/namespaces/default/endpointslices?labelSelector=${encodeURIComponent('kubernetes.io/service-name=web')}`,
        )
      ).json;
    const stopped = await slices();
    expect(stopped.kind).toBe('EndpointSliceList');
    expect(stopped.items).toHaveLength(1);
    expect(stopped.items[0]).toMatchObject({ addressType: 'IPv4', ports: [{ port: upstreamPort }], endpoints: [] });

    await subresource(kc, 'virtualmachines', 'web', 'start');
    await sim.settle();
    const running = (await slices()).items[0];
    expect(running.endpoints).toEqual([
      expect.objectContaining({
        addresses: ['127.0.0.1'],
        conditions: { ready: true, serving: true, terminating: false },
      }),
    ]);
    const body = await new Promise<string>((resolve, reject) => {
      http
        .get(`http://${running.endpoints[0].addresses[0]}:${running.ports[0].port}/`, (res) => {
          let t = '';
          res.on('data', (c) => (t += c));
          res.on('end', () => resolve(t));
        })
        .on('error', reject);
    });
    expect(body).toBe('hello from the guest');

    await subresource(kc, 'virtualmachineinstances', 'web', 'pause');
    await sim.settle();
    expect(sim.store.getEndpointSlice('default', 'web')!.endpoints[0].conditions.ready).toBe(false);
    await subresource(kc, 'virtualmachines', 'web', 'stop');
    await sim.settle();
    expect(sim.store.getEndpointSlice('default', 'web')!.endpoints).toEqual([]);
  } finally {
    upstream.close();
  }
});

test('seedDemo creates the demo VMs in their documented states', async () => {
  const { sim } = env;
  seedDemo(sim.store);
  await sim.settle();
  const vms = Object.fromEntries(
    sim.store
      .listVMs('default')
      .filter((v) => DEMO_VM_NAMES.includes(v.metadata.name))
      .map((v) => [v.metadata.name, v]),
  );
  expect(Object.keys(vms).sort()).toEqual([...DEMO_VM_NAMES].sort());
  const state = (n: string) => [
    vms[n].spec.runStrategy,
    vms[n].status!.printableStatus,
    vms[n].metadata.labels?.['virtwake.io/enabled'],
  ];
  expect(state('legacy-erp')).toEqual(['Halted', 'Stopped', 'true']);
  expect(state('build-runner')).toEqual(['Manual', 'Stopped', 'true']);
  expect(state('always-on')).toEqual(['Always', 'Running', 'true']);
  expect(state('batch-once')).toEqual(['Once', 'Running', 'true']);
  expect(state('flaky-app')).toEqual(['RerunOnFailure', 'Stopped', 'true']);
  expect(state('reporting')).toEqual(['Halted', 'Stopped', 'true']);
  expect(vms.reporting.metadata.annotations!['virtwake.io/idle-timeout']).toBe('30m');
  expect(state('unmanaged')[2]).toBeUndefined();
});

test('CLI: starts with --demo, prints URL and kubeconfig, serves the demo VMs', async () => {
  const child = spawn(
    process.execPath,
    [
      join(__dirname, '../../node_modules/tsx/dist/cli.mjs'),
      join(__dirname, '../../simulator/main.ts'),
      '--port',
      '0',
      '--demo',
      '--token',
      't0k',
    ],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  try {
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    const deadline = Date.now() + 15_000;
    while (!/kubeconfig: (\S+)/.test(out)) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`CLI did not start: ${out}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(out).toMatch(/listening on http:\/\/127\.0\.0\.1:\d+/);
    const kc = new KubeConfig();
    kc.loadFromFile(/kubeconfig: (\S+)/.exec(out)![1]);
    const list = await request(
      kc,
      'GET',
      '/apis/kubevirt.io/v1/namespaces/default/virtualmachines?labelSelector=virtwake.io%2Fenabled%3Dtrue',
    );
    expect(list.json.items.map((i: any) => i.metadata.name)).toEqual([
      'always-on',
      'batch-once',
      'build-runner',
      'flaky-app',
      'legacy-erp',
      'reporting',
    ]);
  } finally {
    child.kill('SIGTERM');
    await once(child, 'exit');
  }
});
