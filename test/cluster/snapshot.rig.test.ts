import {
  createVM,
  eventually,
  NS,
  rig,
  send,
  startVirtwake,
  vmiPath,
  vmPath,
  vmRunning,
  type Virtwake,
} from './helpers';

// Snapshots and restores through the real stack: virtwake with the shipped Role's token creates
// VirtualMachineSnapshots and VirtualMachineRestores in etcd through the real RBAC authorizer; the
// rig's snapshot and restore controllers (simulator/rig/snapshots.ts, restores.ts) move them as
// KubeVirt's do, through the real status subresources; the restore's StopTarget and virtwake's
// startAfter go through the aggregator to the rig's virt-api.

const { state, kube } = rig();
let vw: Virtwake;
let n = 0;
const name = (what: string) => `snap-${what}-${++n}`;
const WAIT = { timeoutSeconds: 60 };
const SNAP = `/apis/snapshot.kubevirt.io/v1beta1/namespaces/${NS}`;
const snapPath = (s = '') => `${SNAP}/virtualmachinesnapshots${s ? `/${s}` : ''}`;
const contentPath = (c: string) => `${SNAP}/virtualmachinesnapshotcontents/${c}`;
const restorePath = (r = '') => `${SNAP}/virtualmachinerestores${r ? `/${r}` : ''}`;

beforeAll(async () => {
  vw = await startVirtwake(state);
});
afterAll(() => vw?.stop());

async function snapshotsOf(vm: string): Promise<any[]> {
  const list = await kube.get(snapPath());
  return list.items.filter((s: any) => s.spec.source.name === vm);
}

/** Waits until the VM carries no snapshot or restore lock (KubeVirt releases it a step after completion). */
async function released(vm: string): Promise<any> {
  return eventually(`${vm} released`, async () => {
    const got = await kube.get(vmPath(vm));
    const busy =
      got.status?.snapshotInProgress ||
      got.status?.restoreInProgress ||
      got.metadata.finalizers?.includes('snapshot.kubevirt.io/snapshot-source-protection');
    return busy ? undefined : got;
  });
}

describe('snapshot', () => {
  test('with wait: readyToUse, taken online without a guest agent, as KubeVirt records it', async () => {
    const vm = name('online');
    const created = await createVM(kube, vm, 'Always');
    await vmRunning(kube, vm);
    const res = await send(vw, 'io.virtwake.vm.snapshot', { name: vm, wait: WAIT });
    expect(res.type).toBe('io.virtwake.vm.snapshot.completed');
    expect(res.data).toMatchObject({
      outcome: 'completed',
      message: 'online without a guest agent, crash-consistent',
      snapshot: { phase: 'Succeeded', readyToUse: true, indications: ['NoGuestAgent', 'Online'] },
    });
    const snap = await kube.get(snapPath(res.data.snapshot.name));
    expect(snap.metadata.finalizers).toContain('snapshot.kubevirt.io/vmsnapshot-protection');
    expect(snap.status.sourceUID).toBe(created.metadata.uid);
    expect(snap.status.conditions).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ type: 'Ready', status: 'True', reason: 'Ready' }),
        expect.objectContaining({ type: 'Progressing', status: 'False', reason: 'Operation complete' }),
      ]),
    );
    // The content is its own object, without ownerReferences, holding the VM as it was.
    const content = await kube.get(contentPath(snap.status.virtualMachineSnapshotContentName));
    expect(content.metadata.ownerReferences).toBeUndefined();
    expect(content.status.readyToUse).toBe(true);
    expect(content.spec.source.virtualMachine.spec.template.spec.domain.resources.requests.memory).toBe('64Mi');
    await released(vm);
  });

  test('keep: 2 deletes only virtwake’s older snapshots of that VM, never another’s', async () => {
    const vm = name('keep');
    await createVM(kube, vm, 'Halted');
    // Someone else's snapshot of the same VM, made before virtwake's: retention must leave it alone.
    const foreign = await kube.request('POST', snapPath(), {
      apiVersion: 'snapshot.kubevirt.io/v1beta1',
      kind: 'VirtualMachineSnapshot',
      metadata: { name: `${vm}-by-hand`, namespace: NS },
      spec: { source: { apiGroup: 'kubevirt.io', kind: 'VirtualMachine', name: vm } },
    });
    await eventually('the hand-made snapshot ready', async () =>
      (await kube.get(snapPath(foreign.metadata.name))).status?.readyToUse === true ? true : undefined,
    );
    const taken: string[] = [];
    const contents: string[] = [];
    const replies: any[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await send(vw, 'io.virtwake.vm.snapshot', { name: vm, keep: 2, wait: WAIT });
      expect(res.type).toBe('io.virtwake.vm.snapshot.completed');
      taken.push(res.data.snapshot.name);
      replies.push(res.data);
      if (i === 0) contents.push((await kube.get(snapPath(taken[0]))).status.virtualMachineSnapshotContentName);
    }
    expect(new Set(taken).size).toBe(3);
    expect(replies[0].message).not.toMatch(/deleted/);
    expect(replies[1].message).not.toMatch(/deleted/);
    expect(replies[2].message).toContain(`keep 2: deleted ${taken[0]}`);
    // The deleted one goes once the snapshot controller lets go of its finalizer, and its content with it.
    await eventually(`${taken[0]} gone`, async () =>
      (await snapshotsOf(vm)).some((s) => s.metadata.name === taken[0]) ? undefined : true,
    );
    expect(contents[0]).toMatch(/^vmsnapshot-content-/);
    expect(await kube.get(contentPath(contents[0]))).toBeUndefined();
    const left = (await snapshotsOf(vm)).map((s) => s.metadata.name).sort();
    expect(left).toEqual([foreign.metadata.name, taken[1], taken[2]].sort());
  });

  test('one event delivered twice makes one snapshot', async () => {
    const vm = name('redelivered');
    await createVM(kube, vm, 'Halted');
    const id = `snap-once-${process.pid}`;
    const first = await send(vw, 'io.virtwake.vm.snapshot', { name: vm, wait: WAIT }, id);
    const second = await send(vw, 'io.virtwake.vm.snapshot', { name: vm, wait: WAIT }, id);
    expect(first.type).toBe('io.virtwake.vm.snapshot.completed');
    expect(second.type).toBe('io.virtwake.vm.snapshot.completed');
    expect(second.data.snapshot.name).toBe(first.data.snapshot.name);
    expect((await snapshotsOf(vm)).map((s) => s.metadata.name)).toEqual([first.data.snapshot.name]);
  });

  test('a snapshot deleted by hand releases its content (deletionPolicy unset)', async () => {
    const vm = name('delete');
    await createVM(kube, vm, 'Halted');
    const res = await send(vw, 'io.virtwake.vm.snapshot', { name: vm, wait: WAIT });
    const snap = await kube.get(snapPath(res.data.snapshot.name));
    await kube.request('DELETE', snapPath(snap.metadata.name));
    await eventually('snapshot gone', async () => ((await kube.get(snapPath(snap.metadata.name))) ? undefined : true));
    expect(await kube.get(contentPath(snap.status.virtualMachineSnapshotContentName))).toBeUndefined();
  });
});

describe('restore', () => {
  /** A VM with one ready virtwake snapshot; afterwards its memory is changed, so a restore has something to undo. */
  async function changedAfterSnapshot(runStrategy: string): Promise<{ vm: string; snap: string; uid: string }> {
    const vm = name(`restore-${runStrategy.toLowerCase()}`);
    const created = await createVM(kube, vm, runStrategy);
    if (runStrategy === 'Always') await vmRunning(kube, vm);
    const res = await send(vw, 'io.virtwake.vm.snapshot', { name: vm, wait: WAIT });
    expect(res.type).toBe('io.virtwake.vm.snapshot.completed');
    await released(vm);
    await kube.request(
      'PATCH',
      vmPath(vm),
      { spec: { template: { spec: { domain: { resources: { requests: { memory: '128Mi' } } } } } } },
      'application/merge-patch+json',
    );
    return { vm, snap: res.data.snapshot.name, uid: created.metadata.uid };
  }

  const memoryOf = (vm: any) => vm.spec.template.spec.domain.resources.requests.memory;

  test('a running VM without stopFirst: TargetRunning, and no restore is created', async () => {
    const { vm, snap } = await changedAfterSnapshot('Always');
    const res = await send(vw, 'io.virtwake.vm.restore', { name: vm, snapshotName: snap, wait: WAIT });
    expect(res.data).toMatchObject({ outcome: 'failed', reason: 'TargetRunning' });
    const restores = (await kube.get(restorePath())).items.filter((r: any) => r.spec.target.name === vm);
    expect(restores).toHaveLength(0);
  });

  test('stopFirst + startAfter: KubeVirt stops the VM (StopTarget), restores its spec, virtwake starts it', async () => {
    const { vm, snap, uid } = await changedAfterSnapshot('Always');
    const before = (await kube.get(vmiPath(vm))).metadata.uid;
    const res = await send(vw, 'io.virtwake.vm.restore', {
      name: vm,
      snapshotName: snap,
      stopFirst: true,
      startAfter: true,
      wait: WAIT,
    });
    expect(res.type).toBe('io.virtwake.vm.restore.completed');
    expect(res.data).toMatchObject({
      outcome: 'completed',
      restore: { complete: true },
      status: { printableStatus: 'Running', ready: true },
    });
    const r = await kube.get(restorePath(res.data.restore.name));
    expect(r.spec.targetReadinessPolicy).toBe('StopTarget');
    expect(r.status.complete).toBe(true);
    expect(r.metadata.finalizers).toContain('snapshot.kubevirt.io/vmrestore-protection');
    expect(r.metadata.ownerReferences).toEqual([
      expect.objectContaining({ kind: 'VirtualMachine', name: vm, uid, controller: true }),
    ]);
    const got = await released(vm);
    expect(memoryOf(got)).toBe('64Mi');
    expect(got.spec.runStrategy).toBe('Always');
    expect(got.metadata.annotations['restore.kubevirt.io/lastRestoreUID']).toBe(`${r.metadata.name}-${r.metadata.uid}`);
    const after = await kube.get(vmiPath(vm));
    expect(after.metadata.uid).not.toBe(before);
    expect(after.status.phase).toBe('Running');
  });

  test('a stopped VM: FailImmediate restore completes and the VM stays stopped', async () => {
    const { vm, snap } = await changedAfterSnapshot('Halted');
    const res = await send(vw, 'io.virtwake.vm.restore', { name: vm, snapshotName: snap, wait: WAIT });
    expect(res.type).toBe('io.virtwake.vm.restore.completed');
    expect(res.data).toMatchObject({ restore: { complete: true }, status: { printableStatus: 'Stopped' } });
    expect((await kube.get(restorePath(res.data.restore.name))).spec.targetReadinessPolicy).toBe('FailImmediate');
    const got = await released(vm);
    expect(memoryOf(got)).toBe('64Mi');
    expect(got.spec.runStrategy).toBe('Halted');
    expect(await kube.get(vmiPath(vm))).toBeUndefined();
  });

  test('someone else’s failed restore blocks the VM: RestoreBlocked names it, and virtwake leaves it', async () => {
    const { vm, snap } = await changedAfterSnapshot('Always');
    const byHand = `${vm}-by-hand`;
    await kube.request('POST', restorePath(), {
      apiVersion: 'snapshot.kubevirt.io/v1beta1',
      kind: 'VirtualMachineRestore',
      metadata: { name: byHand, namespace: NS },
      spec: {
        target: { apiGroup: 'kubevirt.io', kind: 'VirtualMachine', name: vm },
        virtualMachineSnapshotName: snap,
        targetReadinessPolicy: 'FailImmediate',
      },
    });
    const failedRestore = await eventually('the hand-made restore failed', async () => {
      const r = await kube.get(restorePath(byHand));
      return r.status?.conditions?.some((c: any) => c.type === 'Failure') ? r : undefined;
    });
    expect(failedRestore.status.complete).toBe(false);
    const stopped = await send(vw, 'io.virtwake.vm.stop', { name: vm, wait: WAIT });
    expect(stopped.type).toBe('io.virtwake.vm.stop.completed');
    const res = await send(vw, 'io.virtwake.vm.restore', { name: vm, snapshotName: snap, wait: WAIT });
    expect(res.data).toMatchObject({ outcome: 'failed', reason: 'RestoreBlocked' });
    expect(res.data.message).toContain(
      `VirtualMachineRestore ${NS}/${byHand} of VM ${vm} failed (Restore target VMI must be powered off before restore operation)`,
    );
    expect(await kube.get(restorePath(byHand))).toBeDefined();
    expect(memoryOf(await kube.get(vmPath(vm)))).toBe('128Mi');
  });

  test('deleting the VM collects the restores it owns', async () => {
    const { vm, snap } = await changedAfterSnapshot('Halted');
    const res = await send(vw, 'io.virtwake.vm.restore', { name: vm, snapshotName: snap, wait: WAIT });
    expect(res.type).toBe('io.virtwake.vm.restore.completed');
    await released(vm);
    await kube.request('DELETE', vmPath(vm));
    await eventually('restore collected', async () =>
      (await kube.get(restorePath(res.data.restore.name))) ? undefined : true,
    );
  });
});
