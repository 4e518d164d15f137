import { Harness, replyData, startHarness } from '../helpers/harness';

// io.virtwake.vm.restore over HTTP, against the simulator's restore controller
// and its one-restore-per-target webhook: fail fast on a running VM, stopFirst
// + startAfter ending Running, one restore per request, every failure's reason.

const TYPE = 'io.virtwake.vm.restore';
const OPT_IN = { 'virtwake.io/enabled': 'true' };
const WAIT = { timeoutSeconds: 60 };
let h: Harness;

beforeAll(async () => {
  h = await startHarness({ sim: { stepMs: 5, snapshotStepMs: 5 } });
});
afterAll(() => h.close());

let n = 0;
/** A VM with one ready virtwake snapshot; returns both names. */
async function vmWithSnapshot(
  opts: { running?: boolean; runStrategy?: string } = {},
): Promise<{ vm: string; snap: string }> {
  const vm = `restore-vm-${++n}`;
  h.sim.store.addVM(
    {
      metadata: { name: vm, namespace: 'default', labels: OPT_IN },
      spec: { runStrategy: opts.runStrategy ?? (opts.running ? 'Always' : 'Halted') },
    },
    { running: opts.running },
  );
  const res = await h.send('io.virtwake.vm.snapshot', { name: vm, wait: WAIT }).expect(200);
  expect(res.headers['ce-type']).toBe('io.virtwake.vm.snapshot.completed');
  return { vm, snap: replyData(res).snapshot.name };
}
const restoresOf = (vm: string) => h.sim.store.listRestores('default').filter((r) => r.spec.target?.name === vm);

describe('a running VM', () => {
  test('without stopFirst fails fast with TargetRunning; nothing is created', async () => {
    const { vm, snap } = await vmWithSnapshot({ running: true });
    const res = await h.send(TYPE, { name: vm, snapshotName: snap, wait: WAIT }).expect(200);
    expect(res.headers['ce-type']).toBe('io.virtwake.vm.restore.failed');
    expect(replyData(res)).toMatchObject({
      outcome: 'failed',
      reason: 'TargetRunning',
      message: expect.stringMatching(
        /has a VirtualMachineInstance \(phase Running\).*stop it first or send stopFirst: true/,
      ),
      status: { printableStatus: 'Running' },
    });
    expect(restoresOf(vm)).toHaveLength(0);
    expect(h.sim.store.getVM('default', vm)?.status?.printableStatus).toBe('Running');
  });

  test('with stopFirst and startAfter: KubeVirt stops it, restores, virtwake starts it; the reply says Running', async () => {
    const { vm, snap } = await vmWithSnapshot({ running: true });
    h.sim.resetCalls();
    const res = await h
      .send(TYPE, { name: vm, snapshotName: snap, stopFirst: true, startAfter: true, wait: WAIT })
      .expect(200);
    expect(res.headers['ce-type']).toBe('io.virtwake.vm.restore.completed');
    const data = replyData(res);
    expect(data).toMatchObject({ outcome: 'completed', status: { printableStatus: 'Running', ready: true } });
    expect(data.restore).toEqual({
      name: expect.stringMatching(new RegExp(`^vw-${vm}-[0-9a-f]{10}$`)),
      complete: true,
    });
    const [r] = restoresOf(vm);
    expect(r.spec.targetReadinessPolicy).toBe('StopTarget');
    expect(r.status?.complete).toBe(true);
    expect(r.metadata.labels).toMatchObject({ 'virtwake.io/vm': vm, 'app.kubernetes.io/managed-by': 'virtwake' });
    expect(h.sim.calls.filter((c) => c.subresource === 'start')).toHaveLength(1);
    expect(h.sim.store.getVM('default', vm)?.status?.printableStatus).toBe('Running');
  });

  test('with stopFirst only: restored and left stopped (KubeVirt keeps the stopped runStrategy)', async () => {
    const { vm, snap } = await vmWithSnapshot({ running: true });
    const res = await h.send(TYPE, { name: vm, snapshotName: snap, stopFirst: true, wait: WAIT }).expect(200);
    expect(res.headers['ce-type']).toBe('io.virtwake.vm.restore.completed');
    expect(replyData(res)).toMatchObject({ restore: { complete: true }, status: { printableStatus: 'Stopped' } });
  });
});

describe('a stopped VM', () => {
  test('restores with FailImmediate and completes', async () => {
    const { vm, snap } = await vmWithSnapshot();
    const res = await h.send(TYPE, { name: vm, snapshotName: snap, wait: WAIT }).expect(200);
    expect(res.headers['ce-type']).toBe('io.virtwake.vm.restore.completed');
    expect(replyData(res)).toMatchObject({ restore: { complete: true }, status: { printableStatus: 'Stopped' } });
    expect(restoresOf(vm)[0].spec.targetReadinessPolicy).toBe('FailImmediate');
  });

  test('startAfter on a Manual VM starts it', async () => {
    const { vm, snap } = await vmWithSnapshot({ runStrategy: 'Manual' });
    const res = await h.send(TYPE, { name: vm, snapshotName: snap, startAfter: true, wait: WAIT }).expect(200);
    expect(res.headers['ce-type']).toBe('io.virtwake.vm.restore.completed');
    expect(replyData(res)).toMatchObject({
      restore: { complete: true },
      status: { printableStatus: 'Running', ready: true },
    });
  });

  test('one event delivered three times creates one restore; the redeliveries check nothing again', async () => {
    const { vm, snap } = await vmWithSnapshot();
    h.sim.resetCalls();
    const replies = [];
    for (let i = 0; i < 3; i++) {
      replies.push(
        await h
          .send(
            TYPE,
            { name: vm, snapshotName: snap, startAfter: true, wait: WAIT },
            { id: 'restore-7', source: '/ops/dr' },
          )
          .expect(200),
      );
    }
    // The VM runs after the first delivery: the others must not answer TargetRunning.
    for (const res of replies) expect(res.headers['ce-type']).toBe('io.virtwake.vm.restore.completed');
    expect(new Set(replies.map((r) => replyData(r).restore.name)).size).toBe(1);
    expect(restoresOf(vm)).toHaveLength(1);
    expect(h.sim.calls.filter((c) => c.verb === 'create' && c.resource === 'virtualmachinerestores')).toHaveLength(1);
  });

  test('not complete in time: accepted/WaitTimeout, with what KubeVirt reports', async () => {
    const { vm, snap } = await vmWithSnapshot();
    h.sim.pauseControllers();
    try {
      const res = await h.send(TYPE, { name: vm, snapshotName: snap, wait: { timeoutSeconds: 1 } }).expect(200);
      expect(res.headers['ce-type']).toBe('io.virtwake.vm.restore.accepted');
      expect(replyData(res)).toMatchObject({
        reason: 'WaitTimeout',
        restore: { complete: false },
        message: expect.stringMatching(/^restore not complete within 1s/),
      });
    } finally {
      h.sim.resumeControllers();
    }
    await h.sim.settle();
  });

  test('dryRun: validated, nothing created', async () => {
    const { vm, snap } = await vmWithSnapshot();
    const res = await h.send(TYPE, { name: vm, snapshotName: snap, dryRun: true }).expect(200);
    expect(replyData(res)).toMatchObject({ outcome: 'accepted', reason: 'DryRun' });
    expect(restoresOf(vm)).toHaveLength(0);
  });
});

describe('every failure has its reason', () => {
  test('a snapshot that does not exist: SnapshotNotFound', async () => {
    const { vm } = await vmWithSnapshot();
    const res = await h.send(TYPE, { name: vm, snapshotName: 'never-taken' }).expect(200);
    expect(replyData(res)).toMatchObject({
      outcome: 'failed',
      reason: 'SnapshotNotFound',
      message: 'VirtualMachineSnapshot default/never-taken does not exist',
    });
  });

  test('a snapshot not ready yet: SnapshotNotReady', async () => {
    const { vm } = await vmWithSnapshot();
    h.sim.store.stallNextSnapshot('default', vm);
    const snap = replyData(await h.send('io.virtwake.vm.snapshot', { name: vm }).expect(200)).snapshot.name;
    const res = await h.send(TYPE, { name: vm, snapshotName: snap }).expect(200);
    expect(replyData(res)).toMatchObject({
      outcome: 'failed',
      reason: 'SnapshotNotReady',
      message: expect.stringContaining('is not ready to use'),
    });
  });

  test('a failed snapshot: SnapshotFailed', async () => {
    const { vm } = await vmWithSnapshot();
    h.sim.store.failNextSnapshot('default', vm, 'VolumeSnapshotClass missing');
    // KubeVirt keeps retrying an error ("In error state") until the failureDeadline, and only then fails it.
    const bad = await h.send('io.virtwake.vm.snapshot', { name: vm, failureDeadline: '3s', wait: WAIT }).expect(200);
    expect(replyData(bad).reason).toBe('SnapshotFailed');
    const res = await h.send(TYPE, { name: vm, snapshotName: replyData(bad).snapshot.name }).expect(200);
    expect(replyData(res)).toMatchObject({
      outcome: 'failed',
      reason: 'SnapshotFailed',
      message: expect.stringContaining('failed and cannot be restored: VolumeSnapshotClass missing'),
    });
  });

  test('a snapshot of another VM: SnapshotOfOtherVM', async () => {
    const a = await vmWithSnapshot();
    const b = await vmWithSnapshot();
    const res = await h.send(TYPE, { name: b.vm, snapshotName: a.snap }).expect(200);
    expect(replyData(res)).toMatchObject({
      outcome: 'failed',
      reason: 'SnapshotOfOtherVM',
      message: expect.stringContaining(`is a snapshot of VM ${a.vm}, not of ${b.vm}`),
    });
  });

  test('a restore already in progress (the VM says so): RestoreInProgress', async () => {
    const { vm, snap } = await vmWithSnapshot();
    h.sim.store.updateVM('default', vm, (v) => {
      v.status = { ...v.status, restoreInProgress: 'someone-elses' };
    });
    const res = await h.send(TYPE, { name: vm, snapshotName: snap }).expect(200);
    expect(replyData(res)).toMatchObject({
      outcome: 'failed',
      reason: 'RestoreInProgress',
      message: 'VirtualMachineRestore "someone-elses" is in progress for VM ' + vm,
    });
  });

  test('a restore already in progress (KubeVirt’s webhook says so): RestoreInProgress', async () => {
    const { vm, snap } = await vmWithSnapshot();
    h.sim.pauseControllers();
    try {
      const first = await h.send(TYPE, { name: vm, snapshotName: snap }, { id: 'first' }).expect(200);
      expect(replyData(first).outcome).toBe('accepted');
      const res = await h.send(TYPE, { name: vm, snapshotName: snap }, { id: 'second' }).expect(200);
      expect(replyData(res)).toMatchObject({
        outcome: 'failed',
        reason: 'RestoreInProgress',
        message: expect.stringMatching(/VirtualMachineRestore "vw-[^"]+" in progress/),
      });
    } finally {
      h.sim.resumeControllers();
    }
    await h.sim.settle();
    expect(restoresOf(vm)).toHaveLength(1);
  });

  test('KubeVirt fails the restore (the VM was started meanwhile): RestoreFailed', async () => {
    const { vm, snap } = await vmWithSnapshot();
    h.sim.pauseControllers();
    try {
      const first = await h.send(TYPE, { name: vm, snapshotName: snap }, { id: 'raced' }).expect(200);
      expect(replyData(first).outcome).toBe('accepted');
      // Someone starts the VM before KubeVirt gets to the restore.
      h.sim.store.deleteVM('default', vm);
      h.sim.store.addVM(
        { metadata: { name: vm, namespace: 'default', labels: OPT_IN }, spec: { runStrategy: 'Always' } },
        { running: true },
      );
    } finally {
      h.sim.resumeControllers();
    }
    // Sent again (same id), the request waits on the restore it made.
    const res = await h.send(TYPE, { name: vm, snapshotName: snap, wait: WAIT }, { id: 'raced' }).expect(200);
    expect(res.headers['ce-type']).toBe('io.virtwake.vm.restore.failed');
    expect(replyData(res)).toMatchObject({
      reason: 'RestoreFailed',
      restore: { complete: false },
      message: expect.stringContaining('Restore target VMI must be powered off before restore operation'),
    });
  });

  test.each<[string, unknown, string[]]>([
    ['a selector', { selector: { matchLabels: { a: 'b' } }, snapshotName: 's' }, ['/name: required']],
    ['no snapshotName', { name: 'x' }, ['/snapshotName: required']],
    [
      'startAfter without wait',
      { name: 'x', snapshotName: 's', startAfter: true },
      ['/: must have property wait when property startAfter is present'],
    ],
  ])('%s is 400 with every failing path', async (_what, data, errors) => {
    const res = await h.send(TYPE, data).expect(400);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.body.errors).toEqual(errors);
  });
});
