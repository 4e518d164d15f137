import {
  createVM,
  eventually,
  NS,
  OPT_IN,
  rig,
  send,
  startVirtwake,
  vmiPath,
  vmPath,
  vmRunning,
  type Virtwake,
} from './helpers';

// Commands through the real stack: virtwake's ServiceAccount token → kube-apiserver's RBAC
// authorizer → the aggregator → virt-api (rig mode) → the VM and VMI written in etcd and
// moved by the rig's KubeVirt controllers.

const { state, kube } = rig();
let vw: Virtwake;
let n = 0;
const name = (what: string) => `power-${what}-${++n}`;

beforeAll(async () => {
  vw = await startVirtwake(state);
});
afterAll(() => vw?.stop());

describe('start and stop', () => {
  test('start without wait is accepted, and the controllers then run the VM', async () => {
    const vm = name('start');
    await createVM(kube, vm, 'Halted');
    const res = await send(vw, 'io.virtwake.vm.start', { name: vm });
    expect(res.status).toBe(200);
    expect(res.type).toBe('io.virtwake.vm.start.accepted');
    expect(res.data).toMatchObject({ namespace: NS, name: vm, action: 'start', outcome: 'accepted' });
    expect((await kube.get(vmPath(vm))).spec.runStrategy).toBe('Always');
    await vmRunning(kube, vm);
  });

  test('start with wait answers completed once the VM is Running and ready', async () => {
    const vm = name('start-wait');
    await createVM(kube, vm, 'Halted');
    const res = await send(vw, 'io.virtwake.vm.start', { name: vm, wait: { timeoutSeconds: 60 } });
    expect(res.type).toBe('io.virtwake.vm.start.completed');
    expect(res.data.status).toEqual({ printableStatus: 'Running', ready: true });
    const vmi = await kube.get(vmiPath(vm));
    expect(vmi.status.phase).toBe('Running');
  });

  test('stop with wait answers completed once the VMI is gone', async () => {
    const vm = name('stop-wait');
    await createVM(kube, vm, 'Always');
    await vmRunning(kube, vm);
    const res = await send(vw, 'io.virtwake.vm.stop', { name: vm, wait: { timeoutSeconds: 60 } });
    expect(res.type).toBe('io.virtwake.vm.stop.completed');
    expect(await kube.get(vmiPath(vm))).toBeUndefined();
    expect((await kube.get(vmPath(vm))).spec.runStrategy).toBe('Halted');
  });

  test('stop without wait is accepted and the VMI goes away', async () => {
    const vm = name('stop');
    await createVM(kube, vm, 'Always');
    await vmRunning(kube, vm);
    const res = await send(vw, 'io.virtwake.vm.stop', { name: vm });
    expect(res.type).toBe('io.virtwake.vm.stop.accepted');
    await eventually('VMI deleted', async () => (await kube.get(vmiPath(vm))) === undefined);
  });

  test("start of a running VM: virt-api's 409 'already running' is completed/AlreadyInState", async () => {
    const vm = name('always');
    await createVM(kube, vm, 'Always');
    await vmRunning(kube, vm);
    const res = await send(vw, 'io.virtwake.vm.start', { name: vm });
    expect(res.data).toMatchObject({ outcome: 'completed', reason: 'AlreadyInState' });
    expect(res.data.message).toMatch(/VM is already running/);
  });

  test('Manual: start goes through a state change request on the status subresource', async () => {
    const vm = name('manual');
    await createVM(kube, vm, 'Manual');
    const res = await send(vw, 'io.virtwake.vm.start', { name: vm, wait: { timeoutSeconds: 60 } });
    expect(res.type).toBe('io.virtwake.vm.start.completed');
    const got = await kube.get(vmPath(vm));
    expect(got.spec.runStrategy).toBe('Manual');
    expect(got.status.stateChangeRequests).toBeUndefined();
  });
});

describe('activity', () => {
  test('activity with wake records virtwake.io/last-activity (a real merge patch) and starts a sleeping VM', async () => {
    const vm = name('activity');
    await createVM(kube, vm, 'Halted');
    const res = await send(vw, 'io.virtwake.vm.activity', { name: vm, wake: true });
    expect(res.status).toBe(200);
    const got = await kube.get(vmPath(vm));
    expect(Date.parse(got.metadata.annotations['virtwake.io/last-activity'])).not.toBeNaN();
    await vmRunning(kube, vm);
  });
});

describe('refusals', () => {
  test("restart of a Halted VM: virt-api's 409 through the aggregator is failed/Refused, verbatim", async () => {
    const vm = name('halted-restart');
    await createVM(kube, vm, 'Halted');
    const res = await send(vw, 'io.virtwake.vm.restart', { name: vm });
    expect(res.type).toBe('io.virtwake.vm.restart.failed');
    expect(res.data).toMatchObject({ outcome: 'failed', reason: 'Refused' });
    expect(res.data.message).toMatch(/RunStategy Halted does not support manual restart requests/);
  });
});

describe('dryRun', () => {
  test('virt-api passes dryRun to the real apiserver: accepted, nothing persisted', async () => {
    const vm = name('dry');
    const created = await createVM(kube, vm, 'Halted');
    const res = await send(vw, 'io.virtwake.vm.start', { name: vm, dryRun: true });
    expect(res.data).toMatchObject({ outcome: 'accepted', reason: 'DryRun' });
    const after = await kube.get(vmPath(vm));
    expect(after.spec.runStrategy).toBe('Halted');
    expect(after.metadata.generation).toBe(created.metadata.generation);
    expect(await kube.get(vmiPath(vm))).toBeUndefined();
  });
});

describe('restart, pause, unpause', () => {
  test('restart with wait: a new VMI (another uid) Running', async () => {
    const vm = name('restart');
    await createVM(kube, vm, 'Always');
    await vmRunning(kube, vm);
    const before = (await kube.get(vmiPath(vm))).metadata.uid;
    const res = await send(vw, 'io.virtwake.vm.restart', { name: vm, wait: { timeoutSeconds: 60 } });
    expect(res.type).toBe('io.virtwake.vm.restart.completed');
    const after = await kube.get(vmiPath(vm));
    expect(after.metadata.uid).not.toBe(before);
    expect(after.status.phase).toBe('Running');
  });

  test('pause then unpause with wait', async () => {
    const vm = name('pause');
    await createVM(kube, vm, 'Always');
    await vmRunning(kube, vm);
    let res = await send(vw, 'io.virtwake.vm.pause', { name: vm, wait: { timeoutSeconds: 60 } });
    expect(res.data).toMatchObject({ outcome: 'completed', status: { printableStatus: 'Paused' } });
    res = await send(vw, 'io.virtwake.vm.unpause', { name: vm, wait: { timeoutSeconds: 60 } });
    expect(res.data).toMatchObject({ outcome: 'completed', status: { printableStatus: 'Running' } });
  });
});

describe('selector commands', () => {
  test('every opted-in match is acted on; one summary typed by the worst outcome', async () => {
    const labels = { ...OPT_IN, fleet: `blue-${process.pid}` };
    const a = name('sel-halted');
    const b = name('sel-manual');
    const c = name('sel-always');
    await createVM(kube, a, 'Halted', labels);
    await createVM(kube, b, 'Manual', labels);
    await createVM(kube, c, 'Always', labels);
    await createVM(kube, name('sel-not-opted-in'), 'Halted', { fleet: labels.fleet });
    await vmRunning(kube, c);
    const res = await send(vw, 'io.virtwake.vm.start', { selector: { matchLabels: { fleet: labels.fleet } } });
    expect(res.data.matched).toBe(3);
    const byName = Object.fromEntries(res.data.results.map((r: any) => [r.name, r]));
    expect(byName[a]).toMatchObject({ outcome: 'accepted' });
    expect(byName[b]).toMatchObject({ outcome: 'accepted' });
    expect(byName[c]).toMatchObject({ outcome: 'completed', reason: 'AlreadyInState' });
    await vmRunning(kube, a);
    await vmRunning(kube, b);
  });
});
