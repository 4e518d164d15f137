import { ManualClock } from '../../simulator';
import { Harness, replyData, startHarness } from '../helpers/harness';

// io.virtwake.vm.snapshot over HTTP, against the simulator's snapshot
// controller: one snapshot per request however often it is delivered, waiting
// for readyToUse with the indications in the reply, retention, and every
// failure with its reason.

const TYPE = 'io.virtwake.vm.snapshot';
const OPT_IN = { 'virtwake.io/enabled': 'true' };
const WAIT = { timeoutSeconds: 60 };
let h: Harness;

beforeAll(async () => {
  h = await startHarness({ sim: { stepMs: 5, snapshotStepMs: 5 } });
});
afterAll(() => h.close());

let n = 0;
function addVM(
  opts: { running?: boolean; paused?: boolean; agentConnected?: boolean; labels?: Record<string, string> } = {},
): string {
  const name = `snap-vm-${++n}`;
  const { labels, ...state } = opts;
  h.sim.store.addVM(
    {
      metadata: { name, namespace: 'default', labels: { ...OPT_IN, ...labels } },
      spec: { runStrategy: state.running || state.paused ? 'Always' : 'Halted' },
    },
    state,
  );
  return name;
}
const snapshotsOf = (vm: string) => h.sim.store.listSnapshots('default').filter((s) => s.spec.source?.name === vm);
const creates = (resource: string) =>
  h.sim.calls.filter((c) => c.verb === 'create' && c.resource === resource && !c.dryRun);

describe('idempotency (contract §6)', () => {
  test('one event delivered three times creates exactly one snapshot', async () => {
    const vm = addVM();
    h.sim.resetCalls();
    const names = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const res = await h.send(TYPE, { name: vm }, { id: 'backup-42', source: '/ops/nightly' }).expect(200);
      expect(res.headers['ce-type']).toMatch(/^io\.virtwake\.vm\.snapshot\.(accepted|completed)$/);
      names.add(replyData(res).snapshot.name);
    }
    expect(names.size).toBe(1);
    expect(snapshotsOf(vm).map((s) => s.metadata.name)).toEqual([...names]);
    expect(creates('virtualmachinesnapshots')).toHaveLength(1);
  });

  test('three deliveries at once, to two replicas, still create one: the losers adopt the winner’s', async () => {
    const vm = addVM();
    const other = await h.replica();
    await h.send(TYPE, { name: vm, dryRun: true }, { to: other }).expect(200); // the replica's connection is up
    // Slow reads of the snapshot, so every delivery reads "not there" and tries to create it.
    const slow = h.sim.faults.add({ method: 'GET', path: /virtualmachinesnapshots\/vw-/, delayMs: 300 });
    h.sim.resetCalls();
    const send = (to?: typeof other) =>
      h.send(TYPE, { name: vm, wait: WAIT }, { id: 'burst-1', source: '/ops/nightly', to }).expect(200);
    const replies = await Promise.all([send(), send(other), send()]).finally(() => h.sim.faults.remove(slow));
    for (const res of replies) expect(res.headers['ce-type']).toBe('io.virtwake.vm.snapshot.completed');
    expect(new Set(replies.map((r) => replyData(r).snapshot.name)).size).toBe(1);
    expect(snapshotsOf(vm)).toHaveLength(1);
    const statuses = creates('virtualmachinesnapshots').map((c) => c.status);
    expect(statuses.filter((s) => s === 201)).toHaveLength(1);
    // The losers lost a race: on the create (AlreadyExists), or, since the request ledger, already on
    // the claim before it (a resourceVersion conflict on the VM), after which they found the snapshot.
    const lost = h.sim.calls.filter(
      (c) => c.status === 409 && (c.resource === 'virtualmachinesnapshots' || c.resource === 'virtualmachines'),
    );
    expect(lost.length).toBeGreaterThan(0);
  });

  test('the snapshot is labelled with the VM and the request, and annotated with the event', async () => {
    const vm = addVM();
    const res = await h.send(TYPE, { name: vm }, { id: 'label-1', source: '/ops/labels' }).expect(200);
    const s = h.sim.store.getSnapshot('default', replyData(res).snapshot.name)!;
    expect(s.metadata.name).toMatch(new RegExp(`^vw-${vm}-[0-9a-f]{10}$`));
    expect(s.metadata.labels).toMatchObject({
      'virtwake.io/vm': vm,
      'virtwake.io/request': expect.stringMatching(/^[0-9a-f]{20}$/),
      'app.kubernetes.io/managed-by': 'virtwake',
    });
    expect(s.metadata.annotations).toMatchObject({
      'virtwake.io/request-id': 'label-1',
      'virtwake.io/request-source': '/ops/labels',
    });
  });

  test('a snapshotName already used by another request is NameInUse, and nothing else happens', async () => {
    const vm = addVM();
    await h.send(TYPE, { name: vm, snapshotName: `${vm}-golden` }, { id: 'first' }).expect(200);
    const res = await h.send(TYPE, { name: vm, snapshotName: `${vm}-golden` }, { id: 'second' }).expect(200);
    expect(res.headers['ce-type']).toBe('io.virtwake.vm.snapshot.failed');
    expect(replyData(res)).toMatchObject({
      outcome: 'failed',
      reason: 'NameInUse',
      message: expect.stringContaining(`${vm}-golden already exists`),
    });
    expect(snapshotsOf(vm)).toHaveLength(1);
  });

  test('a transient API failure on create is retried inside the request: still one snapshot', async () => {
    const vm = addVM();
    h.sim.faults.add({
      method: 'POST',
      path: /virtualmachinesnapshots/,
      status: 500,
      message: 'etcdserver: request timed out',
      times: 1,
    });
    const res = await h.send(TYPE, { name: vm, wait: WAIT }).expect(200);
    expect(res.headers['ce-type']).toBe('io.virtwake.vm.snapshot.completed');
    expect(snapshotsOf(vm)).toHaveLength(1);
  });

  test('an API that stays down is 503 for Knative to redeliver; the redelivery makes the one snapshot', async () => {
    const vm = addVM();
    const fault = h.sim.faults.add({
      method: 'POST',
      path: /virtualmachinesnapshots/,
      status: 503,
      message: 'unavailable',
    });
    const down = await h.send(TYPE, { name: vm }, { id: 'outage-1' }).expect(503);
    expect(down.headers['retry-after']).toBeDefined();
    h.sim.faults.remove(fault);
    await h.send(TYPE, { name: vm }, { id: 'outage-1' }).expect(200);
    expect(snapshotsOf(vm)).toHaveLength(1);
  });
});

describe('selector', () => {
  test('snapshots every matching VM once, however often the event comes', async () => {
    const group = { 'snap-group': 'g1' };
    const vms = [addVM({ labels: group }), addVM({ labels: group })];
    addVM(); // not in the group
    for (let i = 0; i < 2; i++) {
      const res = await h
        .send(TYPE, { selector: { matchLabels: group }, keep: 1, wait: WAIT }, { id: 'group-1' })
        .expect(200);
      expect(res.headers['ce-type']).toBe('io.virtwake.vm.snapshot.completed');
      expect(replyData(res)).toMatchObject({
        matched: 2,
        results: vms.map((name) => ({ name, outcome: 'completed' })),
      });
    }
    for (const vm of vms) expect(snapshotsOf(vm)).toHaveLength(1);
  });
});

describe('wait: readyToUse, with the indications in the reply', () => {
  test.each<[string, Parameters<typeof addVM>[0], string[], string]>([
    ['a stopped VM', {}, [], 'taken while the VM was stopped'],
    [
      'a running VM with its guest agent',
      { running: true, agentConnected: true },
      ['GuestAgent', 'Online'],
      'online, filesystems frozen by the guest agent',
    ],
    [
      'a running VM without guest agent',
      { running: true },
      ['NoGuestAgent', 'Online'],
      'online without a guest agent, crash-consistent',
    ],
    ['a paused VM', { paused: true }, ['Online', 'Paused'], 'online while paused, crash-consistent'],
  ])('%s', async (_what, state, indications, message) => {
    const vm = addVM(state);
    const res = await h.send(TYPE, { name: vm, wait: WAIT }).expect(200);
    expect(res.headers['ce-type']).toBe('io.virtwake.vm.snapshot.completed');
    const data = replyData(res);
    expect(data).toMatchObject({ name: vm, action: 'snapshot', outcome: 'completed', message });
    expect(data.snapshot).toEqual({
      name: expect.any(String),
      phase: 'Succeeded',
      readyToUse: true,
      indications: expect.arrayContaining(indications),
    });
    expect(data.snapshot.indications).toHaveLength(indications.length);
    expect(h.sim.store.getSnapshot('default', data.snapshot.name)?.status?.readyToUse).toBe(true);
  });

  test('without wait the reply is accepted, with the snapshot’s name', async () => {
    const vm = addVM();
    const res = await h.send(TYPE, { name: vm }).expect(200);
    expect(res.headers['ce-type']).toBe('io.virtwake.vm.snapshot.accepted');
    expect(replyData(res).snapshot.name).toMatch(/^vw-/);
  });

  test('a snapshot that is not ready in time is accepted/WaitTimeout, saying where it stands', async () => {
    const vm = addVM();
    h.sim.store.stallNextSnapshot('default', vm);
    const res = await h.send(TYPE, { name: vm, wait: { timeoutSeconds: 1 } }).expect(200);
    expect(res.headers['ce-type']).toBe('io.virtwake.vm.snapshot.accepted');
    expect(replyData(res)).toMatchObject({
      reason: 'WaitTimeout',
      snapshot: { phase: 'InProgress', readyToUse: false },
      message: 'not ready within 1s (phase InProgress; KubeVirt: Source locked and operation in progress)',
    });
  });

  test('dryRun: KubeVirt validates, nothing is created', async () => {
    const vm = addVM();
    const res = await h.send(TYPE, { name: vm, dryRun: true }).expect(200);
    expect(replyData(res)).toMatchObject({ outcome: 'accepted', reason: 'DryRun' });
    expect(snapshotsOf(vm)).toHaveLength(0);
  });
});

describe('failures and their reasons', () => {
  test('a snapshot KubeVirt fails is SnapshotFailed, with its error', async () => {
    const vm = addVM();
    h.sim.store.failNextSnapshot('default', vm, 'Failed to create VolumeSnapshot: quota exceeded');
    // KubeVirt keeps retrying an error ("In error state") until the failureDeadline, and only then fails it.
    const res = await h.send(TYPE, { name: vm, failureDeadline: '3s', wait: WAIT }).expect(200);
    expect(res.headers['ce-type']).toBe('io.virtwake.vm.snapshot.failed');
    expect(replyData(res)).toMatchObject({
      outcome: 'failed',
      reason: 'SnapshotFailed',
      snapshot: { phase: 'Failed', readyToUse: false },
      message: expect.stringContaining('Failed to create VolumeSnapshot: quota exceeded'),
    });
  });

  test('a VM that does not exist is NotFound', async () => {
    const res = await h.send(TYPE, { name: 'no-such-vm' }).expect(200);
    expect(replyData(res)).toMatchObject({ outcome: 'failed', reason: 'NotFound' });
    expect(snapshotsOf('no-such-vm')).toHaveLength(0);
  });

  test('a VM that has not opted in is 403 and nothing is created', async () => {
    const vm = addVM({ labels: { 'virtwake.io/enabled': 'false' } });
    const res = await h.send(TYPE, { name: vm }).expect(403);
    expect(res.body.detail).toMatch(/virtwake.io\/enabled=true is missing/);
    expect(snapshotsOf(vm)).toHaveLength(0);
  });

  test.each<[string, unknown, string[]]>([
    [
      'snapshotName with a selector',
      { selector: { matchLabels: { a: 'b' } }, snapshotName: 'x' },
      ['/: must have property name when property snapshotName is present'],
    ],
    ['keep 0', { name: 'x', keep: 0 }, ['/keep: must be >= 1']],
    [
      'a failureDeadline without unit',
      { name: 'x', failureDeadline: '300' },
      [expect.stringMatching(/^\/failureDeadline: "300" does not match/)],
    ],
  ])('%s is 400 with every failing path', async (_what, data, errors) => {
    const res = await h.send(TYPE, data).expect(400);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.body.errors).toEqual(errors);
  });
});

describe('keep: retention of virtwake’s snapshots', () => {
  test('keep: 2 after five snapshots leaves the two newest; snapshots virtwake did not make, or of other VMs, stay', async () => {
    const vm = addVM();
    const neighbour = addVM();
    await h.send(TYPE, { name: neighbour, wait: WAIT }).expect(200);
    // Made by hand (kubectl), even carrying the VM label: not virtwake's to delete.
    await h.app.runtime.kubevirt.create('virtualmachinesnapshots', 'default', {
      apiVersion: 'snapshot.kubevirt.io/v1beta1',
      kind: 'VirtualMachineSnapshot',
      metadata: { name: `${vm}-by-hand`, labels: { 'virtwake.io/vm': vm } },
      spec: { source: { apiGroup: 'kubevirt.io', kind: 'VirtualMachine', name: vm } },
    });
    await h.sim.settle();
    const made: string[] = [];
    let last: Record<string, any> = {};
    for (let i = 1; i <= 5; i++) {
      const res = await h.send(TYPE, { name: vm, keep: 2, wait: WAIT }, { id: `keep-${i}` }).expect(200);
      last = replyData(res);
      expect(last.outcome).toBe('completed');
      made.push(last.snapshot.name);
    }
    // A deleted snapshot keeps KubeVirt's finalizer until its controller's next step.
    await h.sim.settle();
    expect(
      snapshotsOf(vm)
        .map((s) => s.metadata.name)
        .sort(),
    ).toEqual([`${vm}-by-hand`, ...made.slice(3)].sort());
    expect(last.message).toBe(`taken while the VM was stopped; keep 2: deleted ${made[2]}`);
    expect(snapshotsOf(neighbour)).toHaveLength(1);
  });

  test('without wait, retention counts only snapshots already ready: N ready ones always remain', async () => {
    const vm = addVM();
    for (let i = 1; i <= 3; i++) await h.send(TYPE, { name: vm, wait: WAIT }, { id: `prior-${i}` }).expect(200);
    const res = await h.send(TYPE, { name: vm, keep: 2 }, { id: 'no-wait' }).expect(200);
    expect(res.headers['ce-type']).toBe('io.virtwake.vm.snapshot.accepted');
    expect(replyData(res).message).toMatch(/^keep 2: deleted vw-/);
    await h.sim.settle();
    expect(snapshotsOf(vm).filter((s) => s.status?.readyToUse)).toHaveLength(3);
  });
});

describe('failureDeadline, on the simulator’s clock', () => {
  let clocked: Harness;
  const clock = new ManualClock(new Date('2025-06-01T00:00:00Z'));
  beforeAll(async () => {
    clocked = await startHarness({ sim: { stepMs: 5, snapshotStepMs: 5, clock } });
  });
  afterAll(() => clocked.close());

  test('a snapshot stuck past its failureDeadline is DeadlineExceeded', async () => {
    clocked.sim.store.addVM({
      metadata: { name: 'slow', namespace: 'default', labels: OPT_IN },
      spec: { runStrategy: 'Halted' },
    });
    clocked.sim.store.stallNextSnapshot('default', 'slow');
    const reply = clocked.send(TYPE, { name: 'slow', failureDeadline: '2m', wait: WAIT }).then((r) => r);
    // Move time only once the snapshot exists and is under way.
    while (
      clocked.sim.store.listSnapshots('default').find((s) => s.spec.source?.name === 'slow')?.status?.phase !==
      'InProgress'
    ) {
      await new Promise((r) => setTimeout(r, 10));
    }
    clock.advance(3 * 60_000);
    const res = await reply;
    expect(res.status).toBe(200);
    expect(res.headers['ce-type']).toBe('io.virtwake.vm.snapshot.failed');
    expect(replyData(res)).toMatchObject({
      reason: 'DeadlineExceeded',
      snapshot: { phase: 'Failed' },
      message: expect.stringContaining('snapshot deadline exceeded'),
    });
    expect(clocked.sim.store.listSnapshots('default')[0].spec.failureDeadline).toBe('2m');
  });
});
