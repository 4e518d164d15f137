// VirtualMachineSnapshot: admission rules, progress in separate observable steps
// (Succeeded before readyToUse), the source lock, indications for online VMs, injected
// failures, and failureDeadline measured on the simulator clock.
import { Watch } from '@kubernetes/client-node';
import { ManualClock } from '../../simulator';
import { request, startEnv, subresource, type TestEnv } from './helpers';

const clock = new ManualClock(new Date('2031-05-06T07:08:09Z'));
let env: TestEnv;
beforeAll(async () => {
  env = await startEnv({ clock });
});
afterAll(() => env.sim.close());

let seq = 0;
const fresh = (p: string) => `${p}-${++seq}`;
const SNAPS = '/apis/snapshot.kubevirt.io/v1beta1/namespaces/default/virtualmachinesnapshots';

function snapshot(name: string, vm: string, extra: Record<string, unknown> = {}) {
  return {
    apiVersion: 'snapshot.kubevirt.io/v1beta1',
    kind: 'VirtualMachineSnapshot',
    metadata: { name },
    spec: { source: { apiGroup: 'kubevirt.io', kind: 'VirtualMachine', name: vm }, ...extra },
  };
}

test('progress: InProgress (locked) -> Succeeded with creationTime -> readyToUse, as separate watch events', async () => {
  const { sim, kc } = env;
  const vm = fresh('vm');
  sim.store.addVM({ metadata: { name: vm }, spec: { runStrategy: 'Halted' } });
  const name = fresh('snap');
  const seen: Array<{ phase?: string; ready?: boolean; creationTime?: string; locked?: string }> = [];
  const ctl = await new Watch(kc).watch(
    SNAPS,
    { fieldSelector: `metadata.name=${name}` },
    (_t, o: any) => {
      seen.push({
        phase: o.status?.phase,
        ready: o.status?.readyToUse,
        creationTime: o.status?.creationTime,
        locked: sim.store.getVM('default', vm)!.status?.snapshotInProgress,
      });
    },
    () => undefined,
  );
  const created = await request(kc, 'POST', SNAPS, snapshot(name, vm));
  expect(created.status).toBe(201);
  expect(created.json.status).toBeUndefined();
  await sim.settle();
  ctl.abort();
  const phases = seen.map((s) => `${s.phase ?? '-'}/${s.ready ?? '-'}`);
  expect(phases[0]).toBe('-/-');
  expect(phases).toContain('InProgress/false');
  const succeededIdx = phases.indexOf('Succeeded/false');
  const readyIdx = phases.indexOf('Succeeded/true');
  expect(succeededIdx).toBeGreaterThan(0);
  expect(readyIdx).toBeGreaterThan(succeededIdx);
  expect(seen.some((s) => s.phase === 'InProgress' && s.locked === name)).toBe(true);
  expect(seen[succeededIdx].creationTime).toBe('2031-05-06T07:08:09Z');
  const final = sim.store.getSnapshot('default', name)!;
  expect(final.status).toMatchObject({
    phase: 'Succeeded',
    readyToUse: true,
    sourceUID: sim.store.getVM('default', vm)!.metadata.uid,
  });
  expect(final.status!.conditions).toEqual(
    expect.arrayContaining([
      expect.objectContaining({ type: 'Progressing', status: 'False', reason: 'Operation complete' }),
      expect.objectContaining({ type: 'Ready', status: 'True', reason: 'Ready' }),
    ]),
  );
  // Offline source: no indications.
  expect(final.status!.sourceIndications).toBeUndefined();
  expect(sim.store.getVM('default', vm)!.status!.snapshotInProgress).toBeUndefined();
  expect(sim.store.getVM('default', vm)!.metadata.finalizers).not.toContain(
    'snapshot.kubevirt.io/snapshot-source-protection',
  );
  const content = sim.store.getSnapshotContent('default', final.status!.virtualMachineSnapshotContentName!)!;
  expect(content.spec.source.virtualMachine.metadata.name).toBe(vm);
  expect(content.status).toMatchObject({ readyToUse: true });
});

test.each([
  [{ running: true, agentConnected: true }, ['GuestAgent', 'Online']],
  [{ running: true }, ['NoGuestAgent', 'Online']],
  [{ running: true, paused: true }, ['Online', 'Paused']],
])('indications for an online source %j', async (opts, indications) => {
  const { sim, kc } = env;
  const vm = fresh('vm');
  sim.store.addVM({ metadata: { name: vm }, spec: { runStrategy: 'Always' } }, opts);
  const name = fresh('snap');
  expect((await request(kc, 'POST', SNAPS, snapshot(name, vm))).status).toBe(201);
  await sim.settle();
  const s = sim.store.getSnapshot('default', name)!;
  expect(s.status!.indications).toEqual(indications);
  expect(s.status!.sourceIndications!.map((i) => i.indication)).toEqual(indications);
  expect(s.status!.sourceIndications![0].message.length).toBeGreaterThan(20);
});

test('admission: source checks, AlreadyExists, immutable spec; v1alpha1 is served too', async () => {
  const { sim, kc } = env;
  const vm = fresh('vm');
  sim.store.addVM({ metadata: { name: vm } });
  const missing = await request(kc, 'POST', SNAPS, {
    ...snapshot(fresh('s'), vm),
    spec: { source: { kind: 'VirtualMachine', name: vm } },
  });
  expect(missing.status).toBe(422);
  expect(missing.json.message).toBe(
    'admission webhook "virtualmachinesnapshot-validator.snapshot.kubevirt.io" denied the request: missing apiGroup',
  );
  const group = await request(kc, 'POST', SNAPS, {
    ...snapshot(fresh('s'), vm),
    spec: { source: { apiGroup: 'apps', kind: 'VirtualMachine', name: vm } },
  });
  expect(group.json.message).toContain('invalid apiGroup');
  const kind = await request(kc, 'POST', SNAPS, {
    ...snapshot(fresh('s'), vm),
    spec: { source: { apiGroup: 'kubevirt.io', kind: 'VirtualMachineInstance', name: vm } },
  });
  expect(kind.json.message).toContain('invalid kind');
  const name = fresh('s');
  expect((await request(kc, 'POST', SNAPS, snapshot(name, vm))).status).toBe(201);
  const dup = await request(kc, 'POST', SNAPS, snapshot(name, vm));
  expect(dup.status).toBe(409);
  expect(dup.json.message).toBe(`virtualmachinesnapshots.snapshot.kubevirt.io "${name}" already exists`);
  const patch = await request(
    kc,
    'PATCH',
    `${SNAPS}/${name}`,
    { spec: { failureDeadline: '1m' } },
    { 'Content-Type': 'application/merge-patch+json' },
  );
  expect(patch.status).toBe(422);
  expect(patch.json.message).toBe(
    'admission webhook "virtualmachinesnapshot-validator.snapshot.kubevirt.io" denied the request: spec in immutable after creation',
  );
  const labels = await request(
    kc,
    'PATCH',
    `${SNAPS}/${name}`,
    { metadata: { labels: { keep: 'me' } } },
    { 'Content-Type': 'application/merge-patch+json' },
  );
  expect(labels.status).toBe(200);
  const alpha = await request(
    kc,
    'GET',
    `/apis/snapshot.kubevirt.io/v1alpha1/namespaces/default/virtualmachinesnapshots/${name}`,
  );
  expect(alpha.json.apiVersion).toBe('snapshot.kubevirt.io/v1alpha1');
  await sim.settle();
});

// Changed with the KubeVirt-source review: an error keeps the snapshot InProgress ("In error
// state") until its failureDeadline; only then is it Failed (snapshot.go).
test('failNextSnapshot: error "In error state", then phase Failed at the deadline; the source is released', async () => {
  const { sim, kc } = env;
  const vm = fresh('vm');
  sim.store.addVM({ metadata: { name: vm } });
  sim.store.failNextSnapshot('default', vm, 'VolumeSnapshot failed: quota exceeded');
  const name = fresh('snap');
  await request(kc, 'POST', SNAPS, snapshot(name, vm));
  await sim.settle();
  expect(sim.store.getSnapshot('default', name)!.status).toMatchObject({
    phase: 'InProgress',
    error: { message: 'VolumeSnapshot failed: quota exceeded' },
  });
  clock.advance(5 * 60_000 + 1000);
  await sim.settle();
  const s = sim.store.getSnapshot('default', name)!;
  expect(s.status).toMatchObject({
    phase: 'Failed',
    readyToUse: false,
    error: { message: 'VolumeSnapshot failed: quota exceeded' },
  });
  expect(s.status!.conditions).toEqual(
    expect.arrayContaining([
      expect.objectContaining({ type: 'Failure', status: 'True', reason: 'snapshot deadline exceeded' }),
    ]),
  );
  expect(sim.store.getVM('default', vm)!.status!.snapshotInProgress).toBeUndefined();
  // Only the next one fails.
  const next = fresh('snap');
  await request(kc, 'POST', SNAPS, snapshot(next, vm));
  await sim.settle();
  expect(sim.store.getSnapshot('default', next)!.status!.readyToUse).toBe(true);
});

test('a stalled snapshot holds the lock (start of a Halted VM fails) until its failureDeadline passes on the clock', async () => {
  const { sim, kc } = env;
  const vm = fresh('vm');
  sim.store.addVM({ metadata: { name: vm }, spec: { runStrategy: 'Halted' } });
  sim.store.stallNextSnapshot('default', vm);
  const name = fresh('snap');
  await request(kc, 'POST', SNAPS, snapshot(name, vm, { failureDeadline: '2m' }));
  await sim.settle();
  expect(sim.store.getSnapshot('default', name)!.status).toMatchObject({ phase: 'InProgress', readyToUse: false });
  expect(sim.store.getVM('default', vm)!.status!.snapshotInProgress).toBe(name);
  const start = await subresource(kc, 'virtualmachines', vm, 'start');
  expect(start.status).toBe(500);
  expect(start.json.message).toContain(`Cannot update vm running state until snapshot "${name}" completes`);
  // A second snapshot of the same VM waits for the lock.
  const second = fresh('snap');
  await request(kc, 'POST', SNAPS, snapshot(second, vm, { failureDeadline: '0s' }));
  await sim.settle();
  expect(sim.store.getSnapshot('default', second)!.status!.conditions).toEqual(
    expect.arrayContaining([
      expect.objectContaining({
        type: 'Progressing',
        status: 'False',
        reason: `Source not locked snapshot "${name}" in progress`,
      }),
    ]),
  );
  clock.advance(60_000);
  await sim.settle();
  expect(sim.store.getSnapshot('default', name)!.status!.phase).toBe('InProgress');
  clock.advance(61_000);
  await sim.settle();
  const failed = sim.store.getSnapshot('default', name)!;
  expect(failed.status!.phase).toBe('Failed');
  expect(failed.status!.conditions).toEqual(
    expect.arrayContaining([
      expect.objectContaining({ type: 'Failure', status: 'True', reason: 'snapshot deadline exceeded' }),
      expect.objectContaining({ type: 'Progressing', status: 'False', reason: 'Operation failed' }),
    ]),
  );
  // The lock moved on to the second snapshot ("0s" = no deadline), which then completes.
  expect(sim.store.getSnapshot('default', second)!.status).toMatchObject({ phase: 'Succeeded', readyToUse: true });
  expect((await subresource(kc, 'virtualmachines', vm, 'start')).status).toBe(202);
});

test('deleting a snapshot in progress releases the VM', async () => {
  const { sim, kc } = env;
  const vm = fresh('vm');
  sim.store.addVM({ metadata: { name: vm } });
  sim.store.stallNextSnapshot('default', vm);
  const name = fresh('snap');
  await request(kc, 'POST', SNAPS, snapshot(name, vm));
  await sim.settle();
  expect(sim.store.getVM('default', vm)!.status!.snapshotInProgress).toBe(name);
  expect((await request(kc, 'DELETE', `${SNAPS}/${name}`)).status).toBe(200);
  await sim.settle();
  expect(sim.store.getVM('default', vm)!.status!.snapshotInProgress).toBeUndefined();
  expect(sim.store.listSnapshots('default').some((s) => s.metadata.name === name)).toBe(false);
});
