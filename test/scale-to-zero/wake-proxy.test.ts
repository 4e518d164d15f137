import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ManualClock } from '../../simulator';
import { LAST_ACTIVITY } from '../../functions/runtime/activity';
import type { App } from '../../functions/app';
import { startHarness, type Harness } from '../helpers/harness';

// The wake proxy as a real HTTP server in front of a real loopback upstream,
// with the simulator's VM, Service and EndpointSlice deciding when it is up.

const OPT_IN = { 'virtwake.io/enabled': 'true' };
const clock = new ManualClock(new Date('2030-03-01T12:00:00Z'));
let h: Harness;
let upstream: http.Server;
let upstreamPort: number;
const seen: http.IncomingHttpHeaders[] = [];

/** The "guest": answers GETs, echoes POST bodies as they stream, echoes bytes after an upgrade. */
function startUpstream(): Promise<void> {
  upstream = http.createServer((req, res) => {
    seen.push(req.headers);
    if (req.method === 'POST') {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-upstream': 'yes' });
      req.pipe(res);
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain', 'x-upstream': 'yes' });
    res.end(`hello from the VM: ${req.url}`);
  });
  upstream.on('upgrade', (_req, socket: net.Socket, head: Buffer) => {
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
    if (head.length) socket.write(head);
    socket.pipe(socket);
  });
  return new Promise((resolve) =>
    upstream.listen(0, '127.0.0.1', () => {
      upstreamPort = (upstream.address() as net.AddressInfo).port;
      resolve();
    }),
  );
}

function routesFile(routes: unknown[]): string {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'virtwake-routes-')), 'routes.json');
  fs.writeFileSync(file, JSON.stringify({ routes }));
  return file;
}

const route = (host: string, vm: string) => ({
  host,
  vm: { namespace: 'default', name: vm },
  service: { name: vm, port: 80 },
});

async function proxy(env: Record<string, string>, routes: unknown[]): Promise<App> {
  return h.replica({ VIRTWAKE_FUNCTIONS: 'wake-proxy', VIRTWAKE_PROXY_ROUTES: routesFile(routes), ...env });
}

function addVM(name: string, labels: Record<string, string> = OPT_IN, port = upstreamPort) {
  h.sim.store.addVM(
    { metadata: { name, namespace: 'default', labels }, spec: { runStrategy: 'Halted' } },
    { running: false },
  );
  h.sim.store.addService('default', name, { vmName: name, port: 80, upstreamPort: port });
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });

function get(
  app: App,
  host: string,
  urlPath = '/',
  headers: Record<string, string> = {},
  body?: Buffer,
): Promise<Answer> {
  const { port } = app.server.address() as net.AddressInfo;
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, path: urlPath, method: body ? 'POST' : 'GET', headers: { host, ...headers }, agent },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        );
      },
    );
    req.on('error', reject);
    if (body) {
      // Streamed in pieces, as a client uploading would.
      let off = 0;
      const pump = () => {
        while (off < body.length) {
          const piece = body.subarray(off, (off += 64 * 1024));
          if (!req.write(piece)) return void req.once('drain', pump);
        }
        req.end();
      };
      pump();
    } else {
      req.end();
    }
  });
}

const starts = (vm: string) => h.sim.calls.filter((c) => c.subresource === 'start' && c.name === vm);

beforeAll(async () => {
  await startUpstream();
  h = await startHarness({ sim: { clock, stepMs: 5 }, now: () => clock.now() });
});
afterAll(async () => {
  await h?.close();
  agent.destroy();
  await new Promise((r) => upstream.close(r));
});

test('100 concurrent requests to a stopped VM: one start, all get the upstream answer once it is ready', async () => {
  addVM('web');
  const p = await proxy({}, [route('web.example', 'web')]);
  h.sim.resetCalls();
  const answers = await Promise.all(Array.from({ length: 100 }, (_, i) => get(p, 'web.example', `/page/${i}`)));
  for (const [i, a] of answers.entries()) {
    expect(a.status).toBe(200);
    expect(a.body.toString()).toBe(`hello from the VM: /page/${i}`);
    expect(a.headers['x-upstream']).toBe('yes');
  }
  expect(starts('web')).toHaveLength(1);
  expect(h.sim.store.getVM('default', 'web')!.status?.printableStatus).toBe('Running');
  // Every request is activity, written once a minute at most.
  expect(h.sim.store.getVM('default', 'web')!.metadata.annotations?.[LAST_ACTIVITY]).toBe('2030-03-01T12:00:00Z');
  expect(h.sim.calls.filter((c) => c.method === 'PATCH' && c.name === 'web')).toHaveLength(1);
  // The upstream sees the client's Host and who forwarded it.
  expect(seen.at(-1)).toMatchObject({
    host: 'web.example',
    'x-forwarded-host': 'web.example',
    'x-forwarded-proto': 'http',
  });

  // Up and known: the next requests go straight through, with no API call at all.
  h.sim.resetCalls();
  const again = await Promise.all(Array.from({ length: 20 }, () => get(p, 'web.example', '/again')));
  expect(again.every((a) => a.status === 200)).toBe(true);
  expect(h.sim.calls).toEqual([]);
});

test('streaming bodies and websocket upgrades pass through once the VM is up', async () => {
  addVM('files');
  const p = await proxy({}, [route('files.example', 'files')]);
  const upload = Buffer.alloc(8 * 1024 * 1024);
  for (let i = 0; i < upload.length; i += 4) upload.writeUInt32LE((i * 2654435761) >>> 0, i);
  const echoed = await get(p, 'files.example', '/upload', { 'content-type': 'application/octet-stream' }, upload);
  expect(echoed.status).toBe(200);
  expect(echoed.body.length).toBe(upload.length);
  expect(createHash('sha256').update(echoed.body).digest('hex')).toBe(
    createHash('sha256').update(upload).digest('hex'),
  );

  const { port } = p.server.address() as net.AddressInfo;
  const reply = await new Promise<string>((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1',
      port,
      path: '/ws',
      headers: { host: 'files.example', connection: 'Upgrade', upgrade: 'websocket' },
      agent,
    });
    req.on('upgrade', (res, socket) => {
      expect(res.statusCode).toBe(101);
      socket.write('ping over the tunnel');
      socket.once('data', (d: Buffer) => {
        socket.destroy();
        resolve(d.toString());
      });
    });
    req.on('response', (res) => reject(new Error(`no upgrade: ${res.statusCode}`)));
    req.on('error', reject);
    req.end();
  });
  expect(reply).toBe('ping over the tunnel');
});

test('a full queue is answered 503 with Retry-After at once; the queued requests are served when the VM is up', async () => {
  addVM('busy');
  const p = await proxy({ VIRTWAKE_PROXY_QUEUE_SIZE: '5', VIRTWAKE_PROXY_RETRY_AFTER: '7' }, [
    route('busy.example', 'busy'),
  ]);
  h.sim.pauseControllers();
  const pending = Array.from({ length: 8 }, () => get(p, 'busy.example', '/'));
  const settled: Answer[] = [];
  pending.forEach((a) => a.then((x) => settled.push(x)));
  // The three that found no place are answered while the VM is still held down.
  for (let i = 0; i < 200 && settled.length < 3; i++) await new Promise((r) => setTimeout(r, 10));
  expect(settled.map((a) => a.status)).toEqual([503, 503, 503]);
  for (const a of settled) {
    expect(a.headers['retry-after']).toBe('7');
    expect(a.body.toString()).toMatch(/VM default\/busy is waking up and 5 requests are already waiting for it/);
  }
  h.sim.resumeControllers();
  const all = await Promise.all(pending);
  expect(all.filter((a) => a.status === 200)).toHaveLength(5);
  expect(starts('busy')).toHaveLength(1);
});

test('a wake past its timeout is answered 503 with Retry-After', async () => {
  addVM('stuck');
  const p = await proxy({ VIRTWAKE_PROXY_WAKE_TIMEOUT: '300ms', VIRTWAKE_PROXY_RETRY_AFTER: '15' }, [
    route('stuck.example', 'stuck'),
  ]);
  h.sim.pauseControllers();
  try {
    const [a, b] = await Promise.all([get(p, 'stuck.example', '/'), get(p, 'stuck.example', '/x')]);
    for (const x of [a, b]) {
      expect(x.status).toBe(503);
      expect(x.headers['retry-after']).toBe('15');
      expect(x.body.toString()).toMatch(
        /VM default\/stuck did not come up to run within 0.3s \(VIRTWAKE_PROXY_WAKE_TIMEOUT\)/,
      );
    }
    expect(starts('stuck')).toHaveLength(1);
  } finally {
    h.sim.resumeControllers();
  }
  // The VM kept booting: a retry finds it up without a second start.
  const later = await get(p, 'stuck.example', '/later');
  expect([later.status, later.body.toString()]).toEqual([200, 'hello from the VM: /later']);
  expect(starts('stuck')).toHaveLength(1);
});

test("policy, unknown routes and the proxy's own endpoints", async () => {
  addVM('private', { app: 'private' });
  const p = await proxy({}, [
    route('private.example', 'private'),
    { pathPrefix: '/web', vm: { name: 'web' }, service: { name: 'web', port: 80 } },
  ]);
  const denied = await get(p, 'private.example', '/');
  expect(denied.status).toBe(403);
  expect(denied.body.toString()).toMatch(/label virtwake.io\/enabled=true is missing/);
  expect(starts('private')).toHaveLength(0);

  const lost = await get(p, 'elsewhere.example', '/nothing');
  expect(lost.status).toBe(404);
  expect(lost.body.toString()).toMatch(/no virtwake route for host elsewhere.example/);

  // Probes reach the proxy itself; the same path from a client goes to the VM.
  expect((await get(p, 'elsewhere.example', '/health/readiness')).body.toString()).toBe('ready');
  expect((await get(p, 'x', '/web/health/readiness', { 'user-agent': 'kube-probe/1.31' })).status).toBe(200);
  expect((await get(p, 'x', '/web/health/readiness')).body.toString()).toBe('hello from the VM: /web/health/readiness');
});

// Issue 13 (H2): a held request is never answered 502; refusals are retried until the wake timeout, then 503.
test('an upstream that refuses the connection is looked up again and retried, then answered 503 with Retry-After', async () => {
  const closed = http.createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const deadPort = (closed.address() as net.AddressInfo).port;
  await new Promise((r) => closed.close(r));
  addVM('deaf', OPT_IN, deadPort);
  const p = await proxy({ VIRTWAKE_PROXY_WAKE_TIMEOUT: '1s' }, [route('deaf.example', 'deaf')]);
  h.sim.resetCalls();
  const a = await get(p, 'deaf.example', '/');
  expect(a.status).toBe(503);
  expect(a.headers['retry-after']).toBeDefined();
  expect(a.body.toString()).toMatch(/did not accept a connection within 1s/);
  expect(starts('deaf')).toHaveLength(1);
  // Looked up again after refusals (without starting again): more than one read of the VM's endpoints.
  expect(h.sim.calls.filter((c) => c.resource === 'endpointslices' && c.verb === 'list').length).toBeGreaterThanOrEqual(
    2,
  );
});

// Found on the rig (a Role without watch): a refused watch is no broken stream to retry until the wake timeout.
test('a refused watch of the endpoints is answered at once with 503 naming the grant, and readiness names it', async () => {
  addVM('nowatch');
  const p = await proxy({ VIRTWAKE_PROXY_WAKE_TIMEOUT: '60s', VIRTWAKE_PROXY_RETRY_AFTER: '7' }, [
    route('nowatch.example', 'nowatch'),
  ]);
  h.sim.rbac.deny({ verb: 'watch', group: 'discovery.k8s.io', resource: 'endpointslices', namespace: 'default' });
  h.sim.pauseControllers();
  try {
    // Answered before the jest timeout, though the wake timeout is 60 s.
    const a = await get(p, 'nowatch.example', '/');
    expect(a.status).toBe(503);
    expect(a.headers['retry-after']).toBe('7');
    expect(a.body.toString()).toContain(
      `cannot wait for VM default/nowatch to come up: the API server refuses virtwake's watch of endpointslices in default (its Role must allow it): endpointslices.discovery.k8s.io is forbidden: User "system:serviceaccount:default:virtwake" cannot watch resource "endpointslices" in API group "discovery.k8s.io" in the namespace "default"`,
    );
    expect(starts('nowatch')).toHaveLength(1);
    const ready = await get(p, 'elsewhere.example', '/health/readiness');
    expect(ready.status).toBe(200);
    expect(ready.body.toString()).toMatch(/^ready, but waits fail: .*cannot watch resource "endpointslices"/);
  } finally {
    h.sim.rbac.clear();
    h.sim.resumeControllers();
  }
  // The start was taken: once the VM is up, a request finds it by reading, without a second start.
  await h.sim.settle();
  const later = await get(p, 'nowatch.example', '/later');
  expect([later.status, later.body.toString()]).toEqual([200, 'hello from the VM: /later']);
  expect(starts('nowatch')).toHaveLength(1);
});

test('a refused read of the VM is answered 502 with the API server message', async () => {
  addVM('noget');
  const p = await proxy({}, [route('noget.example', 'noget')]);
  h.sim.rbac.deny({ verb: 'get', group: 'kubevirt.io', resource: 'virtualmachines', namespace: 'default' });
  try {
    const a = await get(p, 'noget.example', '/');
    expect(a.status).toBe(502);
    expect(a.body.toString()).toContain(
      `cannot wake VM default/noget: the API server answered 403: virtualmachines.kubevirt.io "noget" is forbidden: User "system:serviceaccount:default:virtwake" cannot get resource "virtualmachines"`,
    );
    expect(starts('noget')).toHaveLength(0);
  } finally {
    h.sim.rbac.clear();
  }
});

describe('routing on what the upstream will see', () => {
  let p: App;
  beforeAll(async () => {
    for (const vm of ['rt-erp', 'rt-abs', 'rt-reports', 'rt-any']) addVM(vm);
    p = await proxy({}, [
      route('erp.example', 'rt-erp'),
      route('abs.example', 'rt-abs'),
      { pathPrefix: '/reports', vm: { name: 'rt-reports' }, service: { name: 'rt-reports', port: 80 } },
      { vm: { name: 'rt-any' }, service: { name: 'rt-any', port: 80 } },
    ]);
  });

  test("the proxy's own /metrics and health through a catch-all route never wake a VM", async () => {
    h.sim.resetCalls();
    const scrape = await get(p, '10.1.2.3:8080', '/metrics');
    expect(scrape.status).toBe(200);
    expect(scrape.body.toString()).toMatch(/virtwake_proxy_wake_duration_seconds/);
    expect((await get(p, '10.1.2.3:8080', '/health/readiness')).body.toString()).toBe('ready');
    expect((await get(p, '10.1.2.3:8080', '/x/../health/liveness')).body.toString()).toBe('ok');
    expect((await get(p, 'x', '/metrics', {}, Buffer.from('no'))).status).toBe(405);
    expect(h.sim.calls).toEqual([]);
    // Under a host route the path is the VM's own.
    expect((await get(p, 'erp.example', '/metrics')).body.toString()).toBe('hello from the VM: /metrics');
  });

  test('dot segments are resolved before routing: /reports/../admin is not under /reports', async () => {
    h.sim.resetCalls();
    for (const sent of ['/reports/../admin', '/reports/%2e%2E/admin', '/reports/./../admin']) {
      const a = await get(p, 'other.example', sent);
      expect([a.status, a.body.toString()]).toEqual([200, 'hello from the VM: /admin']);
    }
    expect(starts('rt-any')).toHaveLength(1);
    expect(starts('rt-reports')).toHaveLength(0);
    expect((await get(p, 'other.example', '/x/../reports/q')).body.toString()).toBe('hello from the VM: /reports/q');
    expect(starts('rt-reports')).toHaveLength(1);
  });

  test('an absolute-form target is routed by its authority, not by Host', async () => {
    h.sim.resetCalls();
    const a = await get(p, 'erp.example', 'http://abs.example/ledger?y=2026');
    expect([a.status, a.body.toString()]).toEqual([200, 'hello from the VM: /ledger?y=2026']);
    expect(starts('rt-abs')).toHaveLength(1);
    expect(starts('rt-erp')).toHaveLength(0);
    expect(seen.at(-1)).toMatchObject({ host: 'abs.example', 'x-forwarded-host': 'abs.example' });
  });

  test('a trailing-dot host is the host', async () => {
    const a = await get(p, 'ERP.example.:8443', '/dot');
    expect(a.body.toString()).toBe('hello from the VM: /dot');
    expect(seen.at(-1)).toMatchObject({ host: 'ERP.example.:8443' });
    const b = await get(p, 'erp.example.', '/reports/r');
    expect(b.body.toString()).toBe('hello from the VM: /reports/r');
    expect(starts('rt-erp').length + starts('rt-reports').length).toBeLessThanOrEqual(2);
  });

  test('behind a Knative DomainMapping the host route matches K-Original-Host, and the VM sees that host', async () => {
    const a = await get(p, 'virtwake-wake-proxy.virtwake.svc.cluster.local', '/mapped', {
      'k-original-host': 'erp.example',
    });
    expect(a.body.toString()).toBe('hello from the VM: /mapped');
    expect(seen.at(-1)).toMatchObject({ host: 'erp.example', 'x-forwarded-host': 'erp.example' });
    // Without it, the ksvc host routes by path as before.
    const b = await get(p, 'virtwake-wake-proxy.virtwake.svc.cluster.local', '/reports/1');
    expect(b.body.toString()).toBe('hello from the VM: /reports/1');
  });
});

test('an open websocket keeps stamping its VM awake while it lasts, and stops when it closes', async () => {
  addVM('ws-awake');
  const p = await proxy({ VIRTWAKE_PROXY_ACTIVITY_INTERVAL: '20ms' }, [route('ws.example', 'ws-awake')]);
  const { port } = p.server.address() as net.AddressInfo;
  const tunnel = await new Promise<net.Socket>((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1',
      port,
      path: '/ws',
      headers: { host: 'ws.example', connection: 'Upgrade', upgrade: 'websocket' },
      agent,
    });
    req.on('upgrade', (_res, socket: net.Socket) => resolve(socket));
    req.on('error', reject);
    req.end();
  });
  const stamp = () => h.sim.store.getVM('default', 'ws-awake')?.metadata.annotations?.[LAST_ACTIVITY];
  const until = async (what: string, cond: () => boolean) => {
    for (let i = 0; i < 1000 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
    if (!cond()) throw new Error(`never happened: ${what}`);
  };
  for (let i = 0; i < 2; i++) {
    clock.advance(11 * 60_000);
    const now = clock.now().toISOString().replace('.000Z', 'Z');
    await until(`stamped at ${now}`, () => stamp() === now);
  }
  tunnel.destroy();
  // Once the proxy has seen the close, time passing writes no more stamps (a 20 ms beat would otherwise).
  let quiet = false;
  for (let i = 0; i < 20 && !quiet; i++) {
    const before = stamp();
    clock.advance(11 * 60_000);
    await new Promise((r) => setTimeout(r, 100));
    quiet = stamp() === before;
  }
  expect(quiet).toBe(true);
});
