import { KubeConfig } from '@kubernetes/client-node';
import { ManualClock } from '../../simulator';
import { Harness, replyData, startHarness } from '../helpers/harness';
import { request } from '../simulator/helpers';

// The snapshot and restore findings of issue 13 over HTTP against the
// simulator: failed restores that block the next one (M2), final VMIs (M5),
// snapshots of an earlier VM of the same name (L2) and clusters without the
// snapshot API or with its feature gate off (L8).

const OPT_IN = { 'virtwake.io/enabled': 'true' };
const RESTORES = '/apis/snapshot.kubevirt.io/v1beta1/namespaces/default/virtualmachinerestores';
const wait = { timeoutSeconds: 20 };
let h: Harness;
let kc: KubeConfig;
const clock = new ManualClock();

beforeAll(async () => {
  h = await startHarness({ sim: { stepMs: 5, snapshotStepMs: 5, clock } });
  kc = new KubeConfig();
  kc.loadFromFile(h.sim.kubeconfigPath);
});
afterAll(() => h.close());

let n = 0;
function addVM(runStrategy: string, state: { running?: boolean } = {}, name = `sr-${++n}`): string {
  h.sim.store.addVM({ metadata: { name, namespace: 'default', labels: OPT_IN }, spec: { runStrategy } }, state);
  return name;
}

async function snapshotOf(vm: string): Promise<string> {
  const snapshotName = `${vm}-snap-${++n}`;
  const res = await h.send('io.virtwake.vm.snapshot', { name: vm, snapshotName, wait }).expect(200);
  expect(replyData(res).outcome).toBe('completed');
  return snapshotName;
}

/** A restore someone made with FailImmediate while the VM ran: KubeVirt fails it and keeps it incomplete. */
async function failedRestore(vm: string, snap: string, labels: Record<string, string> = {}): Promise<string> {
  const name = `r0-${++n}`;
  const res = await request(kc, 'POST', RESTORES, {
    metadata: { name, labels },
    spec: {
      target: { apiGroup: 'kubevirt.io', kind: 'VirtualMachine', name: vm },
      virtualMachineSnapshotName: snap,
      targetReadinessPolicy: 'FailImmediate',
    },
  });
  expect(res.status).toBe(201);
  await h.sim.settle();
  const st = h.sim.store.getRestore('default', name)!.status!;
  expect(st.complete).toBe(false);
  expect(st.conditions?.some((c) => c.type === 'Failure' && c.status === 'True')).toBe(true);
  return name;
}

async function stopped(vm: string): Promise<void> {
  await h.send('io.virtwake.vm.stop', { name: vm, wait }).expect(200);
}

describe('M2: a failed restore blocks the next one', () => {
  test('one virtwake created is deleted before the new restore is created', async () => {
    const vm = addVM('Always', { running: true });
    const snap = await snapshotOf(vm);
    const old = await failedRestore(vm, snap, { 'app.kubernetes.io/managed-by': 'virtwake' });
    await stopped(vm);
    h.sim.resetCalls();
    const res = await h.send('io.virtwake.vm.restore', { name: vm, snapshotName: snap, wait }).expect(200);
    expect(replyData(res)).toMatchObject({ outcome: 'completed', restore: { complete: true } });
    expect(h.sim.store.getRestore('default', old)).toBeUndefined();
    const order = h.sim.calls
      .filter((c) => c.resource === 'virtualmachinerestores' && ['delete', 'create'].includes(c.verb))
      .map((c) => c.verb);
    expect(order).toEqual(['delete', 'create']);
  });

  test("someone else's failed restore: failed / RestoreBlocked, naming it and saying it failed", async () => {
    const vm = addVM('Always', { running: true });
    const snap = await snapshotOf(vm);
    const theirs = await failedRestore(vm, snap);
    await stopped(vm);
    const res = await h.send('io.virtwake.vm.restore', { name: vm, snapshotName: snap }).expect(200);
    expect(res.headers['ce-type']).toBe('io.virtwake.vm.restore.failed');
    expect(replyData(res)).toMatchObject({ reason: 'RestoreBlocked' });
    expect(replyData(res).message).toMatch(
      new RegExp(`VirtualMachineRestore default/${theirs} of VM ${vm} failed \\(`),
    );
    expect(h.sim.store.getRestore('default', theirs)).toBeDefined();
  });
});

describe('M5: a Manual VM whose guest powered off keeps a final VMI', () => {
  async function poweredOff(): Promise<{ vm: string; snap: string }> {
    const vm = addVM('Manual', { running: true });
    const snap = await snapshotOf(vm);
    h.sim.store.setVMIPhase('default', vm, 'Succeeded');
    h.sim.store.reconcile('default', vm);
    await h.sim.settle();
    expect(h.sim.store.getVM('default', vm)!.status).toMatchObject({ printableStatus: 'Stopped', created: true });
    return { vm, snap };
  }

  test('restore without stopFirst fails at once, saying how to clear it', async () => {
    const { vm, snap } = await poweredOff();
    const res = await h.send('io.virtwake.vm.restore', { name: vm, snapshotName: snap, wait }).expect(200);
    expect(replyData(res)).toMatchObject({ outcome: 'failed', reason: 'FinalVMI' });
    expect(replyData(res).message).toMatch(/phase Succeeded.*send stopFirst: true.*kubectl delete vmi/);
    expect(h.sim.store.listRestores('default').filter((r) => r.spec.target.name === vm)).toEqual([]);
  });

  test('restore with stopFirst clears the final VMI and completes', async () => {
    const { vm, snap } = await poweredOff();
    const res = await h
      .send('io.virtwake.vm.restore', { name: vm, snapshotName: snap, stopFirst: true, wait })
      .expect(200);
    expect(replyData(res)).toMatchObject({ outcome: 'completed', restore: { complete: true } });
    expect(h.sim.store.getVMI('default', vm)).toBeUndefined();
  });
});

describe('L2: a snapshot of a deleted and recreated VM of the same name', () => {
  test('failed / SnapshotOfOtherVM before anything is created', async () => {
    const vm = addVM('Halted');
    const snap = await snapshotOf(vm);
    h.sim.store.deleteVM('default', vm);
    await h.sim.settle();
    addVM('Halted', {}, vm);
    h.sim.resetCalls();
    const res = await h.send('io.virtwake.vm.restore', { name: vm, snapshotName: snap, wait }).expect(200);
    expect(replyData(res)).toMatchObject({ outcome: 'failed', reason: 'SnapshotOfOtherVM' });
    expect(replyData(res).message).toMatch(/an earlier VM named .* \(uid .*\), not of this one/);
    expect(h.sim.calls.filter((c) => c.verb === 'create')).toEqual([]);
  });
});

describe('L8: no snapshot API', () => {
  afterEach(() => h.sim.store.setSnapshotApi('served'));

  test('before KubeVirt 1.3 (no snapshot.kubevirt.io): snapshot and restore fail saying so', async () => {
    const vm = addVM('Halted');
    h.sim.store.setSnapshotApi('absent');
    const snap = await h.send('io.virtwake.vm.snapshot', { name: vm }).expect(200);
    expect(replyData(snap)).toMatchObject({ outcome: 'failed', reason: 'SnapshotApiUnavailable' });
    expect(replyData(snap).message).toMatch(/serves no snapshot.kubevirt.io\/v1beta1 API \(KubeVirt 1.3 or later/);
    const restore = await h.send('io.virtwake.vm.restore', { name: vm, snapshotName: 'any' }).expect(200);
    expect(replyData(restore)).toMatchObject({ outcome: 'failed', reason: 'SnapshotApiUnavailable' });
  });

  test('the Snapshot feature gate off: snapshot and restore fail saying so', async () => {
    const vm = addVM('Halted');
    const ready = await snapshotOf(vm);
    h.sim.store.setSnapshotApi('gateOff');
    const snap = await h.send('io.virtwake.vm.snapshot', { name: vm }).expect(200);
    expect(replyData(snap)).toMatchObject({ outcome: 'failed', reason: 'SnapshotApiUnavailable' });
    expect(replyData(snap).message).toMatch(/Snapshot feature gate is off.*snapshot feature gate not enabled/);
    const restore = await h.send('io.virtwake.vm.restore', { name: vm, snapshotName: ready }).expect(200);
    expect(replyData(restore)).toMatchObject({ outcome: 'failed', reason: 'SnapshotApiUnavailable' });
    expect(replyData(restore).message).toMatch(/Snapshot\/Restore feature gate not enabled/);
  });
});
