// The behaviours a real KubeVirt shows that virtwake must cope with, one test per simulator
// rule, over HTTP: Stopping for the grace period, the full printableStatus order, start-failure
// backoff, guests that listen late, virt-api's concurrent-change 500, snapshots in error state,
// restores that fail or wait forever, webhook 422s on invalid specs, and a cluster without the
// snapshot API. Time is the simulator's manual clock.
import net from 'node:net';
import { ManualClock, seedDemo, seedDemoGuest } from '../../simulator';
import { request, startEnv, subresource, vmPath, type TestEnv } from './helpers';

const T0 = new Date('2031-05-06T07:08:09Z');
let clock: ManualClock;
let env: TestEnv;
beforeAll(async () => {
  clock = new ManualClock(T0);
  env = await startEnv({ clock });
});
afterAll(() => env.sim.close());

let seq = 0;
const fresh = (p: string) => `${p}-${++seq}`;
const SNAPS = '/apis/snapshot.kubevirt.io/v1beta1/namespaces/default/virtualmachinesnapshots';
const RESTORES = '/apis/snapshot.kubevirt.io/v1beta1/namespaces/default/virtualmachinerestores';

function template(name: string, spec: Record<string, unknown> = {}) {
  return { metadata: { labels: { 'kubevirt.io/vm': name } }, spec: { domain: { devices: {} }, ...spec } };
}

async function getVM(name: string) {
  const res = await request(env.kc, 'GET', vmPath('default', name));
  expect(res.status).toBe(200);
  return res.json;
}

async function printable(name: string): Promise<string> {
  await env.sim.settle();
  return (await getVM(name)).status?.printableStatus;
}

function connects(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

async function readySnapshot(vm: string, snap: string) {
  const res = await request(env.kc, 'POST', SNAPS, {
    metadata: { name: snap },
    spec: { source: { apiGroup: 'kubevirt.io', kind: 'VirtualMachine', name: vm } },
  });
  expect(res.status).toBe(201);
  await env.sim.settle();
  expect(env.sim.store.getSnapshot('default', snap)!.status!.readyToUse).toBe(true);
}

function restoreOf(vm: string, snap: string, name: string, policy?: string) {
  return request(env.kc, 'POST', RESTORES, {
    metadata: { name },
    spec: {
      target: { apiGroup: 'kubevirt.io', kind: 'VirtualMachine', name: vm },
      virtualMachineSnapshotName: snap,
      ...(policy ? { targetReadinessPolicy: policy } : {}),
    },
  });
}

describe('Stopping lasts the VMI grace period (H1, S3)', () => {
  test('a start during Stopping is "VM is already running" and the VM still ends Stopped', async () => {
    const { sim, kc } = env;
    const name = fresh('grace');
    sim.store.addVM(
      {
        metadata: { name },
        spec: { runStrategy: 'Always', template: template(name, { terminationGracePeriodSeconds: 120 }) },
      },
      { running: true },
    );
    expect((await subresource(kc, 'virtualmachines', name, 'stop')).status).toBe(202);
    expect(await printable(name)).toBe('Stopping');
    const start = await subresource(kc, 'virtualmachines', name, 'start');
    expect(start.status).toBe(409);
    expect(start.json.message).toBe(
      `Operation cannot be fulfilled on virtualmachine.kubevirt.io "${name}": VM is already running`,
    );
    clock.advance(119_000);
    expect(await printable(name)).toBe('Stopping');
    clock.advance(2_000);
    expect(await printable(name)).toBe('Stopped');
    const vm = await getVM(name);
    expect(vm.spec.runStrategy).toBe('Halted');
    expect(vm.status.created).toBe(false);
  });

  test('an unset grace period means 30 s, and stays unset in the VMI', async () => {
    const { sim, kc } = env;
    const name = fresh('grace30');
    sim.store.addVM(
      { metadata: { name }, spec: { runStrategy: 'Always', template: template(name) } },
      { running: true },
    );
    expect(sim.store.getVMI('default', name)!.spec.terminationGracePeriodSeconds).toBeUndefined();
    expect((await subresource(kc, 'virtualmachines', name, 'stop')).status).toBe(202);
    expect(await printable(name)).toBe('Stopping');
    clock.advance(29_000);
    expect(await printable(name)).toBe('Stopping');
    clock.advance(2_000);
    expect(await printable(name)).toBe('Stopped');
  });

  test('a paused VM stops only after the grace period too, and a shorter stop gracePeriod cuts it', async () => {
    const { sim, kc } = env;
    const name = fresh('paused-stop');
    sim.store.addVM(
      {
        metadata: { name },
        spec: { runStrategy: 'Always', template: template(name, { terminationGracePeriodSeconds: 60 }) },
      },
      { paused: true },
    );
    expect((await subresource(kc, 'virtualmachines', name, 'stop')).status).toBe(202);
    expect(await printable(name)).toBe('Stopping');
    clock.advance(10_000);
    expect(await printable(name)).toBe('Stopping');
    // Halted with a live VMI: a shorter gracePeriod is accepted and rewrites the VMI's grace.
    expect((await subresource(kc, 'virtualmachines', name, 'stop', { gracePeriod: 5 })).status).toBe(202);
    clock.advance(0);
    expect(await printable(name)).toBe('Stopped');
  });
});

describe('printableStatus in KubeVirt order (S1)', () => {
  test('Migrating comes before Running; the endpoint stays ready (M3)', async () => {
    const { sim } = env;
    const name = fresh('migr');
    sim.store.addVM({ metadata: { name }, spec: { runStrategy: 'Always' } }, { running: true });
    sim.store.addService('default', name, { vmName: name, port: 80, upstreamPort: 1 });
    sim.store.setMigrating('default', name, true);
    expect(await printable(name)).toBe('Migrating');
    expect((await getVM(name)).status.ready).toBe(true);
    expect(sim.store.getEndpointSlice('default', name)!.endpoints[0].conditions).toMatchObject({ ready: true });
    sim.store.setMigrating('default', name, false);
    expect(await printable(name)).toBe('Running');
    expect(sim.store.getVMI('default', name)!.status.migrationState).toMatchObject({ completed: true });
  });

  test('a Halted VM whose DataVolume imports shows Provisioning; start is accepted and runs it once imported (M4)', async () => {
    const { sim, kc } = env;
    const name = fresh('prov');
    sim.store.addVM({ metadata: { name }, spec: { runStrategy: 'Halted' } });
    sim.store.setVolumeState('default', name, 'Provisioning');
    expect(await printable(name)).toBe('Provisioning');
    expect((await subresource(kc, 'virtualmachines', name, 'start')).status).toBe(202);
    expect(await printable(name)).toBe('Provisioning');
    expect(sim.store.getVMI('default', name)).toBeUndefined();
    expect((await getVM(name)).spec.runStrategy).toBe('Always');
    sim.store.setVolumeState('default', name, undefined);
    expect(await printable(name)).toBe('Running');
  });

  test('a stopped VM with a failed DataVolume shows DataVolumeError, never Stopped (L3)', async () => {
    const { sim } = env;
    const name = fresh('dverr');
    sim.store.addVM({ metadata: { name }, spec: { runStrategy: 'Halted' } });
    sim.store.setVolumeState('default', name, 'DataVolumeError');
    expect(await printable(name)).toBe('DataVolumeError');
    expect((await getVM(name)).status.created).toBe(false);
  });

  test('an unbound WaitForFirstConsumer volume holds the VMI Pending as WaitingForVolumeBinding', async () => {
    const { sim, kc } = env;
    const name = fresh('wffc');
    sim.store.addVM({ metadata: { name }, spec: { runStrategy: 'Halted' } });
    sim.store.setVolumeState('default', name, 'WaitingForVolumeBinding');
    expect(await printable(name)).toBe('Stopped');
    expect((await subresource(kc, 'virtualmachines', name, 'start')).status).toBe(202);
    expect(await printable(name)).toBe('WaitingForVolumeBinding');
    expect(sim.store.getVMI('default', name)!.status.phase).toBe('Pending');
    sim.store.setVolumeState('default', name, undefined);
    expect(await printable(name)).toBe('Running');
  });

  test('ErrorUnschedulable: start is "VM is already running", and so is a paused start of a running VM (M1)', async () => {
    const { sim, kc } = env;
    const name = fresh('unsched');
    sim.store.addVM({ metadata: { name }, spec: { runStrategy: 'Always' } }, { vmiPhase: 'Scheduling' });
    sim.store.setCondition('default', name, { type: 'PodScheduled', status: 'False', reason: 'Unschedulable' });
    sim.store.reconcile('default', name);
    expect(await printable(name)).toBe('ErrorUnschedulable');
    const again = await subresource(kc, 'virtualmachines', name, 'start');
    expect([again.status, again.json.message]).toEqual([
      409,
      `Operation cannot be fulfilled on virtualmachine.kubevirt.io "${name}": VM is already running`,
    ]);
    const run = fresh('run');
    sim.store.addVM({ metadata: { name: run }, spec: { runStrategy: 'Manual' } }, { running: true });
    const paused = await subresource(kc, 'virtualmachines', run, 'start', { paused: true });
    expect(paused.status).toBe(409);
    expect(paused.json.message).toMatch(/VM is already running$/);
  });

  test('an Always VM without a VMI is Stopped, not Starting, until the controller creates one (S2)', async () => {
    const { sim } = env;
    const name = fresh('lag');
    sim.store.addVM({ metadata: { name }, spec: { runStrategy: 'Always' } });
    expect(sim.store.getVM('default', name)!.status!.printableStatus).toBe('Stopped');
    sim.store.reconcile('default', name);
    expect(await printable(name)).toBe('Running');
  });

  test('a VMI that fails before running puts the VM in CrashLoopBackOff until retryAfter (S2)', async () => {
    const { sim, kc } = env;
    const name = fresh('crash');
    sim.store.addVM({ metadata: { name }, spec: { runStrategy: 'Always' } }, { vmiPhase: 'Scheduled' });
    const first = sim.store.getVMI('default', name)!.metadata.uid;
    sim.store.setVMIPhase('default', name, 'Failed');
    expect(await printable(name)).toBe('CrashLoopBackOff');
    const vm = await getVM(name);
    expect(vm.status.startFailure).toMatchObject({ consecutiveFailCount: 1, lastFailedVMIUID: first });
    const wait = Date.parse(vm.status.startFailure.retryAfterTimestamp) - clock.now().getTime();
    expect(wait).toBeGreaterThanOrEqual(10_000);
    expect(wait).toBeLessThanOrEqual(16_000);
    expect(sim.store.getVMI('default', name)).toBeUndefined();
    const start = await subresource(kc, 'virtualmachines', name, 'start');
    expect([start.status, start.json.message]).toEqual([
      409,
      `Operation cannot be fulfilled on virtualmachine.kubevirt.io "${name}": Always does not support manual start requests`,
    ]);
    clock.advance(wait + 1000);
    expect(await printable(name)).toBe('Running');
    expect((await getVM(name)).status.startFailure).toBeUndefined();
  });
});

test('a guest service listens only its delay after the VMI runs, while the endpoint is already ready (H2, S5)', async () => {
  const { sim, kc } = env;
  const name = fresh('guest');
  sim.store.addVM({
    metadata: { name, annotations: { 'simulator.virtwake.io/guest-listen-delay-seconds': '20' } },
    spec: { runStrategy: 'Halted' },
  });
  await sim.store.addGuestService('default', name, { vmName: name, port: 80, guest: true });
  const port = sim.store.guestPort('default', name)!;
  expect(await connects(port)).toBe(false);
  expect((await subresource(kc, 'virtualmachines', name, 'start')).status).toBe(202);
  expect(await printable(name)).toBe('Running');
  expect((await getVM(name)).status.ready).toBe(true);
  expect(sim.store.getEndpointSlice('default', name)!.endpoints[0]).toMatchObject({
    addresses: ['127.0.0.1'],
    conditions: { ready: true },
  });
  expect(await connects(port)).toBe(false);
  clock.advance(21_000);
  await new Promise((r) => setTimeout(r, 20));
  expect(await connects(port)).toBe(true);
  expect((await subresource(kc, 'virtualmachines', name, 'stop')).status).toBe(202);
  await sim.settle();
  expect(await connects(port)).toBe(false);
});

test('concurrent start/stop writes: the one whose read went stale gets virt-api 500 (L1, S4)', async () => {
  const { sim, kc } = env;
  const name = fresh('race');
  sim.store.addVM({ metadata: { name }, spec: { runStrategy: 'Halted' } });
  sim.store.setVirtApiWindow(50);
  try {
    const [a, b] = await Promise.all([
      subresource(kc, 'virtualmachines', name, 'start'),
      subresource(kc, 'virtualmachines', name, 'start'),
    ]);
    const statuses = [a.status, b.status].sort();
    expect(statuses).toEqual([202, 500]);
    const loser = a.status === 500 ? a : b;
    expect(loser.json).toMatchObject({
      reason: 'InternalError',
      message: 'Internal error occurred: the server rejected our request due to an error in our request',
      code: 500,
    });
  } finally {
    sim.store.setVirtApiWindow(0);
  }
});

describe('snapshots (S6, L2)', () => {
  test('a storage error sits "In error state" InProgress, then recovers; the snapshot has its finalizer and records the source UID', async () => {
    const { sim, kc } = env;
    const vm = fresh('snapsrc');
    const snap = fresh('snap');
    sim.store.addVM({ metadata: { name: vm }, spec: { runStrategy: 'Halted' } });
    sim.store.errorNextSnapshot('default', vm, 60_000, 'VolumeSnapshot quota exceeded');
    const res = await request(kc, 'POST', SNAPS, {
      metadata: { name: snap },
      spec: { source: { apiGroup: 'kubevirt.io', kind: 'VirtualMachine', name: vm } },
    });
    expect(res.status).toBe(201);
    await sim.settle();
    let s = sim.store.getSnapshot('default', snap)!;
    expect(s.metadata.finalizers).toContain('snapshot.kubevirt.io/vmsnapshot-protection');
    expect(s.status).toMatchObject({ phase: 'InProgress', error: { message: 'VolumeSnapshot quota exceeded' } });
    expect(s.status!.sourceUID).toBe(sim.store.getVM('default', vm)!.metadata.uid);
    expect(s.status!.conditions!.find((c) => c.type === 'Progressing')).toMatchObject({
      status: 'False',
      reason: 'In error state',
    });
    clock.advance(61_000);
    await sim.settle();
    s = sim.store.getSnapshot('default', snap)!;
    expect(s.status).toMatchObject({ phase: 'Succeeded', readyToUse: true });
    expect(s.status!.error).toBeUndefined();
    const content = sim.store.getSnapshotContent('default', s.status!.virtualMachineSnapshotContentName!)!;
    expect(content.metadata.ownerReferences).toBeUndefined();
  });

  test('a persisting error turns Failed only at failureDeadline; deleting an in-progress snapshot shows Deleting', async () => {
    const { sim, kc } = env;
    const vm = fresh('snapfail');
    sim.store.addVM({ metadata: { name: vm }, spec: { runStrategy: 'Halted' } });
    sim.store.failNextSnapshot('default', vm);
    const snap = fresh('snapf');
    await request(kc, 'POST', SNAPS, {
      metadata: { name: snap },
      spec: { source: { apiGroup: 'kubevirt.io', kind: 'VirtualMachine', name: vm }, failureDeadline: '2m' },
    });
    await sim.settle();
    clock.advance(60_000);
    await sim.settle();
    expect(sim.store.getSnapshot('default', snap)!.status!.phase).toBe('InProgress');
    clock.advance(61_000);
    await sim.settle();
    expect(sim.store.getSnapshot('default', snap)!.status).toMatchObject({ phase: 'Failed' });

    sim.store.stallNextSnapshot('default', vm);
    const stuck = fresh('snapd');
    await request(kc, 'POST', SNAPS, {
      metadata: { name: stuck },
      spec: { source: { apiGroup: 'kubevirt.io', kind: 'VirtualMachine', name: vm } },
    });
    await sim.settle();
    sim.pauseControllers();
    expect((await request(kc, 'DELETE', `${SNAPS}/${stuck}`)).status).toBe(200);
    const deleting = sim.store.getSnapshot('default', stuck)!;
    expect(deleting.metadata.deletionTimestamp).toBeDefined();
    expect(deleting.status!.phase).toBe('Deleting');
    sim.resumeControllers();
    await sim.settle();
    expect(sim.store.getSnapshot('default', stuck)).toBeUndefined();
  });
});

describe('restores (M2, M5, L2, S7, S8)', () => {
  test('a FailImmediate restore fails and stays complete:false, blocking the next restore; it is owned by the VM and has a finalizer', async () => {
    const { sim } = env;
    const vm = fresh('rfail');
    const snap = fresh('rs');
    sim.store.addVM({ metadata: { name: vm }, spec: { runStrategy: 'Always' } }, { running: true });
    await readySnapshot(vm, snap);
    const r0 = fresh('r0');
    expect((await restoreOf(vm, snap, r0, 'FailImmediate')).status).toBe(201);
    await sim.settle();
    clock.advance(3_600_000);
    await sim.settle();
    const failed = sim.store.getRestore('default', r0)!;
    expect(failed.status!.complete).toBe(false);
    expect(failed.status!.conditions!.find((c) => c.type === 'Failure')).toMatchObject({
      status: 'True',
      reason: 'Restore target VMI must be powered off before restore operation',
    });
    expect(failed.metadata.finalizers).toEqual(['snapshot.kubevirt.io/vmrestore-protection']);
    expect(failed.metadata.ownerReferences).toEqual([
      expect.objectContaining({ kind: 'VirtualMachine', name: vm, uid: sim.store.getVM('default', vm)!.metadata.uid }),
    ]);
    const next = await restoreOf(vm, snap, fresh('r1'));
    expect(next.status).toBe(422);
    expect(next.json.message).toContain(`VirtualMachineRestore "${r0}" in progress`);
  });

  test('deleting the target VM garbage-collects its restores through their ownerReference (S8)', async () => {
    const { sim, kc } = env;
    const vm = fresh('gc');
    const snap = fresh('gs');
    sim.store.addVM({ metadata: { name: vm }, spec: { runStrategy: 'Halted' } });
    await readySnapshot(vm, snap);
    const r = fresh('rg');
    expect((await restoreOf(vm, snap, r)).status).toBe(201);
    await sim.settle();
    expect(sim.store.getRestore('default', r)!.status!.complete).toBe(true);
    expect((await request(kc, 'DELETE', vmPath('default', vm))).status).toBe(200);
    await sim.settle();
    expect(sim.store.getVM('default', vm)).toBeUndefined();
    expect(sim.store.getRestore('default', r)).toBeUndefined();
  });

  test('a snapshot of a deleted-and-recreated VM never restores: "different target", by UID (L2, S7)', async () => {
    const { sim } = env;
    const vm = fresh('reborn');
    const snap = fresh('old');
    sim.store.addVM({ metadata: { name: vm }, spec: { runStrategy: 'Halted' } });
    await readySnapshot(vm, snap);
    const oldUid = sim.store.getVM('default', vm)!.metadata.uid;
    sim.store.deleteVM('default', vm);
    sim.store.addVM({
      metadata: { name: vm, annotations: { 'restore.kubevirt.io/lastRestoreUID': 'someone-else-1' } },
      spec: { runStrategy: 'Halted' },
    });
    expect(sim.store.getSnapshot('default', snap)!.status!.sourceUID).toBe(oldUid);
    const r = fresh('rr');
    expect((await restoreOf(vm, snap, r)).status).toBe(201);
    await sim.settle();
    clock.advance(3_600_000);
    await sim.settle();
    const st = sim.store.getRestore('default', r)!.status!;
    expect(st.complete).toBe(false);
    expect(st.conditions!.find((c) => c.type === 'Progressing')).toMatchObject({
      reason: 'restore source and restore target are different but restore target already exists',
    });
    expect(st.conditions!.some((c) => c.type === 'Failure')).toBe(false);
  });

  test('a Manual VM whose guest powered off keeps its Succeeded VMI: Stopped, created, stop 409, StopTarget restore waits forever (M5)', async () => {
    const { sim, kc } = env;
    const vm = fresh('manual');
    const snap = fresh('ms');
    sim.store.addVM({ metadata: { name: vm }, spec: { runStrategy: 'Manual' } }, { running: true });
    await readySnapshot(vm, snap);
    sim.store.setVMIPhase('default', vm, 'Succeeded');
    sim.store.reconcile('default', vm);
    await sim.settle();
    const status = (await getVM(vm)).status;
    expect(status).toMatchObject({ printableStatus: 'Stopped', created: true });
    const stop = await subresource(kc, 'virtualmachines', vm, 'stop');
    expect([stop.status, stop.json.message]).toEqual([
      409,
      `Operation cannot be fulfilled on virtualmachine.kubevirt.io "${vm}": VM is not running`,
    ]);
    const r = fresh('rm');
    expect((await restoreOf(vm, snap, r, 'StopTarget')).status).toBe(201);
    await sim.settle();
    clock.advance(3_600_000);
    await sim.settle();
    const st = sim.store.getRestore('default', r)!.status!;
    expect(st.complete).toBe(false);
    expect(st.conditions!.find((c) => c.type === 'Progressing')!.reason).toBe(
      `Operation cannot be fulfilled on virtualmachine.kubevirt.io "${vm}": VM is not running`,
    );
    expect(sim.store.getVMI('default', vm)!.status.phase).toBe('Succeeded');
  });

  test('restoring a legacy spec.running VM forces running: false (S7)', async () => {
    const { sim } = env;
    const vm = fresh('legacy');
    const snap = fresh('ls');
    sim.store.addVM({ metadata: { name: vm }, spec: { running: false } });
    await readySnapshot(vm, snap);
    sim.store.updateVM('default', vm, (v) => {
      v.spec.running = true;
    });
    await sim.settle();
    sim.store.updateVM('default', vm, (v) => {
      v.spec.running = false;
    });
    await sim.settle();
    const r = fresh('rl');
    expect((await restoreOf(vm, snap, r)).status).toBe(201);
    await sim.settle();
    expect(sim.store.getRestore('default', r)!.status!.complete).toBe(true);
    expect(sim.store.getVM('default', vm)!.spec.running).toBe(false);
  });
});

describe('transient refusals and races (L4, L5, L6)', () => {
  test('restart during a volume update is "VM recovery required"; pause during Starting is "VM is not running"', async () => {
    const { sim, kc } = env;
    const name = fresh('volchange');
    sim.store.addVM({ metadata: { name }, spec: { runStrategy: 'Always' } }, { running: true });
    sim.store.setCondition('default', name, { type: 'VolumesChange', status: 'True' });
    sim.store.reconcile('default', name);
    await sim.settle();
    const restart = await subresource(kc, 'virtualmachines', name, 'restart');
    expect(restart.status).toBe(409);
    expect(restart.json.message).toContain(': VM recovery required: ');
    const starting = fresh('starting');
    sim.store.addVM({ metadata: { name: starting }, spec: { runStrategy: 'Always' } }, { vmiPhase: 'Scheduled' });
    const pause = await subresource(kc, 'virtualmachineinstances', starting, 'pause');
    expect([pause.status, pause.json.message]).toEqual([
      409,
      `Operation cannot be fulfilled on virtualmachineinstance.kubevirt.io "${starting}": VM is not running`,
    ]);
  });

  test('RerunOnFailure: start refused while the Failed VMI exists; the controller then reruns it itself (L5)', async () => {
    const { sim, kc } = env;
    const name = fresh('rerun');
    sim.store.addVM({ metadata: { name }, spec: { runStrategy: 'RerunOnFailure' } }, { vmiPhase: 'Failed' });
    const uid = sim.store.getVMI('default', name)!.metadata.uid;
    const start = await subresource(kc, 'virtualmachines', name, 'start');
    expect(start.json.message).toMatch(/RerunOnFailure does not support starting VM from failed state$/);
    sim.store.reconcile('default', name);
    expect(await printable(name)).toBe('Running');
    expect(sim.store.getVMI('default', name)!.metadata.uid).not.toBe(uid);
  });

  test('Once: stop makes it Halted and a start then makes it Always (L6)', async () => {
    const { sim, kc } = env;
    const name = fresh('once');
    sim.store.addVM({ metadata: { name }, spec: { runStrategy: 'Once' } }, { running: true });
    expect((await subresource(kc, 'virtualmachines', name, 'stop')).status).toBe(202);
    expect(await printable(name)).toBe('Stopped');
    expect((await getVM(name)).spec.runStrategy).toBe('Halted');
    expect((await subresource(kc, 'virtualmachines', name, 'start')).status).toBe(202);
    expect(await printable(name)).toBe('Running');
    expect((await getVM(name)).spec.runStrategy).toBe('Always');
  });
});

test('an annotation-only patch of a VM whose spec no longer validates is 422 from the VM webhook (L7)', async () => {
  const { sim, kc } = env;
  const name = fresh('invalid');
  sim.store.addVM({ metadata: { name }, spec: { runStrategy: 'Halted' } });
  sim.store.setSpecInvalid('default', name, 'TPM feature gate is not enabled in kubevirt-config');
  const res = await request(
    kc,
    'PATCH',
    vmPath('default', name),
    { metadata: { annotations: { 'virtwake.io/last-activity': 'now' } } },
    { 'Content-Type': 'application/merge-patch+json' },
  );
  expect(res.status).toBe(422);
  expect(res.json.message).toBe(
    'admission webhook "virtualmachine-validator.kubevirt.io" denied the request: TPM feature gate is not enabled in kubevirt-config',
  );
  expect(sim.store.getVM('default', name)!.metadata.annotations?.['virtwake.io/last-activity']).toBeUndefined();
  sim.store.setSpecInvalid('default', name, undefined);
});

test('without the snapshot API: no group in discovery and 404; with the gate off: 400 from the webhooks (L8)', async () => {
  const { sim, kc } = env;
  sim.store.setSnapshotApi('absent');
  try {
    const groups = await request(kc, 'GET', '/apis');
    expect(groups.json.groups.map((g: { name: string }) => g.name)).not.toContain('snapshot.kubevirt.io');
    const get = await request(kc, 'GET', `${SNAPS}/x`);
    expect([get.status, get.json.message]).toEqual([404, 'the server could not find the requested resource']);
    sim.store.setSnapshotApi('gateOff');
    const snap = await request(kc, 'POST', SNAPS, {
      metadata: { name: fresh('gated') },
      spec: { source: { apiGroup: 'kubevirt.io', kind: 'VirtualMachine', name: 'x' } },
    });
    expect([snap.status, snap.json.message]).toEqual([
      400,
      'admission webhook "virtualmachinesnapshot-validator.snapshot.kubevirt.io" denied the request: snapshot feature gate not enabled',
    ]);
    const restore = await restoreOf('x', 'y', fresh('gated'));
    expect([restore.status, restore.json.message]).toEqual([
      400,
      'admission webhook "virtualmachinerestore-validator.snapshot.kubevirt.io" denied the request: Snapshot/Restore feature gate not enabled',
    ]);
  } finally {
    sim.store.setSnapshotApi('served');
  }
});

test('the same knobs over /_sim/ for out-of-process tests, with a clear 400 for bad input', async () => {
  const { sim, kc } = env;
  const name = fresh('knobs');
  sim.store.addVM({ metadata: { name }, spec: { runStrategy: 'Always' } }, { running: true });
  const post = (path: string, body: unknown) => request(kc, 'POST', path, body);
  expect((await post(`/_sim/vms/default/${name}`, { migrating: true })).status).toBe(200);
  expect(await printable(name)).toBe('Migrating');
  expect((await post(`/_sim/vms/default/${name}`, { migrating: false, volumes: 'DataVolumeError' })).status).toBe(200);
  expect(await printable(name)).toBe('Running');
  expect((await post(`/_sim/vms/default/${name}`, { specInvalid: 'no longer valid' })).status).toBe(200);
  const patch = await request(
    kc,
    'PATCH',
    vmPath('default', name),
    { metadata: { annotations: { a: 'b' } } },
    { 'Content-Type': 'application/merge-patch+json' },
  );
  expect(patch.status).toBe(422);
  expect((await post(`/_sim/vms/default/${name}`, { specInvalid: null, volumes: null })).status).toBe(200);
  const bad = await post(`/_sim/vms/default/${name}`, { volumes: 'Importing' });
  expect(bad.status).toBe(400);
  expect(bad.json.error).toBe('volumes must be null or one of Provisioning, WaitingForVolumeBinding, DataVolumeError');
  expect((await post('/_sim/vms/default/nope', { migrating: true })).json.error).toBe(
    'VirtualMachine default/nope does not exist',
  );
  expect((await post('/_sim/settings', { snapshotApi: 'absent' })).status).toBe(200);
  expect((await request(kc, 'GET', SNAPS)).status).toBe(404);
  expect((await post('/_sim/settings', { snapshotApi: 'served', virtApiWindowMs: 0 })).status).toBe(200);
  expect((await request(kc, 'GET', SNAPS)).status).toBe(200);
  expect((await post('/_sim/settings', { snapshotApi: 'maybe' })).json.error).toBe(
    'snapshotApi must be served, absent or gateOff',
  );
});

test('the demo guest of reporting listens 10 s after its VM runs, and reporting takes 10 s to stop', async () => {
  const { sim, kc } = env;
  seedDemo(sim.store);
  const port = (await seedDemoGuest(sim.store))!;
  expect((await subresource(kc, 'virtualmachines', 'reporting', 'start')).status).toBe(202);
  expect(await printable('reporting')).toBe('Running');
  expect(await connects(port)).toBe(false);
  clock.advance(11_000);
  await new Promise((r) => setTimeout(r, 20));
  expect(await connects(port)).toBe(true);
  expect((await subresource(kc, 'virtualmachines', 'reporting', 'stop')).status).toBe(202);
  expect(await printable('reporting')).toBe('Stopping');
  clock.advance(11_000);
  expect(await printable('reporting')).toBe('Stopped');
});
