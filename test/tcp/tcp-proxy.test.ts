import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ManualClock } from '../../simulator';
import { LAST_ACTIVITY } from '../../functions/runtime/activity';
import type { App } from '../../functions/app';
import type { WakeProxy } from '../../functions/wake-proxy/server';
import { startHarness, type Harness } from '../helpers/harness';
import { compareRoleWithCalls } from '../knative/rbac';

// TCP routes of the wake proxy with real TCP clients on loopback: the
// simulator decides when the VM is up, small servers run here play the guest.

const OPT_IN = { 'virtwake.io/enabled': 'true' };
const T0 = new Date('2030-03-01T12:00:00Z');
const MIN = 60_000;
const clock = new ManualClock(T0);
let h: Harness;
const servers: net.Server[] = [];

beforeAll(async () => {
  h = await startHarness({ sim: { clock, stepMs: 5 }, now: () => clock.now() });
});
afterAll(async () => {
  await h?.close();
  for (const s of servers) s.close();
});

/** A loopback "guest" service; returns its port. */
async function guest(onSocket: (s: net.Socket) => void): Promise<number> {
  const s = net.createServer({ allowHalfOpen: true }, onSocket);
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return (s.address() as net.AddressInfo).port;
}

const echo = (s: net.Socket) => {
  s.on('error', () => {});
  s.pipe(s);
};

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as net.AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

function addVM(name: string, upstreamPort: number, annotations: Record<string, string> = {}) {
  h.sim.store.addVM(
    { metadata: { name, namespace: 'default', labels: OPT_IN, annotations }, spec: { runStrategy: 'Halted' } },
    { running: false },
  );
  h.sim.store.addService('default', name, { vmName: name, port: 3389, upstreamPort });
}

function routesFile(routes: unknown[]): string {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'virtwake-tcp-routes-')), 'routes.yaml');
  fs.writeFileSync(file, JSON.stringify({ routes }));
  return file;
}

/** A proxy with one TCP route for `vm`; returns the app and the port it listens on. */
async function tcpProxy(vm: string, env: Record<string, string> = {}): Promise<{ app: App; port: number }> {
  const port = await freePort();
  const app = await h.replica({
    VIRTWAKE_FUNCTIONS: 'wake-proxy',
    VIRTWAKE_PROXY_ROUTES: routesFile([{ listen: { tcp: port }, vm: { name: vm }, service: { name: vm, port: 3389 } }]),
    ...env,
  });
  return { app, port };
}

interface Conversation {
  /** Everything the client received until the proxy closed or ended its side. */
  received: Promise<Buffer>;
  socket: net.Socket;
}

function connect(port: number, opts: { send?: Buffer | string; end?: boolean; halfOpen?: boolean } = {}): Conversation {
  const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: opts.halfOpen ?? false });
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  const received = new Promise<Buffer>((resolve) => {
    socket.on('error', () => {});
    socket.on('end', () => resolve(Buffer.concat(chunks)));
    socket.on('close', () => resolve(Buffer.concat(chunks)));
  });
  if (opts.send !== undefined) socket.write(opts.send);
  if (opts.end) socket.end();
  return { received, socket };
}

const closed = (s: net.Socket) => new Promise<void>((r) => (s.destroyed ? r() : s.once('close', () => r())));
const starts = (vm: string) => h.sim.calls.filter((c) => c.subresource === 'start' && c.name === vm);

async function metric(app: App, name: string, labels: Record<string, string>): Promise<number> {
  const text = await app.runtime.metrics.registry.metrics();
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && want.every((w) => l.includes(w)));
  return line ? Number(line.split(' ').pop()) : 0;
}

async function until(what: string, cond: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`never happened: ${what}`);
}

test('100 concurrent connections to a stopped VM: one start, every client gets its own bytes back', async () => {
  addVM('erp', await guest(echo));
  const { app, port } = await tcpProxy('erp');
  h.sim.resetCalls();
  const talks = Array.from({ length: 100 }, (_, i) => connect(port, { send: `client ${i} says hello\n`, end: true }));
  const answers = await Promise.all(talks.map((t) => t.received));
  answers.forEach((a, i) => expect(a.toString()).toBe(`client ${i} says hello\n`));
  expect(starts('erp')).toHaveLength(1);
  expect(h.sim.store.getVM('default', 'erp')!.status?.printableStatus).toBe('Running');
  expect(await metric(app, 'virtwake_proxy_tcp_connections_total', { result: 'forwarded' })).toBe(100);
  expect(await metric(app, 'virtwake_proxy_wake_duration_seconds_count', { outcome: 'ready' })).toBe(1);
  // Bytes are counted as each connection closes on the proxy's side.
  const sent = answers.reduce((n, a) => n + a.length, 0);
  const bytes = async () => [
    await metric(app, 'virtwake_proxy_tcp_bytes_total', { direction: 'in' }),
    await metric(app, 'virtwake_proxy_tcp_bytes_total', { direction: 'out' }),
  ];
  await until('all bytes counted', async () => (await bytes()).every((n) => n >= sent));
  expect(await bytes()).toEqual([sent, sent]);
  expect(await metric(app, 'virtwake_proxy_tcp_held_connections', { port: String(port) })).toBe(0);

  // Awake and known: the next connection goes straight through without an API call.
  h.sim.resetCalls();
  expect((await connect(port, { send: 'again', end: true }).received).toString()).toBe('again');
  expect(h.sim.calls).toEqual([]);
});

test('a client that speaks first: all it sent while the VM woke arrives first and whole, beyond the 64 KiB kept', async () => {
  const got: Buffer[] = [];
  addVM(
    'pg',
    await guest((s) => {
      s.on('data', (c: Buffer) => got.push(c));
      s.on('end', () => s.end(`received ${Buffer.concat(got).length} bytes`));
    }),
  );
  const { port } = await tcpProxy('pg');
  const first = Buffer.alloc(200 * 1024);
  for (let i = 0; i < first.length; i += 4) first.writeUInt32LE((i * 2654435761) >>> 0, i);
  const reply = await connect(port, { send: first, end: true, halfOpen: true }).received;
  expect(reply.toString()).toBe(`received ${first.length} bytes`);
  expect(createHash('sha256').update(Buffer.concat(got)).digest('hex')).toBe(
    createHash('sha256').update(first).digest('hex'),
  );
});

test('a server that speaks first: its banner reaches the client, which then answers', async () => {
  addVM(
    'ssh',
    await guest((s) => {
      s.write('SSH-2.0-guest\r\n');
      s.once('data', (c: Buffer) => s.end(`you said ${c.toString()}`));
    }),
  );
  const { port } = await tcpProxy('ssh');
  const t = connect(port);
  const banner = await new Promise<string>((r) => t.socket.once('data', (d: Buffer) => r(d.toString())));
  expect(banner).toBe('SSH-2.0-guest\r\n');
  t.socket.write('SSH-2.0-client');
  expect((await t.received).toString()).toBe('SSH-2.0-guest\r\nyou said SSH-2.0-client');
});

test('half-close both ways: each side keeps talking after the other has finished sending', async () => {
  let heardAfterEnd = '';
  addVM(
    'half',
    await guest((s) => {
      s.write('server done');
      s.end();
      s.on('data', (c: Buffer) => (heardAfterEnd += c.toString()));
      s.on('end', () => s.destroy());
    }),
  );
  const { port } = await tcpProxy('half');
  // The server half-closes first; the client still sends, and the server still hears it.
  const t = connect(port, { halfOpen: true });
  expect((await t.received).toString()).toBe('server done');
  t.socket.end('client still talking');
  await closed(t.socket);
  await until('the server heard the client after its own end', () => heardAfterEnd === 'client still talking');

  // The client half-closes first (covered with 100 clients above too): the answer still comes back.
  const t2 = connect(port, { send: 'x', end: true, halfOpen: true });
  expect((await t2.received).toString()).toBe('server done');
});

test('an upstream that dies mid-stream resets its client, and the error is counted', async () => {
  addVM(
    'flaky',
    await guest((s) => {
      s.write('partial answer');
      setTimeout(() => s.resetAndDestroy(), 50);
    }),
  );
  const { app, port } = await tcpProxy('flaky');
  const t = connect(port, { halfOpen: true });
  // A reset, not an orderly end: the client must not take the partial answer for a whole one.
  const error = new Promise<string | undefined>((r) => t.socket.once('error', (e: NodeJS.ErrnoException) => r(e.code)));
  const got = await t.received;
  await closed(t.socket);
  expect(got.toString()).toBe('partial answer');
  expect(await error).toBe('ECONNRESET');
  await until(
    'error counted',
    async () => (await metric(app, 'virtwake_proxy_tcp_connection_errors_total', { side: 'upstream' })) === 1,
  );
  await until(
    'no connection left open',
    async () => (await metric(app, 'virtwake_proxy_tcp_open_connections', { port: String(port) })) === 0,
  );
});

test('a full queue closes the extra connections at once and counts them; the held ones are served', async () => {
  addVM('busy', await guest(echo));
  const { app, port } = await tcpProxy('busy', { VIRTWAKE_PROXY_QUEUE_SIZE: '2' });
  h.sim.pauseControllers();
  const talks: Conversation[] = [];
  try {
    for (let i = 0; i < 5; i++) talks.push(connect(port, { send: `c${i}`, end: true }));
    await until(
      'three closed for a full queue',
      async () => (await metric(app, 'virtwake_proxy_tcp_connections_total', { result: 'queue_full' })) === 3,
    );
    expect(await metric(app, 'virtwake_proxy_tcp_held_connections', { port: String(port) })).toBe(2);
  } finally {
    h.sim.resumeControllers();
  }
  const answers = (await Promise.all(talks.map((t) => t.received))).map(String);
  expect(answers.filter((a) => a === '')).toHaveLength(3);
  expect(answers.filter((a) => /^c\d$/.test(a))).toHaveLength(2);
  expect(await metric(app, 'virtwake_proxy_tcp_connections_total', { result: 'forwarded' })).toBe(2);
  expect(starts('busy')).toHaveLength(1);
});

test('a wake past its timeout closes the connection and counts it; the VM keeps booting for the next client', async () => {
  addVM('stuck', await guest(echo));
  const { app, port } = await tcpProxy('stuck', { VIRTWAKE_PROXY_WAKE_TIMEOUT: '300ms' });
  h.sim.pauseControllers();
  try {
    const t = connect(port, { send: 'anyone?' });
    expect((await t.received).length).toBe(0);
    await closed(t.socket);
    expect(await metric(app, 'virtwake_proxy_tcp_connections_total', { result: 'wake_timeout' })).toBe(1);
    expect(await metric(app, 'virtwake_proxy_tcp_held_connections', { port: String(port) })).toBe(0);
  } finally {
    h.sim.resumeControllers();
  }
  expect((await connect(port, { send: 'now?', end: true }).received).toString()).toBe('now?');
  expect(starts('stuck')).toHaveLength(1);
});

test('a VM that does not exist or is not opted in: the connection is closed and counted, nothing is started', async () => {
  const { app, port } = await tcpProxy('nowhere');
  h.sim.resetCalls();
  const t = connect(port, { send: 'hello?' });
  expect((await t.received).length).toBe(0);
  h.sim.store.addVM(
    { metadata: { name: 'private', namespace: 'default', labels: { app: 'x' } }, spec: { runStrategy: 'Halted' } },
    { running: false },
  );
  const other = await tcpProxy('private');
  expect((await connect(other.port, { send: 'hello?' }).received).length).toBe(0);
  expect(await metric(app, 'virtwake_proxy_tcp_connections_total', { result: 'wake_failed' })).toBe(1);
  expect(await metric(other.app, 'virtwake_proxy_tcp_connections_total', { result: 'wake_failed' })).toBe(1);
  expect(h.sim.calls.filter((c) => c.subresource === 'start')).toEqual([]);
});

test('a guest service that listens late: the proxy dials again until it accepts', async () => {
  const late = await freePort();
  addVM('slowboot', late);
  const { port } = await tcpProxy('slowboot');
  const t = connect(port, { send: 'early bytes', end: true });
  // The VM is Running and its endpoint ready before the guest's service listens.
  await until('running', () => h.sim.store.getVM('default', 'slowboot')?.status?.printableStatus === 'Running');
  await new Promise((r) => setTimeout(r, 100));
  const s = net.createServer({ allowHalfOpen: true }, echo);
  servers.push(s);
  await new Promise<void>((r) => s.listen(late, '127.0.0.1', r));
  expect((await t.received).toString()).toBe('early bytes');
});

test('an open connection keeps its VM awake across reaper ticks; once closed the VM is reaped', async () => {
  addVM('desk', await guest(echo), { 'virtwake.io/idle-timeout': '10m' });
  const { app, port } = await tcpProxy('desk', { VIRTWAKE_PROXY_ACTIVITY_INTERVAL: '20ms' });
  const reaper = await h.replica({ VIRTWAKE_FUNCTIONS: 'reaper' });
  const t = connect(port, { send: 'login' });
  await new Promise<void>((r) => t.socket.once('data', () => r()));
  const stamp = () => h.sim.store.getVM('default', 'desk')?.metadata.annotations?.[LAST_ACTIVITY];
  const tick = async (id: string) =>
    (await h.send('dev.knative.sources.ping', {}, { to: reaper, id, source: '/reaper-test' }).expect(200)).body as {
      stopped?: string[];
    };
  for (let i = 1; i <= 3; i++) {
    clock.advance(11 * MIN);
    const now = clock.now().toISOString().replace('.000Z', 'Z');
    await until(`activity stamped at ${now}`, () => stamp() === now);
    const summary = await tick(`tick-${i}`);
    expect(summary.stopped ?? []).not.toContain('default/desk');
    expect(h.sim.store.getVM('default', 'desk')!.status?.printableStatus).toBe('Running');
  }
  t.socket.end();
  await closed(t.socket);
  await until(
    'the proxy saw it close',
    async () => (await metric(app, 'virtwake_proxy_tcp_open_connections', { port: String(port) })) === 0,
  );
  clock.advance(11 * MIN);
  await new Promise((r) => setTimeout(r, 100));
  const summary = await tick('tick-after');
  expect(summary.stopped).toEqual(['default/desk']);
});

test('shutdown closes held connections at once', async () => {
  addVM('held', await guest(echo));
  const { app, port } = await tcpProxy('held');
  h.sim.pauseControllers();
  try {
    const t = connect(port, { send: 'waiting' });
    await until(
      'held',
      async () => (await metric(app, 'virtwake_proxy_tcp_held_connections', { port: String(port) })) === 1,
    );
    await (app as unknown as WakeProxy).shutdown();
    await closed(t.socket);
    expect(await metric(app, 'virtwake_proxy_tcp_connections_total', { result: 'shutting_down' })).toBe(1);
  } finally {
    h.sim.resumeControllers();
  }
});

test('the calls of a wake are exactly what knative/tcp-proxy/rbac.yaml grants', async () => {
  addVM('rbac', await guest(echo));
  const { port } = await tcpProxy('rbac');
  h.sim.pauseControllers();
  h.sim.resetCalls();
  const t = connect(port, { send: 'hi', end: true });
  // Held while the VM cannot come up: the proxy watches the VM and the Service's endpoints.
  await until('watching', () => h.sim.calls.some((c) => c.verb === 'watch'));
  h.sim.resumeControllers();
  expect((await t.received).toString()).toBe('hi');
  const calls = h.sim.calls.filter((c) => c.status !== 401);
  // The simulator readies the endpoint with the VM's Running, so the endpoint watch (for a lagging
  // EndpointSlice on a real cluster) is the one grant this wake does not use.
  expect(compareRoleWithCalls(path.join(__dirname, '../../knative/tcp-proxy/rbac.yaml'), calls)).toEqual({
    missing: [],
    unused: ['watch discovery.k8s.io/endpointslices'],
  });
});
