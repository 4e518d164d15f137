import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { App } from '../../functions/app';
import type { WakeQueue } from '../../functions/wake-proxy/queue';
import { startHarness, type Harness } from '../helpers/harness';

// Issue 12 §3, §4 and §8 for the wake proxy: requests nobody waits for any more
// are dropped (never forwarded, their upstream requests aborted), so they cannot
// fill the upstream socket pool or hold up a shutdown; a wake is answered by its
// configured timeout with the configured Retry-After whatever the API does; and a
// proxy that shuts down says so. Upstream sockets are counted on the upstream server.

const OPT_IN = { 'virtwake.io/enabled': 'true' };
let h: Harness;
let upstream: http.Server;
let upstreamPort: number;
const open = new Set<net.Socket>();

beforeAll(async () => {
  upstream = http.createServer((req, res) => {
    // /hang: a guest that never answers.
    if (req.url === '/hang') return;
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`hello from the VM: ${req.url}`);
  });
  upstream.on('connection', (s: net.Socket) => {
    open.add(s);
    s.once('close', () => open.delete(s));
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  upstreamPort = (upstream.address() as net.AddressInfo).port;
  h = await startHarness({ sim: { stepMs: 5 } });
});
afterAll(async () => {
  await h?.close();
  upstream.closeAllConnections();
  await new Promise((r) => upstream.close(r));
});

let n = 0;
function addVM(running: boolean): string {
  const name = `ab-${++n}`;
  h.sim.store.addVM(
    { metadata: { name, namespace: 'default', labels: OPT_IN }, spec: { runStrategy: running ? 'Always' : 'Halted' } },
    { running },
  );
  h.sim.store.addService('default', name, { vmName: name, port: 80, upstreamPort });
  return name;
}

async function proxy(vm: string, env: Record<string, string> = {}): Promise<App & { queue: WakeQueue }> {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'virtwake-routes-')), 'routes.json');
  fs.writeFileSync(
    file,
    JSON.stringify({ routes: [{ host: `${vm}.example`, vm: { name: vm }, service: { name: vm, port: 80 } }] }),
  );
  return (await h.replica({ VIRTWAKE_FUNCTIONS: 'wake-proxy', VIRTWAKE_PROXY_ROUTES: file, ...env })) as App & {
    queue: WakeQueue;
  };
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A request whose client can give up (`abandon`) before its answer. */
function send(app: App, host: string, urlPath = '/'): { answer: Promise<Answer>; abandon(): void } {
  const { port } = app.server.address() as net.AddressInfo;
  const agent = new http.Agent({ keepAlive: false });
  const req = http.request({ host: '127.0.0.1', port, path: urlPath, headers: { host }, agent });
  const answer = new Promise<Answer>((resolve, reject) => {
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
  });
  answer.catch(() => {});
  req.end();
  return { answer, abandon: () => req.destroy() };
}

const until = async (what: () => boolean, ms = 20_000) => {
  const end = Date.now() + ms;
  while (!what()) {
    if (Date.now() > end) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 20));
  }
};

test('300 requests abandoned while their VM wakes: none forwarded, no upstream socket, the next one served at once', async () => {
  const vm = addVM(false);
  const p = await proxy(vm, { VIRTWAKE_PROXY_QUEUE_SIZE: '1000' });
  h.sim.pauseControllers();
  const held = Array.from({ length: 300 }, () => send(p, `${vm}.example`, '/held'));
  await until(() => p.queue.size(`default/${vm}`) === 300);
  for (const r of held) r.abandon();
  // Let go of at once: no place in the queue, nothing in flight, though the wake goes on.
  await until(() => p.queue.size(`default/${vm}`) === 0 && p.inFlight() === 0);
  const before = open.size;
  h.sim.resumeControllers();
  const begun = Date.now();
  const next = await send(p, `${vm}.example`, '/next').answer;
  expect([next.status, next.body]).toEqual([200, 'hello from the VM: /next']);
  expect(Date.now() - begun).toBeLessThan(10_000);
  // Only the served request reached the upstream (one keep-alive socket at most).
  expect(open.size - before).toBeLessThanOrEqual(1);
}, 60_000);

test('300 abandoned requests to a running VM whose guest never answers: every upstream socket closed, the next served', async () => {
  const vm = addVM(true);
  const p = await proxy(vm);
  const before = open.size;
  const hung = Array.from({ length: 300 }, () => send(p, `${vm}.example`, '/hang'));
  // 256 sockets (the pool's limit) reach the guest; the rest wait in the pool.
  await until(() => open.size - before >= 256);
  for (const r of hung) r.abandon();
  await until(() => open.size <= before && p.inFlight() === 0);
  const next = await send(p, `${vm}.example`, '/next').answer;
  expect([next.status, next.body]).toEqual([200, 'hello from the VM: /next']);
}, 60_000);

test('shutdown with abandoned work (held and forwarded) does not wait for it', async () => {
  const sleeping = addVM(false);
  const running = addVM(true);
  const p = await proxy(sleeping, { VIRTWAKE_SHUTDOWN_TIMEOUT: '20s', VIRTWAKE_PROXY_QUEUE_SIZE: '1000' });
  const q = await proxy(running, { VIRTWAKE_SHUTDOWN_TIMEOUT: '20s' });
  h.sim.pauseControllers();
  try {
    const held = Array.from({ length: 50 }, () => send(p, `${sleeping}.example`, '/held'));
    const hung = Array.from({ length: 300 }, () => send(q, `${running}.example`, '/hang'));
    await until(() => p.queue.size(`default/${sleeping}`) === 50 && q.inFlight() === 300);
    for (const r of [...held, ...hung]) r.abandon();
    const begun = Date.now();
    await Promise.all([p.close(), q.close()]);
    expect(Date.now() - begun).toBeLessThan(5_000);
  } finally {
    h.sim.resumeControllers();
  }
}, 60_000);

test('a wake against a hung API is answered by VIRTWAKE_PROXY_WAKE_TIMEOUT with VIRTWAKE_PROXY_RETRY_AFTER', async () => {
  const vm = addVM(false);
  const p = await proxy(vm, {
    VIRTWAKE_PROXY_WAKE_TIMEOUT: '2s',
    VIRTWAKE_PROXY_RETRY_AFTER: '10',
    VIRTWAKE_KUBE_TIMEOUT: '30s',
    VIRTWAKE_RETRY_BUDGET_MS: '3000',
  });
  const rule = h.sim.faults.add({ method: 'GET', path: new RegExp(`/virtualmachines/${vm}$`), hang: true });
  try {
    const begun = Date.now();
    const a = await send(p, `${vm}.example`, '/').answer;
    expect(a.status).toBe(503);
    expect(a.headers['retry-after']).toBe('10');
    // Liveness: far below the 30 s per-call timeout the hung read would otherwise take.
    expect(Date.now() - begun).toBeLessThan(10_000);
  } finally {
    h.sim.faults.remove(rule);
  }
}, 60_000);

test('a request held when the proxy shuts down is told so, not that its VM did not come up', async () => {
  const vm = addVM(false);
  const p = await proxy(vm);
  h.sim.pauseControllers();
  try {
    const held = send(p, `${vm}.example`, '/');
    await until(() => p.queue.size(`default/${vm}`) === 1);
    const closed = p.close();
    const a = await held.answer;
    await closed;
    expect(a.status).toBe(503);
    expect(a.body).toMatch(/the wake proxy is shutting down/);
    expect(a.body).not.toMatch(/did not come up/);
  } finally {
    h.sim.resumeControllers();
  }
}, 60_000);
