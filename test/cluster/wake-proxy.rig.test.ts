import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { createVM, NS, rig, startVirtwake, vmPath, type Virtwake } from './helpers';

// The wake proxy on the rig: a request for a sleeping VM starts it through the aggregator,
// waits for the Service's EndpointSlice (written by the rig's EndpointSlice controller from
// the VMI's readiness) to have a ready endpoint, and forwards to it. The "guest" listens in
// the rig's network namespace, at the address the EndpointSlice names.

const { state, kube } = rig();
const VM = 'wake-erp';
const GUEST_PORT = 18080;
let guest: ChildProcess;
let proxy: Virtwake;

beforeAll(async () => {
  const code = `require('node:http').createServer((q, r) => r.end('guest ${VM} ' + q.url)).listen(${GUEST_PORT}, '${state.podIP}')`;
  guest = spawn('ip', ['netns', 'exec', state.netns, process.execPath, '-e', code], { stdio: 'ignore' });
  await createVM(kube, VM, 'Halted');
  await kube.request('POST', `/api/v1/namespaces/${NS}/services`, {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: VM, namespace: NS },
    spec: { selector: { 'kubevirt.io/vm': VM }, ports: [{ name: 'http', port: 8080, targetPort: GUEST_PORT }] },
  });
  const routes = path.join(state.dir, 'routes.json');
  writeFileSync(
    routes,
    JSON.stringify({ routes: [{ host: 'erp.rig.test', vm: { name: VM }, service: { name: VM, port: 'http' } }] }),
  );
  proxy = await startVirtwake(state, { VIRTWAKE_FUNCTIONS: 'wake-proxy', VIRTWAKE_PROXY_ROUTES: routes });
});
afterAll(async () => {
  await proxy?.stop();
  guest?.kill();
});

test('a request for a sleeping VM wakes it and is forwarded once its endpoint is ready', async () => {
  const res = await get(`${proxy.url}/hello`, 'erp.rig.test');
  expect(res.status).toBe(200);
  expect(res.body).toBe(`guest ${VM} /hello`);
  const vm = await kube.get(vmPath(VM));
  expect(vm.spec.runStrategy).toBe('Always');
  expect(vm.status.printableStatus).toBe('Running');
  const slices = await kube.request(
    'GET',
    `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3D${VM}`,
  );
  expect(slices.items[0].endpoints[0]).toMatchObject({ addresses: [state.podIP], conditions: { ready: true } });
});

/** A GET with its own Host header (fetch does not let a caller set Host). */
function get(url: string, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers: { Host: host } }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}
