import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import path from 'node:path';
import { startSimulator, type Simulator } from '../../simulator';
import { ensureBundle, kubeconfigFile, startProgram, type Program } from './program';

// The program that ships: `npm run build`, then node dist/virtwake.js as its own process,
// against the simulator over https with a CA and a bearer token, through a kubeconfig.
// The build swaps in precompiled validators, narrows packages and starts from a V8 code
// cache: none of that is seen by the tests that build the app in-process.

const OPT_IN = { 'virtwake.io/enabled': 'true' };
let sim: Simulator;

beforeAll(async () => {
  await ensureBundle();
  sim = await startSimulator({ tls: true, token: 'bundle-test-token' });
}, 180_000);
afterAll(() => sim?.close());

function env(extra: Record<string, string> = {}): Record<string, string> {
  return { KUBECONFIG: sim.kubeconfigPath, PORT: '0', VIRTWAKE_NAMESPACE: 'default', ...extra };
}

async function started(p: Program): Promise<string> {
  const line = await p.logLine('virtwake listening');
  return `http://127.0.0.1:${line.port}`;
}

function event(base: string, type: string, data: unknown): Promise<Response> {
  return fetch(base, {
    method: 'POST',
    headers: {
      'ce-specversion': '1.0',
      'ce-id': `bundle-${Math.random().toString(36).slice(2)}`,
      'ce-source': '/test/bundle',
      'ce-type': type,
      'content-type': 'application/json',
    },
    body: JSON.stringify(data),
  });
}

test('node dist/virtwake.js: ready, a start processed end to end, a schema-invalid command 400, SIGTERM exits 0', async () => {
  sim.store.addVM({ metadata: { name: 'shipped', labels: OPT_IN }, spec: { runStrategy: 'Halted' } });
  const p = startProgram(env());
  try {
    const base = await started(p);
    const ready = await fetch(`${base}/health/readiness`);
    expect([ready.status, await ready.text()]).toEqual([200, 'ready']);

    sim.resetCalls();
    const res = await event(base, 'io.virtwake.vm.start', { name: 'shipped' });
    expect(res.status).toBe(200);
    expect(res.headers.get('ce-type')).toMatch(/^io\.virtwake\.vm\.start\.(accepted|completed)$/);
    expect(await res.json()).toMatchObject({ namespace: 'default', name: 'shipped', action: 'start' });
    expect(sim.calls).toContainEqual(
      expect.objectContaining({
        method: 'PUT',
        path: '/apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachines/shipped/start',
      }),
    );

    const bad = await event(base, 'io.virtwake.vm.start', { name: 'shipped', bogus: true });
    expect(bad.status).toBe(400);
    expect(await bad.text()).toMatch(/bogus/);

    p.child.kill('SIGTERM');
    expect(await p.exited).toBe(0);
  } finally {
    p.child.kill('SIGKILL');
  }
});

test('the same bundle with VIRTWAKE_FUNCTIONS=wake-proxy wakes a stopped VM and returns its answer', async () => {
  const guest = http.createServer((req, res) => res.end(`hello from the guest: ${req.url}`));
  await new Promise<void>((r) => guest.listen(0, '127.0.0.1', r));
  const upstreamPort = (guest.address() as net.AddressInfo).port;
  sim.store.addVM({ metadata: { name: 'sleepy', labels: OPT_IN }, spec: { runStrategy: 'Halted' } });
  sim.store.addService('default', 'sleepy', { vmName: 'sleepy', port: 80, upstreamPort });
  const { dir } = kubeconfigFile('unused: true');
  const routes = path.join(dir, 'routes.yaml');
  fs.writeFileSync(
    routes,
    'routes:\n  - vm: {namespace: default, name: sleepy}\n    service: {name: sleepy, port: 80}\n',
  );
  const p = startProgram(env({ VIRTWAKE_FUNCTIONS: 'wake-proxy', VIRTWAKE_PROXY_ROUTES: routes }));
  try {
    const base = await started(p);
    // The proxy forwards every path; its own endpoints answer probes (the kubelet's user agent).
    const ready = await fetch(`${base}/health/readiness`, { headers: { 'user-agent': 'kube-probe/1.31' } });
    expect([ready.status, await ready.text()]).toEqual([200, 'ready']);
    expect(sim.store.getVM('default', 'sleepy')?.status?.printableStatus).toBe('Stopped');
    sim.resetCalls();
    const res = await fetch(`${base}/orders?id=7`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('hello from the guest: /orders?id=7');
    expect(sim.calls).toContainEqual(
      expect.objectContaining({
        method: 'PUT',
        path: '/apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachines/sleepy/start',
      }),
    );
    expect(sim.store.getVM('default', 'sleepy')?.status?.printableStatus).toBe('Running');
    p.child.kill('SIGTERM');
    expect(await p.exited).toBe(0);
  } finally {
    p.child.kill('SIGKILL');
    guest.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
