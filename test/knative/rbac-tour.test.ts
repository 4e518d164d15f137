import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startHarness, Harness } from '../helpers/harness';
import { compareRoleWithCalls } from './rbac';
import { ENDPOINT_SLICE, RESTORE } from '../../simulator/resources';

// Least privilege, both ways: drive every function through its paths against
// the simulator, then compare the Role in knative/rbac.yaml with the API calls
// the simulator recorded. Nothing used may be missing (every harness checks
// that on close); here, additionally, nothing granted may go unused.

const ROLE = path.join(__dirname, '../../knative/rbac.yaml');
const OPT_IN = { 'virtwake.io/enabled': 'true' };
let h: Harness;
let upstream: http.Server;

beforeAll(async () => {
  h = await startHarness({ sim: { stepMs: 5, snapshotStepMs: 5 } });
  upstream = http.createServer((_req, res) => res.end('up'));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
});
afterAll(async () => {
  upstream.close();
  await h.close();
});

const vm = (
  name: string,
  runStrategy: string,
  running: boolean,
  annotations: Record<string, string> = {},
  vmiCreatedAt?: Date,
) =>
  h.sim.store.addVM(
    { metadata: { name, namespace: 'default', labels: OPT_IN, annotations }, spec: { runStrategy } },
    { running, vmiCreatedAt },
  );

test('the Role grants exactly what the functions use', async () => {
  const wait = { timeoutSeconds: 30 };
  vm('tour-a', 'Halted', false);
  await h.send('io.virtwake.vm.start', { name: 'tour-a', wait }).expect(200);
  await h.send('io.virtwake.vm.pause', { name: 'tour-a', wait }).expect(200);
  await h.send('io.virtwake.vm.unpause', { name: 'tour-a', wait }).expect(200);
  await h.send('io.virtwake.vm.restart', { name: 'tour-a', wait }).expect(200);
  await h.send('io.virtwake.vm.activity', { name: 'tour-a' }).expect(200);
  await h.send('io.virtwake.vm.snapshot', { name: 'tour-a', snapshotName: 'tour-a-1', wait }).expect(200);
  await h.send('io.virtwake.vm.snapshot', { name: 'tour-a', keep: 1, wait }).expect(200);
  await h.send('io.virtwake.vm.stop', { name: 'tour-a', wait }).expect(200);
  const snaps = h.sim.store.listSnapshots('default').map((s: { metadata: { name: string } }) => s.metadata.name);
  await h
    .send('io.virtwake.vm.restore', { name: 'tour-a', snapshotName: snaps[0], startAfter: true, wait })
    .expect(200);

  // A Manual VM whose guest powered off keeps a final VMI: restore with stopFirst deletes it.
  vm('tour-m', 'Manual', true);
  await h.send('io.virtwake.vm.snapshot', { name: 'tour-m', snapshotName: 'tour-m-1', wait }).expect(200);
  h.sim.store.setVMIPhase('default', 'tour-m', 'Succeeded');
  h.sim.store.reconcile('default', 'tour-m');
  await h.sim.settle();
  const cleared = await h
    .send('io.virtwake.vm.restore', { name: 'tour-m', snapshotName: 'tour-m-1', stopFirst: true, wait })
    .expect(200);
  expect(JSON.parse(cleared.text).outcome).toBe('completed');
  // A failed restore virtwake made blocks the next one until virtwake deletes it.
  await h.send('io.virtwake.vm.start', { name: 'tour-m', wait }).expect(200);
  h.sim.store.raw.create(RESTORE, {
    apiVersion: 'snapshot.kubevirt.io/v1beta1',
    kind: 'VirtualMachineRestore',
    metadata: { name: 'tour-m-failed', namespace: 'default', labels: { 'app.kubernetes.io/managed-by': 'virtwake' } },
    spec: {
      target: { apiGroup: 'kubevirt.io', kind: 'VirtualMachine', name: 'tour-m' },
      virtualMachineSnapshotName: 'tour-m-1',
      targetReadinessPolicy: 'FailImmediate',
    },
  });
  await h.sim.settle();
  await h.send('io.virtwake.vm.stop', { name: 'tour-m', wait }).expect(200);
  const after = await h
    .send('io.virtwake.vm.restore', { name: 'tour-m', snapshotName: 'tour-m-1', wait }, { id: 'tour-m-again' })
    .expect(200);
  expect(JSON.parse(after.text).outcome).toBe('completed');
  expect(h.sim.store.getRestore('default', 'tour-m-failed')).toBeUndefined();

  // Enough idle VMs that the reaper reads VMI start times page by page rather than one by one.
  for (const n of ['tour-idle-1', 'tour-idle-2', 'tour-idle-3'])
    vm(n, 'Always', true, { 'virtwake.io/idle-timeout': '1m' }, new Date(Date.now() - 3_600_000));
  await h
    .send(
      'dev.knative.sources.ping',
      { action: 'reap' },
      { source: '/apis/v1/namespaces/virtwake/pingsources/virtwake-reaper' },
    )
    .expect(200);

  vm('tour-web', 'Halted', false);
  h.sim.store.addService('default', 'tour-web', {
    vmName: 'tour-web',
    port: 80,
    upstreamPort: (upstream.address() as net.AddressInfo).port,
  });
  const routes = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'virtwake-tour-')), 'routes.json');
  fs.writeFileSync(
    routes,
    JSON.stringify({
      routes: [
        {
          host: 'web.example',
          vm: { namespace: 'default', name: 'tour-web' },
          service: { name: 'tour-web', port: 80 },
        },
      ],
    }),
  );
  const proxy = await h.replica({ VIRTWAKE_FUNCTIONS: 'wake-proxy', VIRTWAKE_PROXY_ROUTES: routes });
  const status = await new Promise<number>((resolve, reject) => {
    const { port } = proxy.server.address() as net.AddressInfo;
    http
      .get({ host: '127.0.0.1', port, path: '/', headers: { host: 'web.example' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
      .on('error', reject);
  });
  expect(status).toBe(200);

  // A running VM whose Service endpoint lags behind: the proxy watches the EndpointSlice.
  vm('tour-lag', 'Always', true);
  h.sim.store.addService('default', 'tour-lag', {
    vmName: 'tour-lag',
    port: 80,
    upstreamPort: (upstream.address() as net.AddressInfo).port,
  });
  // The simulator updates endpoints in the same step as the VM; write the lag in by hand.
  const slice = h.sim.store.getEndpointSlice('default', 'tour-lag') as any;
  const readyAgain = JSON.parse(JSON.stringify(slice));
  for (const e of slice.endpoints) e.conditions = { ready: false, serving: false, terminating: false };
  h.sim.store.raw.update(ENDPOINT_SLICE, slice);
  fs.writeFileSync(
    routes,
    JSON.stringify({
      routes: [
        {
          host: 'lag.example',
          vm: { namespace: 'default', name: 'tour-lag' },
          service: { name: 'tour-lag', port: 80 },
        },
      ],
    }),
  );
  const lagProxy = await h.replica({ VIRTWAKE_FUNCTIONS: 'wake-proxy', VIRTWAKE_PROXY_ROUTES: routes });
  const lagged = new Promise<number>((resolve, reject) => {
    const { port } = lagProxy.server.address() as net.AddressInfo;
    http
      .get({ host: '127.0.0.1', port, path: '/', headers: { host: 'lag.example' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
      .on('error', reject);
  });
  await new Promise((r) => setTimeout(r, 200));
  delete readyAgain.metadata.resourceVersion;
  h.sim.store.raw.update(ENDPOINT_SLICE, readyAgain);
  expect(await lagged).toBe(200);

  await h.sim.settle();
  const { missing, unused } = compareRoleWithCalls(
    ROLE,
    h.sim.calls.filter((c) => c.status !== 401),
  );
  expect({ missing, unused }).toEqual({ missing: [], unused: [] });
});
