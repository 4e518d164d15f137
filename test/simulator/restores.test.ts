// VirtualMachineRestore: completion on a stopped target (runStrategy kept), the
// targetReadinessPolicy cases for a running target, snapshot readiness, the one-restore-
// per-target admission rule, restoring into a new VM.
import { ManualClock } from '../../simulator';
import { request, startEnv, subresource, type TestEnv } from './helpers';

const clock = new ManualClock(new Date('2032-01-01T00:00:00Z'));
let env: TestEnv;
beforeAll(async () => {
  env = await startEnv({ clock });
});
afterAll(() => env.sim.close());

let seq = 0;
const fresh = (p: string) => `${p}-${++seq}`;
const SNAPS = '/apis/snapshot.kubevirt.io/v1beta1/namespaces/default/virtualmachinesnapshots';
const RESTORES = '/apis/snapshot.kubevirt.io/v1beta1/namespaces/default/virtualmachinerestores';

function restore(name: string, target: string, snapshotName: string, policy?: string) {
  return {
    apiVersion: 'snapshot.kubevirt.io/v1beta1',
    kind: 'VirtualMachineRestore',
    metadata: { name },
    spec: {
      target: { apiGroup: 'kubevirt.io', kind: 'VirtualMachine', name: target },
      virtualMachineSnapshotName: snapshotName,
      ...(policy ? { targetReadinessPolicy: policy } : {}),
    },
  };
}

async function readySnapshot(vm: string): Promise<string> {
  const name = fresh('snap');
  await request(env.kc, 'POST', SNAPS, {
    metadata: { name },
    spec: { source: { apiGroup: 'kubevirt.io', kind: 'VirtualMachine', name: vm } },
  });
  await env.sim.settle();
  expect(env.sim.store.getSnapshot('default', name)!.status!.readyToUse).toBe(true);
  return name;
}

const reasons = (name: string) =>
  Object.fromEntries(
    (env.sim.store.getRestore('default', name)!.status?.conditions ?? []).map((c) => [
      c.type,
      `${c.status} ${c.reason}`,
    ]),
  );

test('restoring a stopped VM completes, keeps it stopped, and marks restoreInProgress while running', async () => {
  const { sim, kc } = env;
  const vm = fresh('vm');
  sim.store.addVM({ metadata: { name: vm }, spec: { runStrategy: 'Always' } }, { running: true });
  const snap = await readySnapshot(vm);
  expect((await subresource(kc, 'virtualmachines', vm, 'stop')).status).toBe(202);
  await sim.settle();
  const seenInProgress: string[] = [];
  const unsubscribe = sim.store.raw.subscribe((e) => {
    const rip = (e.object as any).status?.restoreInProgress;
    if (e.object.metadata.name === vm && rip) seenInProgress.push(rip);
  });
  const name = fresh('restore');
  const created = await request(kc, 'POST', RESTORES, restore(name, vm, snap));
  expect(created.status).toBe(201);
  await sim.settle();
  unsubscribe();
  const r = sim.store.getRestore('default', name)!;
  expect(r.status).toMatchObject({ complete: true, restoreTime: '2032-01-01T00:00:00Z' });
  expect(reasons(name)).toMatchObject({ Progressing: 'False Operation complete', Ready: 'True Operation complete' });
  expect(seenInProgress).toContain(name);
  const after = sim.store.getVM('default', vm)!;
  expect(after.status!.restoreInProgress).toBeUndefined();
  expect(after.spec.runStrategy).toBe('Halted');
  expect(after.status!.printableStatus).toBe('Stopped');
  expect(after.metadata.annotations!['restore.kubevirt.io/lastRestoreUID']).toBe(`${name}-${r.metadata.uid}`);
});

test('WaitGracePeriod (default): waits while the target runs, fails after 5m on the clock', async () => {
  const { sim, kc } = env;
  const vm = fresh('vm');
  sim.store.addVM({ metadata: { name: vm }, spec: { runStrategy: 'Always' } }, { running: true });
  const snap = await readySnapshot(vm);
  const name = fresh('restore');
  await request(kc, 'POST', RESTORES, restore(name, vm, snap));
  await sim.settle();
  expect(reasons(name).Progressing).toBe(
    'False Waiting for target VM to be powered off. Please stop the restore target to proceed with restore, or the operation will fail after 5m0s',
  );
  clock.advance(5 * 60_000 + 1000);
  await sim.settle();
  expect(reasons(name).Failure).toBe(
    'True Restore target failed to be ready within 5m0s. Please power off the target VM before attempting restore',
  );
  expect(sim.store.getRestore('default', name)!.status!.complete).toBe(false);
  // A failed restore never completes, so it keeps blocking its target.
  const again = await request(kc, 'POST', RESTORES, restore(fresh('restore'), vm, snap));
  expect(again.status).toBe(422);
  expect(again.json.message).toBe(
    `admission webhook "virtualmachinerestore-validator.snapshot.kubevirt.io" denied the request: VirtualMachineRestore "${name}" in progress`,
  );
});

test('StopTarget stops the VM through the stop subresource semantics, then restores', async () => {
  const { sim, kc } = env;
  const vm = fresh('vm');
  sim.store.addVM({ metadata: { name: vm }, spec: { runStrategy: 'Always' } }, { running: true });
  const snap = await readySnapshot(vm);
  const name = fresh('restore');
  await request(kc, 'POST', RESTORES, restore(name, vm, snap, 'StopTarget'));
  await sim.settle();
  expect(sim.store.getRestore('default', name)!.status!.complete).toBe(true);
  expect(sim.store.getVMI('default', vm)).toBeUndefined();
  expect(sim.store.getVM('default', vm)!.spec.runStrategy).toBe('Halted');
});

test('FailImmediate fails at once; WaitEventually waits and proceeds once the VM is stopped', async () => {
  const { sim, kc } = env;
  const vm = fresh('vm');
  sim.store.addVM({ metadata: { name: vm }, spec: { runStrategy: 'Manual' } }, { running: true });
  const snap = await readySnapshot(vm);
  const failing = fresh('restore');
  await request(kc, 'POST', RESTORES, restore(failing, vm, snap, 'FailImmediate'));
  await sim.settle();
  expect(reasons(failing).Failure).toBe('True Restore target VMI must be powered off before restore operation');

  const vm2 = fresh('vm');
  sim.store.addVM({ metadata: { name: vm2 }, spec: { runStrategy: 'Manual' } }, { running: true });
  const snap2 = await readySnapshot(vm2);
  const waiting = fresh('restore');
  await request(kc, 'POST', RESTORES, restore(waiting, vm2, snap2, 'WaitEventually'));
  await sim.settle();
  clock.advance(60 * 60_000);
  await sim.settle();
  expect(reasons(waiting).Progressing).toBe(
    'False Waiting for target VM to be powered off. Please stop the restore target to proceed with restore',
  );
  expect((await subresource(kc, 'virtualmachines', vm2, 'stop')).status).toBe(202);
  await sim.settle();
  expect(sim.store.getRestore('default', waiting)!.status!.complete).toBe(true);
  expect(sim.store.getVM('default', vm2)!.spec.runStrategy).toBe('Manual');
});

test('a missing or unready snapshot is reported and waited for, not failed', async () => {
  const { sim, kc } = env;
  const vm = fresh('vm');
  sim.store.addVM({ metadata: { name: vm } });
  const name = fresh('restore');
  await request(kc, 'POST', RESTORES, restore(name, vm, 'later'));
  await sim.settle();
  expect(reasons(name).Progressing).toBe('False VMSnapshot default/later does not exist');
  await request(kc, 'POST', SNAPS, {
    metadata: { name: 'later' },
    spec: { source: { apiGroup: 'kubevirt.io', kind: 'VirtualMachine', name: vm } },
  });
  await sim.settle();
  expect(sim.store.getRestore('default', name)!.status!.complete).toBe(true);
});

test('admission: target checks and immutable spec', async () => {
  const { kc } = env;
  const bad = await request(kc, 'POST', RESTORES, {
    metadata: { name: fresh('r') },
    spec: { target: { apiGroup: 'kubevirt.io', kind: 'Pod', name: 'x' }, virtualMachineSnapshotName: 's' },
  });
  expect(bad.status).toBe(422);
  expect(bad.json.message).toContain('invalid kind');
  const name = fresh('r');
  await request(kc, 'POST', RESTORES, restore(name, fresh('target'), 'whatever'));
  const patch = await request(
    kc,
    'PATCH',
    `${RESTORES}/${name}`,
    { spec: { virtualMachineSnapshotName: 'other' } },
    { 'Content-Type': 'application/merge-patch+json' },
  );
  expect(patch.status).toBe(422);
  expect(patch.json.message).toContain('spec in immutable after creation');
});

test('restoring into a VM that does not exist creates it Halted', async () => {
  const { sim, kc } = env;
  const vm = fresh('vm');
  sim.store.addVM({ metadata: { name: vm, labels: { app: 'x' } }, spec: { runStrategy: 'Always' } }, { running: true });
  const snap = await readySnapshot(vm);
  const clone = fresh('clone');
  const name = fresh('restore');
  await request(kc, 'POST', RESTORES, restore(name, clone, snap));
  await sim.settle();
  expect(sim.store.getRestore('default', name)!.status!.complete).toBe(true);
  const created = sim.store.getVM('default', clone)!;
  expect(created.spec.runStrategy).toBe('Halted');
  expect(created.metadata.labels).toEqual({ app: 'x' });
  expect(created.status!.printableStatus).toBe('Stopped');
  // An existing VM that is not the snapshot's source is refused.
  const other = fresh('vm');
  sim.store.addVM({ metadata: { name: other } });
  const refused = fresh('restore');
  await request(kc, 'POST', RESTORES, restore(refused, other, snap));
  await sim.settle();
  expect(reasons(refused).Progressing).toBe(
    'False restore source and restore target are different but restore target already exists',
  );
});
