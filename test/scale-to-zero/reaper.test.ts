import { ManualClock, type RecordedCall } from '../../simulator';
import { REAPED_AT } from '../../functions/reaper/rules';
import { replyData, startHarness, type Harness } from '../helpers/harness';
import { expectedIdle, makeFleet, toSimulator } from '../../scripts/bench/lib/population';

// The reaper through the real server over HTTP, against the simulator with an
// injected clock: which VMs it stops among 1,000, how many API calls that
// takes, and what two replicas ticking at once do. The fleet is big enough to
// mix every case and span several pages; the same pass over 10,000 VMs is in
// `npm run bench` (scripts/bench/reaper.ts).

const PING = 'dev.knative.sources.ping';
const PING_SOURCE = '/apis/v1/namespaces/virtwake/pingsources/virtwake-reaper';
const T0 = new Date('2030-03-01T12:00:00Z');

const isStop = (c: RecordedCall) => c.method === 'PUT' && c.subresource === 'stop';
const key = (c: RecordedCall) => `${c.namespace}/${c.name}`;

describe('reaper over 1,000 VMs', () => {
  const clock = new ManualClock(T0);
  const fleet = makeFleet(1_000, { seed: 7 });
  const idle = expectedIdle(fleet);
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness({
      sim: { clock, stepMs: 5 },
      env: { VIRTWAKE_NAMESPACES: 'vms', VIRTWAKE_FUNCTIONS: 'reaper', VIRTWAKE_REAPER_REPORT_MAX: '100000' },
      now: () => clock.now(),
    });
    h.sim.store.addVMs(toSimulator(fleet, T0.getTime()));
    await h.sim.settle(60_000);
  }, 120_000);
  afterAll(() => h?.close());

  test('stops exactly the idle, unprotected, opted-in running VMs, each once, in pages plus stops', async () => {
    // The fleet really mixes every case.
    expect(idle.size).toBeGreaterThan(50);
    expect(fleet.filter((v) => v.running && v.protectedLabel === 'true' && v.optedIn).length).toBeGreaterThan(10);
    h.sim.resetCalls();

    const res = await h.send(PING, { action: 'reap' }, { source: PING_SOURCE }).expect(200);
    expect(res.headers['ce-type']).toBe('io.virtwake.reaper.completed');
    expect(res.headers['ce-source']).toBe('/virtwake/reaper');
    const summary = replyData(res);
    const calls = [...h.sim.calls];

    const stopped = calls.filter(isStop).map(key);
    expect(new Set(stopped).size).toBe(stopped.length);
    expect(new Set(stopped)).toEqual(idle);
    expect(new Set(summary.stopped)).toEqual(idle);
    expect(summary.stoppedCount).toBe(idle.size);
    expect(summary.failed).toEqual([]);
    expect(summary.idle).toBe(idle.size);

    // Nothing else was written: the only writes are a claim and a stop per idle VM.
    const writes = calls.filter((c) => c.method !== 'GET');
    expect(writes.filter((c) => !idle.has(key(c)))).toEqual([]);
    const claims = writes.filter((c) => c.method === 'PATCH');
    expect(claims.map(key).sort()).toEqual([...idle].sort());
    for (const c of claims)
      expect(c.body).toMatchObject({
        metadata: { resourceVersion: expect.any(String), annotations: { [REAPED_AT]: '2030-03-01T12:00:00Z' } },
      });

    // Reads are pages, never the whole fleet in one answer, never one read per VM.
    const lists = calls.filter((c) => c.verb === 'list');
    expect(lists.length).toBe(summary.pages);
    for (const l of lists) expect(Number(l.query?.limit)).toBe(500);
    const listed = fleet.filter((v) => v.optedIn && v.protectedLabel !== 'true').length;
    expect(listed).toBeGreaterThan(500); // several pages
    expect(lists.filter((l) => l.resource === 'virtualmachines')).toHaveLength(Math.ceil(listed / 500));
    expect(lists.find((l) => l.resource === 'virtualmachines')?.query?.labelSelector).toBe(
      'virtwake.io/enabled=true,virtwake.io/protected!=true',
    );
    expect(calls.filter((c) => c.verb === 'get')).toHaveLength(summary.vmiGets);
    expect(calls.length).toBe(summary.pages + summary.vmiGets + 2 * summary.stoppedCount);
    expect(summary.vmiGets).toBe(0);

    // Server-side selection: protected and non-opted-in VMs are never even seen.
    expect(summary.scanned).toBe(fleet.filter((v) => v.optedIn && v.protectedLabel !== 'true').length);
    expect(summary.skipped).toMatchObject({
      invalidIdleTimeout: expect.any(Number),
      active: expect.any(Number),
      recentlyStarted: expect.any(Number),
      notRunning: expect.any(Number),
    });

    // And the simulator agrees: every idle VM is on its way down, everything else is as it was.
    await h.sim.settle(60_000);
    for (const v of fleet) {
      const now = h.sim.store.getVM(v.namespace, v.name)!;
      if (idle.has(`${v.namespace}/${v.name}`)) expect(now.status?.printableStatus).toBe('Stopped');
      else if (v.running) expect(now.status?.printableStatus).toBe(v.paused ? 'Paused' : 'Running');
    }
  }, 120_000);

  test('the next tick finds nothing more to stop until time passes', async () => {
    h.sim.resetCalls();
    const first = replyData(await h.send(PING, {}, { source: PING_SOURCE }).expect(200));
    expect(first.stoppedCount).toBe(0);
    expect(h.sim.calls.filter((c) => c.method !== 'GET')).toEqual([]);

    // Three hours later every running, opted-in VM with a valid timeout has been idle long enough.
    clock.advance(3 * 3_600_000 + 60_000);
    const later = expectedIdle(
      fleet
        .filter((v) => !idle.has(`${v.namespace}/${v.name}`))
        .map((v) => ({
          ...v,
          lastActivityAgoMs:
            v.lastActivityAgoMs === undefined ? undefined : v.lastActivityAgoMs + 3 * 3_600_000 + 60_000,
          vmiStartedAgoMs: v.vmiStartedAgoMs === undefined ? undefined : v.vmiStartedAgoMs + 3 * 3_600_000 + 60_000,
        })),
    );
    h.sim.resetCalls();
    const second = replyData(await h.send(PING, {}, { source: PING_SOURCE }).expect(200));
    expect(new Set(h.sim.calls.filter(isStop).map(key))).toEqual(later);
    expect(second.stoppedCount).toBe(later.size);
  }, 120_000);
});

describe('two reaper replicas ticking at once', () => {
  test('stop each idle VM exactly once and do not fight', async () => {
    const clock = new ManualClock(T0);
    const fleet = makeFleet(1_000, { seed: 11, namespaces: ['vms', 'apps'] });
    const idle = expectedIdle(fleet, 45 * 60_000);
    const h = await startHarness({
      sim: { clock, stepMs: 5 },
      env: {
        VIRTWAKE_NAMESPACES: 'vms,apps',
        VIRTWAKE_FUNCTIONS: 'reaper',
        VIRTWAKE_IDLE_TIMEOUT: '45m',
        VIRTWAKE_REAPER_PAGE_SIZE: '100',
        VIRTWAKE_REAPER_REPORT_MAX: '100000',
      },
      now: () => clock.now(),
    });
    try {
      h.sim.store.addVMs(toSimulator(fleet, T0.getTime()));
      await h.sim.settle(60_000);
      const other = await h.replica();
      h.sim.resetCalls();

      const [a, b] = await Promise.all([
        h.send(PING, {}, { source: PING_SOURCE, id: 'tick-1' }).expect(200),
        h.send(PING, {}, { source: PING_SOURCE, id: 'tick-1', to: other }).expect(200),
      ]);
      const stops = h.sim.calls.filter(isStop).map(key);
      expect(stops.length).toBe(idle.size);
      expect(new Set(stops)).toEqual(idle);
      const [sa, sb] = [replyData(a), replyData(b)];
      expect(sa.stoppedCount + sb.stoppedCount).toBe(idle.size);
      expect(new Set([...sa.stopped, ...sb.stopped])).toEqual(idle);
      expect([...sa.failed, ...sb.failed]).toEqual([]);
      // Each claim the other replica won shows up as a refused (409) PATCH and a `changed` skip, never as a second stop.
      const refused = h.sim.calls.filter((c) => c.method === 'PATCH' && c.status === 409).length;
      expect(refused).toBe((sa.skipped.changed ?? 0) + (sb.skipped.changed ?? 0));

      // A third tick while the stops are still settling leaves them alone.
      h.sim.resetCalls();
      const c = replyData(await h.send(PING, {}, { source: PING_SOURCE, id: 'tick-2' }).expect(200));
      expect(c.stoppedCount).toBe(0);
      expect(h.sim.calls.filter(isStop)).toEqual([]);
    } finally {
      await h.close();
    }
  }, 120_000);
});

describe('reaper details', () => {
  const clock = new ManualClock(T0);
  let h: Harness;
  const MIN = 60_000;
  const enabled = { 'virtwake.io/enabled': 'true' };
  const ago = (ms: number) => new Date(T0.getTime() - ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

  beforeAll(async () => {
    h = await startHarness({ sim: { clock, stepMs: 5 }, env: { VIRTWAKE_NAMESPACES: '*' }, now: () => clock.now() });
  });
  afterAll(() => h?.close());

  test("'*' lists across namespaces; VMI starts are read the cheaper way; restarted VMs count from their VMI", async () => {
    const add = (ns: string, name: string, annotations: Record<string, string>, startedAgo: number) =>
      h.sim.store.addVM(
        { metadata: { name, namespace: ns, labels: enabled, annotations }, spec: { runStrategy: 'Always' } },
        { running: true, vmiCreatedAt: new Date(T0.getTime() - startedAgo) },
      );
    add(
      'team-a',
      'old',
      { 'virtwake.io/idle-timeout': '30m', 'virtwake.io/last-activity': ago(2 * 60 * MIN) },
      3 * 60 * MIN,
    );
    add(
      'team-b',
      'rebooted',
      { 'virtwake.io/idle-timeout': '30m', 'virtwake.io/last-activity': ago(2 * 60 * MIN) },
      10 * MIN,
    );
    await h.sim.settle();
    h.sim.resetCalls();
    const s = replyData(await h.send(PING, {}, { source: '/anything' }).expect(200));
    expect(s.namespaces).toBe('*');
    expect(s.stopped).toEqual(['team-a/old']);
    expect(s.skipped).toMatchObject({ recentlyStarted: 1 });
    // Two candidates, one page of VMs: one page of VMIs is cheaper than two GETs.
    const lists = h.sim.calls.filter((c) => c.verb === 'list');
    expect(lists.map((l) => l.path)).toEqual([
      '/apis/kubevirt.io/v1/virtualmachines',
      '/apis/kubevirt.io/v1/virtualmachineinstances',
    ]);
    expect(h.sim.calls.filter((c) => c.verb === 'get')).toEqual([]);
    await h.sim.settle();

    // 25 minutes on, the rebooted VM is idle too; as the only candidate its VMI is read by name.
    clock.advance(25 * MIN);
    h.sim.resetCalls();
    const later = replyData(await h.send(PING, {}, { source: '/anything' }).expect(200));
    expect(later.stopped).toEqual(['team-b/rebooted']);
    expect(later.vmiGets).toBe(1);
    expect(h.sim.calls.filter((c) => c.verb === 'list').map((l) => l.resource)).toEqual(['virtualmachines']);
    clock.set(T0);
  });

  test('only pings from VIRTWAKE_REAPER_SOURCE are reaped when it is set', async () => {
    const only = await h.replica({ VIRTWAKE_REAPER_SOURCE: PING_SOURCE });
    h.sim.resetCalls();
    await h.send(PING, {}, { source: '/apis/v1/namespaces/x/pingsources/other', to: only }).expect(202);
    expect(h.sim.calls).toEqual([]);
    const res = await h.send(PING, {}, { source: PING_SOURCE, to: only }).expect(200);
    expect(res.headers['ce-type']).toBe('io.virtwake.reaper.completed');
  });

  test('a stop KubeVirt refuses is reported with its reason, and the claim is given back', async () => {
    h.sim.store.addVM(
      {
        metadata: {
          name: 'refuses',
          namespace: 'team-c',
          labels: enabled,
          annotations: { 'virtwake.io/idle-timeout': '1m' },
        },
        spec: { runStrategy: 'Manual' },
      },
      { running: true, vmiCreatedAt: new Date(T0.getTime() - 10 * MIN) },
    );
    await h.sim.settle();
    h.sim.faults.add({
      method: 'PUT',
      path: 'team-c/virtualmachines/refuses/stop',
      status: 403,
      message: 'denied by a test',
      times: 1,
    });
    const s = replyData(await h.send(PING, {}, { source: PING_SOURCE }).expect(200));
    expect(s.failed).toEqual([
      { vm: 'team-c/refuses', reason: 'Refused', message: expect.stringContaining('denied by a test') },
    ]);
    expect(h.sim.store.getVM('team-c', 'refuses')?.metadata.annotations?.[REAPED_AT]).toBeUndefined();
  });
});
