import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import request from 'supertest';
import { ManualClock } from '../../simulator';
import { LAST_ACTIVITY, rfc3339 } from '../../functions/runtime/activity';
import type { App } from '../../functions/app';
import { HOLD_UNTIL, PAUSED_AT, STOPPED_AT, WARMED_FOR } from '../../functions/ladder';
import { replyData, startHarness, type Harness } from '../helpers/harness';

// The sleep ladder end to end (contract §5), over HTTP against the simulator
// with its manual clock: the reaper pauses and stops idle VMs (once across two
// replicas), the wake proxy unpauses or starts them again and forwards the
// request, busy VMs are never put to sleep, keep-warm windows wake their VMs,
// and the metrics, the ledger and the K_SINK events carry what happened.

const PING = 'dev.knative.sources.ping';
const SOURCE = '/apis/v1/namespaces/virtwake/pingsources/virtwake-reaper';
const OPT_IN = { 'virtwake.io/enabled': 'true' };
const MIN = 60_000;
// A Monday, 01:00 in Berlin.
const clock = new ManualClock(new Date('2030-03-04T00:00:00Z'));

let h: Harness;
let replica: App;
let proxy: App;
let sink: http.Server;
const events: { type: string; subject: string; data: any }[] = [];
let wsUpstream: http.Server;
let wsPort: number;

function listen(server: http.Server): Promise<number> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)),
  );
}

beforeAll(async () => {
  sink = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      events.push({
        type: String(req.headers['ce-type']),
        subject: String(req.headers['ce-subject']),
        data: JSON.parse(body),
      });
      res.writeHead(202).end();
    });
  });
  const sinkPort = await listen(sink);
  // A guest that keeps websockets open (the simulator's guests speak plain HTTP only).
  wsUpstream = http.createServer((_req, res) => res.end('ws guest'));
  wsUpstream.on('upgrade', (_req, socket: net.Socket) => {
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
    socket.pipe(socket);
  });
  wsPort = await listen(wsUpstream);

  h = await startHarness({
    sim: { clock, stepMs: 5 },
    env: { K_SINK: `http://127.0.0.1:${sinkPort}/` },
    now: () => clock.now(),
  });
  replica = await h.replica();
  h.sim.store.setReadinessGateDelay(30);

  const routes = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'virtwake-ladder-')), 'routes.json');
  fs.writeFileSync(
    routes,
    JSON.stringify({
      routes: [
        { host: 'web.example', vm: { name: 'ladder-web' }, service: { name: 'ladder-web', port: 80 } },
        { host: 'other.example', vm: { name: 'ladder-other' }, service: { name: 'ladder-other', port: 80 } },
        { host: 'ws.example', vm: { name: 'busy-ws' }, service: { name: 'busy-ws', port: 80 } },
      ],
    }),
  );
  proxy = await h.replica({
    VIRTWAKE_FUNCTIONS: 'wake-proxy',
    VIRTWAKE_PROXY_ROUTES: routes,
    VIRTWAKE_PROXY_ACTIVITY_INTERVAL: '200ms',
  });
});

afterAll(async () => {
  await h?.close();
  sink?.close();
  wsUpstream?.close();
});

function runningVM(name: string, annotations: Record<string, string>, opts: { agent?: boolean } = {}) {
  h.sim.store.addVM(
    { metadata: { name, namespace: 'default', labels: OPT_IN, annotations }, spec: { runStrategy: 'Manual' } },
    { running: true, agentConnected: opts.agent, vmiCreatedAt: new Date(clock.now().getTime() - MIN) },
  );
}

/** One reaper tick on each replica at once; their summaries. */
async function tickBoth(): Promise<Record<string, any>[]> {
  const [a, b] = await Promise.all([
    h.send(PING, { action: 'reap' }, { source: SOURCE }).expect(200),
    h.send(PING, { action: 'reap' }, { source: SOURCE, to: replica }).expect(200),
  ]);
  await h.sim.settle();
  return [replyData(a), replyData(b)];
}

async function tick(): Promise<Record<string, any>> {
  const res = await h.send(PING, { action: 'reap' }, { source: SOURCE }).expect(200);
  await h.sim.settle();
  return replyData(res);
}

const calls = (vm: string, sub: string) => h.sim.calls.filter((c) => c.name === vm && c.subresource === sub);
const status = (vm: string) => h.sim.store.getVM('default', vm)?.status?.printableStatus;
const annotation = (vm: string, key: string) => h.sim.store.getVM('default', vm)?.metadata.annotations?.[key];
const eventsFor = (vm: string, type: string) => events.filter((e) => e.subject === `default/${vm}` && e.type === type);
const sum = (summaries: Record<string, any>[], key: string) => summaries.reduce((n, s) => n + s[key], 0);

/** Sum of a metric's samples with these labels, across the given apps' /metrics. */
async function metric(apps: App[], name: string, labels: Record<string, string>): Promise<number> {
  let total = 0;
  for (const app of apps) {
    const text = (await request(app.server).get('/metrics').set('user-agent', 'kube-probe/1.31')).text;
    for (const line of text.split('\n')) {
      const m = /^([a-z_]+)\{([^}]*)\} (\S+)$/.exec(line);
      if (!m || m[1] !== name) continue;
      const have = Object.fromEntries([...m[2].matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
      if (Object.entries(labels).every(([k, v]) => have[k] === v)) total += Number(m[3]);
    }
  }
  return total;
}

function get(app: App, host: string, urlPath = '/'): Promise<{ status: number; body: string }> {
  const { port } = app.server.address() as net.AddressInfo;
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: urlPath, headers: { host }, agent: false }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

async function until(what: string, test: () => boolean): Promise<void> {
  for (let i = 0; !test(); i++) {
    if (i > 2_000) throw new Error(`never happened: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('a VM idle past pause-after is paused, past idle-timeout stopped, each once across two replicas', async () => {
  const t0 = clock.now().getTime();
  runningVM('ladder-a', {
    'virtwake.io/pause-after': '5m',
    'virtwake.io/idle-timeout': '2h',
    [LAST_ACTIVITY]: rfc3339(t0),
  });
  await h.sim.settle();
  h.sim.resetCalls();

  clock.advance(4 * MIN);
  await tickBoth();
  expect(calls('ladder-a', 'pause')).toHaveLength(0);

  clock.advance(2 * MIN);
  let s = await tickBoth();
  expect(calls('ladder-a', 'pause').filter((c) => c.status === 200)).toHaveLength(1);
  expect(calls('ladder-a', 'stop')).toHaveLength(0);
  expect(sum(s, 'pausedCount')).toBe(1);
  expect(s.flatMap((x) => x.paused)).toEqual(['default/ladder-a']);
  expect(sum(s, 'stoppedCount')).toBe(0);
  expect(status('ladder-a')).toBe('Paused');
  expect(annotation('ladder-a', PAUSED_AT)).toBe(rfc3339(t0 + 6 * MIN));
  await until('slept event', () => eventsFor('ladder-a', 'io.virtwake.vm.slept').length === 1);
  expect(eventsFor('ladder-a', 'io.virtwake.vm.slept')[0].data).toEqual({
    vm: 'default/ladder-a',
    namespace: 'default',
    name: 'ladder-a',
    tier: 'paused',
    from: 'running',
    idleSeconds: 360,
    thresholdSeconds: 300,
  });

  // Still paused and under its idle timeout: left alone.
  clock.advance(60 * MIN);
  await tickBoth();
  expect(calls('ladder-a', 'stop')).toHaveLength(0);

  clock.advance(61 * MIN);
  s = await tickBoth();
  expect(calls('ladder-a', 'stop').filter((c) => c.status === 202)).toHaveLength(1);
  expect(sum(s, 'stoppedCount')).toBe(1);
  expect(sum(s, 'pausedCount')).toBe(0);
  expect(status('ladder-a')).toBe('Stopped');
  expect(annotation('ladder-a', STOPPED_AT)).toBe(rfc3339(t0 + 127 * MIN));
  expect(annotation('ladder-a', PAUSED_AT)).toBeUndefined();
  await until('second slept event', () => eventsFor('ladder-a', 'io.virtwake.vm.slept').length === 2);
  expect(eventsFor('ladder-a', 'io.virtwake.vm.slept')[1].data).toMatchObject({
    tier: 'stopped',
    from: 'paused',
    idleSeconds: 127 * 60,
    thresholdSeconds: 7200,
  });
  // The ledger: 121 minutes in the paused tier ended with the stop; one sleep of each tier.
  expect(await metric([h.app, replica], 'virtwake_vm_asleep_seconds_total', { tier: 'paused', vm: 'ladder-a' })).toBe(
    121 * 60,
  );
  expect(await metric([h.app, replica], 'virtwake_sleeps_total', { tier: 'paused' })).toBeGreaterThanOrEqual(1);
  expect(await metric([h.app, replica], 'virtwake_sleeps_total', { tier: 'stopped' })).toBeGreaterThanOrEqual(1);
});

test('a request to a paused VM unpauses it (no start) and gets the upstream answer; a stopped one is started', async () => {
  const t0 = clock.now().getTime();
  runningVM('ladder-web', {
    'virtwake.io/pause-after': '5m',
    'virtwake.io/idle-timeout': '2h',
    [LAST_ACTIVITY]: rfc3339(t0),
  });
  await h.sim.store.addGuestService('default', 'ladder-web', { vmName: 'ladder-web', port: 80, guest: true });
  await h.sim.settle();
  clock.advance(6 * MIN);
  await tick();
  expect(status('ladder-web')).toBe('Paused');
  // The paused VM left its Service's endpoints.
  expect(h.sim.store.getEndpointSlice('default', 'ladder-web')!.endpoints[0].conditions!.ready).toBe(false);

  clock.advance(10 * MIN);
  h.sim.resetCalls();
  const answer = await get(proxy, 'web.example', '/report');
  expect(answer.status).toBe(200);
  expect(answer.body).toContain('guest ladder-web');
  expect(answer.body).toContain('GET /report');
  expect(calls('ladder-web', 'unpause')).toHaveLength(1);
  expect(calls('ladder-web', 'start')).toHaveLength(0);
  expect(status('ladder-web')).toBe('Running');

  await until('woke event', () => eventsFor('ladder-web', 'io.virtwake.vm.woke').length === 1);
  const woke = eventsFor('ladder-web', 'io.virtwake.vm.woke')[0].data;
  expect(woke).toMatchObject({ tier: 'paused', trigger: 'proxy', asleepSeconds: 600, vm: 'default/ladder-web' });
  const order = ['accepted', 'endpoint', 'upstream', 'first_byte'];
  expect(Object.keys(woke.phases).sort()).toEqual([...order, 'running'].sort());
  for (let i = 1; i < order.length; i++)
    expect(woke.phases[order[i]]).toBeGreaterThanOrEqual(woke.phases[order[i - 1]]);
  // The VM's own status is watched beside the endpoint: it may trail it, never the wake call.
  expect(woke.phases.running).toBeGreaterThanOrEqual(woke.phases.accepted);
  for (const phase of [...order, 'running'])
    expect(await metric([proxy], 'virtwake_wake_duration_seconds_count', { tier: 'paused', phase })).toBe(1);
  expect(await metric([proxy], 'virtwake_wakes_total', { tier: 'paused', trigger: 'proxy' })).toBe(1);
  expect(await metric([proxy], 'virtwake_vm_asleep_seconds_total', { tier: 'paused', vm: 'ladder-web' })).toBe(600);
  await until('paused-at cleared', () => annotation('ladder-web', PAUSED_AT) === undefined);

  // Down the whole ladder, then a request again: this time a start.
  clock.advance(3 * 60 * MIN);
  await tick();
  expect(status('ladder-web')).toBe('Stopped');
  clock.advance(30 * MIN);
  h.sim.resetCalls();
  const again = await get(proxy, 'web.example', '/again');
  expect(again.status).toBe(200);
  expect(again.body).toContain('GET /again');
  expect(calls('ladder-web', 'start')).toHaveLength(1);
  expect(calls('ladder-web', 'unpause')).toHaveLength(0);
  await until('second woke event', () => eventsFor('ladder-web', 'io.virtwake.vm.woke').length === 2);
  expect(eventsFor('ladder-web', 'io.virtwake.vm.woke')[1].data).toMatchObject({
    tier: 'stopped',
    trigger: 'proxy',
    asleepSeconds: 1800,
  });
  expect(await metric([proxy], 'virtwake_vm_asleep_seconds_total', { tier: 'stopped', vm: 'ladder-web' })).toBe(1800);
});

test('a VM someone else paused stays paused through the proxy; activity with wake unpauses only what virtwake paused', async () => {
  h.sim.store.addVM(
    { metadata: { name: 'ladder-other', namespace: 'default', labels: OPT_IN }, spec: { runStrategy: 'Manual' } },
    { running: true, paused: true },
  );
  h.sim.store.addService('default', 'ladder-other', { vmName: 'ladder-other', port: 80, upstreamPort: 1 });
  await h.sim.settle();
  h.sim.resetCalls();
  const a = await get(proxy, 'other.example');
  expect(a.status).toBe(503);
  expect(a.body).toContain('paused by someone other than virtwake');
  const res = await h.send('io.virtwake.vm.activity', { name: 'ladder-other', wake: true }).expect(200);
  expect(replyData(res)).toMatchObject({ outcome: 'completed', reason: 'AlreadyInState' });
  expect(calls('ladder-other', 'unpause')).toHaveLength(0);
  // The command may say otherwise.
  await h.send('io.virtwake.vm.activity', { name: 'ladder-other', wake: true, unpause: true }).expect(200);
  expect(calls('ladder-other', 'unpause')).toHaveLength(1);
});

test('never asleep while busy: an open websocket, holdFor, logged-in users, a keep-warm window', async () => {
  const t0 = clock.now().getTime();
  const thresholds = { 'virtwake.io/pause-after': '5m', 'virtwake.io/idle-timeout': '1h' };
  runningVM('busy-ws', { ...thresholds, [LAST_ACTIVITY]: rfc3339(t0) });
  h.sim.store.addService('default', 'busy-ws', { vmName: 'busy-ws', port: 80, upstreamPort: wsPort });
  runningVM('busy-hold', { ...thresholds, [LAST_ACTIVITY]: rfc3339(t0) });
  runningVM('busy-users', { ...thresholds, [LAST_ACTIVITY]: rfc3339(t0) }, { agent: true });
  runningVM(
    'busy-traffic-only',
    { ...thresholds, [LAST_ACTIVITY]: rfc3339(t0), 'virtwake.io/idle-signals': 'traffic' },
    { agent: true },
  );
  runningVM('busy-warm', { ...thresholds, [LAST_ACTIVITY]: rfc3339(t0), 'virtwake.io/keep-warm': '* 00:00-24:00' });
  h.sim.store.setGuestUsers('default', 'busy-users', [{ userName: 'alice' }]);
  h.sim.store.setGuestUsers('default', 'busy-traffic-only', [{ userName: 'bob' }]);
  await h.sim.settle();
  await h.send('io.virtwake.vm.activity', { name: 'busy-hold', holdFor: '2h' }).expect(200);
  expect(annotation('busy-hold', HOLD_UNTIL)).toBe(rfc3339(t0 + 120 * MIN));
  const bad = await h.send('io.virtwake.vm.activity', { name: 'busy-hold', holdFor: '9999h' }).expect(200);
  expect(replyData(bad)).toMatchObject({ outcome: 'failed', reason: 'InvalidHoldFor' });

  // A websocket through the proxy, open for the whole test.
  const { port } = proxy.server.address() as net.AddressInfo;
  const ws = net.connect(port, '127.0.0.1');
  ws.write('GET /live HTTP/1.1\r\nHost: ws.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
  await new Promise<void>((resolve) => ws.once('data', () => resolve()));

  clock.advance(90 * MIN);
  // The open connection refreshes the VM's activity by the runtime's clock.
  await until('activity refreshed', () => annotation('busy-ws', LAST_ACTIVITY) === rfc3339(clock.now().getTime()));
  h.sim.resetCalls();
  const s = await tick();
  for (const vm of ['busy-ws', 'busy-hold', 'busy-users', 'busy-warm']) {
    expect([vm, calls(vm, 'pause').length + calls(vm, 'stop').length]).toEqual([vm, 0]);
    expect([vm, status(vm)]).toEqual([vm, 'Running']);
  }
  expect(s.skipped).toMatchObject({ held: 1, loggedIn: 1, keepWarm: 1 });
  expect(calls('busy-users', 'userlist')).toHaveLength(1);
  // Opted out of the user signal: its logged-in user does not keep it awake.
  expect(status('busy-traffic-only')).toBe('Stopped');

  // The hold runs out; the websocket is still open.
  clock.advance(40 * MIN);
  await until(
    'activity refreshed again',
    () => annotation('busy-ws', LAST_ACTIVITY) === rfc3339(clock.now().getTime()),
  );
  await tick();
  expect(status('busy-hold')).toBe('Stopped');
  expect(status('busy-ws')).toBe('Running');
  ws.destroy();
});

test('a keep-warm window wakes its VMs on the first tick inside it, once across replicas; bad values are reported per VM', async () => {
  // Tuesday 07:30 in Berlin, before the window.
  clock.set(new Date('2030-03-05T06:30:00Z'));
  const window = { 'virtwake.io/keep-warm': 'Mon-Fri 08:00-18:00 Europe/Berlin' };
  h.sim.store.addVM(
    {
      metadata: {
        name: 'warm-stopped',
        namespace: 'default',
        labels: OPT_IN,
        annotations: { ...window, [STOPPED_AT]: '2030-03-04T18:00:00Z' },
      },
      spec: { runStrategy: 'Manual' },
    },
    { running: false },
  );
  h.sim.store.addVM(
    {
      metadata: {
        name: 'warm-paused',
        namespace: 'default',
        labels: OPT_IN,
        annotations: { ...window, [PAUSED_AT]: '2030-03-05T05:30:00Z' },
      },
      spec: { runStrategy: 'Manual' },
    },
    { running: true, paused: true },
  );
  h.sim.store.addVM(
    {
      metadata: {
        name: 'warm-bad',
        namespace: 'default',
        labels: OPT_IN,
        annotations: { 'virtwake.io/keep-warm': 'weekdays 9-5', 'virtwake.io/idle-timeout': '1m' },
      },
      spec: { runStrategy: 'Manual' },
    },
    { running: true },
  );
  await h.sim.settle();
  h.sim.resetCalls();
  let s = await tickBoth();
  expect(calls('warm-stopped', 'start')).toHaveLength(0);
  expect(calls('warm-paused', 'unpause')).toHaveLength(0);
  expect(s[0].invalid).toContainEqual({
    vm: 'default/warm-bad',
    annotation: 'virtwake.io/keep-warm',
    message: expect.stringContaining('write "DAYS HH:MM-HH:MM [zone]"'),
  });
  expect(status('warm-bad')).toBe('Running');

  clock.set(new Date('2030-03-05T07:05:00Z'));
  s = await tickBoth();
  expect(calls('warm-stopped', 'start')).toHaveLength(1);
  expect(calls('warm-paused', 'unpause')).toHaveLength(1);
  expect(sum(s, 'wokenCount')).toBe(2);
  expect(status('warm-stopped')).toBe('Running');
  expect(status('warm-paused')).toBe('Running');
  expect(annotation('warm-stopped', WARMED_FOR)).toBe('0@2030-03-05');
  await until('woke events', () => eventsFor('warm-stopped', 'io.virtwake.vm.woke').length === 1);
  expect(eventsFor('warm-stopped', 'io.virtwake.vm.woke')[0].data).toMatchObject({
    tier: 'stopped',
    trigger: 'keepWarm',
    asleepSeconds: 13 * 3600 + 5 * 60,
  });
  expect(await metric([h.app, replica], 'virtwake_wakes_total', { trigger: 'keepWarm' })).toBe(2);

  // Someone stops it inside the window: later ticks of the same window leave that be.
  await h.send('io.virtwake.vm.stop', { name: 'warm-stopped', wait: { timeoutSeconds: 20 } }).expect(200);
  clock.set(new Date('2030-03-05T09:00:00Z'));
  await tickBoth();
  expect(calls('warm-stopped', 'start')).toHaveLength(1);
});

test("someone else's unpause: the reaper clears the stale paused-at, so a later manual pause is not taken for virtwake's", async () => {
  const t = clock.now().getTime();
  h.sim.store.addVM(
    {
      metadata: {
        name: 'ladder-unpaused',
        namespace: 'default',
        labels: OPT_IN,
        annotations: { [PAUSED_AT]: rfc3339(t - 60 * MIN), 'virtwake.io/reaped-at': rfc3339(t - 60 * MIN) },
      },
      spec: { runStrategy: 'Manual' },
    },
    { running: true },
  );
  await h.sim.settle();
  const s = await tick();
  expect(s.cleared).toBe(1);
  expect(annotation('ladder-unpaused', PAUSED_AT)).toBeUndefined();
  // Paused by hand now: a wake leaves it paused.
  await h.send('io.virtwake.vm.pause', { name: 'ladder-unpaused', wait: { timeoutSeconds: 20 } }).expect(200);
  h.sim.resetCalls();
  const res = await h.send('io.virtwake.vm.activity', { name: 'ladder-unpaused', wake: true }).expect(200);
  expect(replyData(res)).toMatchObject({ outcome: 'completed', reason: 'AlreadyInState' });
  expect(calls('ladder-unpaused', 'unpause')).toHaveLength(0);
});
