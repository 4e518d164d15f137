import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ManualClock } from '../../simulator';
import type { App } from '../../functions/app';
import { Harness, replyData, startHarness } from '../helpers/harness';

// The scale-to-zero findings of issue 13 over HTTP against the simulator: a
// guest that listens some time after its VM is ready (H2), live migration
// (M3), Once VMs (L6) and VMs whose spec no longer validates (L7), in the
// wake proxy and the reaper.

const OPT_IN = { 'virtwake.io/enabled': 'true' };
const T0 = new Date('2031-02-03T04:05:06Z');
const clock = new ManualClock(T0);
const PING = 'dev.knative.sources.ping';
let h: Harness;

beforeAll(async () => {
  h = await startHarness({ sim: { stepMs: 5, clock }, now: () => clock.now() });
});
afterAll(() => h.close());

function routesFile(routes: unknown[]): string {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'virtwake-routes-')), 'routes.json');
  fs.writeFileSync(file, JSON.stringify({ routes }));
  return file;
}

async function proxyFor(vm: string, env: Record<string, string> = {}): Promise<App> {
  return h.replica({
    VIRTWAKE_FUNCTIONS: 'wake-proxy',
    VIRTWAKE_PROXY_ROUTES: routesFile([{ host: `${vm}.example`, vm: { name: vm }, service: { name: vm, port: 80 } }]),
    ...env,
  });
}

function get(app: App, host: string): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  const { port } = app.server.address() as net.AddressInfo;
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/', headers: { host }, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

const starts = (vm: string) => h.sim.calls.filter((c) => c.subresource === 'start' && c.name === vm);
const vm = (name: string) => h.sim.store.getVM('default', name)!;

async function until(what: string, test: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !test(); i++) await new Promise((r) => setTimeout(r, 10));
  if (!test()) throw new Error(`never happened: ${what}`);
}

/** A stopped VM whose simulator-run guest listens `delay` seconds after the VMI runs (no readinessProbe). */
async function lateGuest(name: string, delay: number): Promise<void> {
  h.sim.store.addVM({
    metadata: {
      name,
      namespace: 'default',
      labels: OPT_IN,
      annotations: { 'simulator.virtwake.io/guest-listen-delay-seconds': String(delay) },
    },
    spec: { runStrategy: 'Halted' },
  });
  await h.sim.store.addGuestService('default', name, { vmName: name, port: 80, guest: true });
}

describe('H2: the guest listens after the VM is ready', () => {
  test('the held request waits through refused connects and gets the guest answer, never 502', async () => {
    await lateGuest('late', 20);
    const p = await proxyFor('late');
    const answer = get(p, 'late.example');
    let answered = false;
    void answer.then(() => (answered = true));
    await until('the VM runs and is ready', () => vm('late').status?.ready === true);
    // Ready, endpoint ready, guest not listening: the proxy keeps trying and keeps the client waiting.
    await until(
      'the proxy looked the endpoint up again after a refusal',
      () => h.sim.calls.filter((c) => c.resource === 'endpointslices' && c.verb === 'list').length >= 3,
    );
    expect(answered).toBe(false);
    clock.advance(21_000);
    const res = await answer;
    expect(res.status).toBe(200);
    expect(res.body).toMatch(/^guest late /);
    expect(starts('late')).toHaveLength(1);
  });

  test('a guest that never listens within the wake timeout: 503 with Retry-After, not 502', async () => {
    await lateGuest('never', 3600);
    const p = await proxyFor('never', { VIRTWAKE_PROXY_WAKE_TIMEOUT: '2s' });
    const res = await get(p, 'never.example');
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBeDefined();
    expect(res.body).toMatch(/did not accept a connection within 2s/);
    expect(vm('never').status?.ready).toBe(true);
  });
});

describe('M3: Migrating is serving', () => {
  test('the proxy forwards to a migrating VM at once, without a start', async () => {
    await lateGuest('moving', 0);
    h.sim.store.updateVM('default', 'moving', (v) => {
      v.spec.runStrategy = 'Always';
    });
    await h.sim.settle();
    await until('the guest listens', () => vm('moving').status?.ready === true);
    h.sim.store.setMigrating('default', 'moving', true);
    await h.sim.settle();
    expect(vm('moving').status?.printableStatus).toBe('Migrating');
    const p = await proxyFor('moving');
    const res = await get(p, 'moving.example');
    expect(res.status).toBe(200);
    expect(starts('moving')).toHaveLength(0);
    h.sim.store.setMigrating('default', 'moving', false);
  });
});

describe('the reaper', () => {
  const idle = (name: string, runStrategy = 'Always') => {
    h.sim.store.addVM(
      {
        metadata: {
          name,
          namespace: 'default',
          labels: OPT_IN,
          annotations: { 'virtwake.io/idle-timeout': '30m' },
        },
        spec: { runStrategy },
      },
      { running: true, vmiCreatedAt: new Date(T0.getTime() - 3 * 3600_000) },
    );
  };

  test('leaves a migrating VM to a later tick and counts it (M3); leaves Once VMs and counts them (L6); reports a VM whose spec no longer validates (L7)', async () => {
    idle('r-migrating');
    h.sim.store.setMigrating('default', 'r-migrating', true);
    idle('r-once', 'Once');
    idle('r-invalid');
    h.sim.store.setSpecInvalid('default', 'r-invalid', 'TPM feature gate is not enabled in kubevirt-config');
    idle('r-idle');
    await h.sim.settle();
    const reaper = await h.replica({ VIRTWAKE_FUNCTIONS: 'reaper' });
    const s = replyData(await h.send(PING, {}, { to: reaper }).expect(200));
    expect(s.stopped).toEqual(['default/r-idle']);
    expect(s.skipped).toMatchObject({ migrating: 1, runOnce: 1 });
    expect(s.failed).toEqual([
      {
        vm: 'default/r-invalid',
        reason: 'VmInvalid',
        message: expect.stringMatching(
          /itself no longer passes KubeVirt's validation.*TPM feature gate is not enabled in kubevirt-config/,
        ),
      },
    ]);
    expect(vm('r-once').spec?.runStrategy).toBe('Once');
    expect(vm('r-migrating').spec?.runStrategy).toBe('Always');
    h.sim.store.setMigrating('default', 'r-migrating', false);
    h.sim.store.setSpecInvalid('default', 'r-invalid', undefined);
  });
});

describe('L7: restart of a VM whose spec no longer validates', () => {
  test('failed, reason VmInvalid, with KubeVirt message', async () => {
    h.sim.store.addVM(
      { metadata: { name: 'bad-spec', namespace: 'default', labels: OPT_IN }, spec: { runStrategy: 'Always' } },
      { running: true },
    );
    h.sim.store.setSpecInvalid('default', 'bad-spec', 'TPM feature gate is not enabled in kubevirt-config');
    const res = await h.send('io.virtwake.vm.restart', { name: 'bad-spec' }).expect(200);
    expect(res.headers['ce-type']).toBe('io.virtwake.vm.restart.failed');
    expect(replyData(res)).toMatchObject({ reason: 'VmInvalid' });
    expect(replyData(res).message).toMatch(
      /bad-spec itself no longer passes KubeVirt's validation.*admission webhook "virtualmachine-validator.kubevirt.io" denied the request: TPM feature gate/,
    );
    h.sim.store.setSpecInvalid('default', 'bad-spec', undefined);
  });
});

describe('L7: the VM stops validating between the claim and the record of what was done', () => {
  // The claim is written, then the spec stops validating (a feature gate turned off) while KubeVirt carries
  // out the start: the start happened, only its record in the ledger is refused. The answer says what was
  // done and that it is not recorded, not failed/VmInvalid.
  test('start: accepted, the VM starts, and the message says the record could not be written', async () => {
    h.sim.store.addVM({
      metadata: { name: 'turns-bad', namespace: 'default', labels: OPT_IN },
      spec: { runStrategy: 'Halted' },
    });
    await h.sim.settle();
    const held = h.sim.faults.add({
      method: 'PUT',
      path: /\/virtualmachines\/turns-bad\/start$/,
      delayMs: 300,
      times: 1,
    });
    const answer = h.send('io.virtwake.vm.start', { name: 'turns-bad' }).then((r) => r);
    while (h.sim.faults.list().some((f) => f.id === held)) await new Promise((r) => setTimeout(r, 5));
    h.sim.store.setSpecInvalid('default', 'turns-bad', 'TPM feature gate is not enabled in kubevirt-config');
    try {
      const res = await answer;
      expect([res.status, res.headers['ce-type']]).toEqual([200, 'io.virtwake.vm.start.accepted']);
      expect(replyData(res).reason).toBeUndefined();
      expect(replyData(res).message).toMatch(
        /KubeVirt took the request, but virtwake could not record it on the VM: .*TPM feature gate.*a redelivery of this command is not recognised as done/,
      );
      expect(vm('turns-bad').spec?.runStrategy).toBe('Always');
      expect(starts('turns-bad').filter((c) => c.status === 202)).toHaveLength(1);
    } finally {
      h.sim.store.setSpecInvalid('default', 'turns-bad', undefined);
    }
  });
});
