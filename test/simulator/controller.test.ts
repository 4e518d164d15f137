// virt-controller emulation: VMI phases, VM printableStatus/ready/conditions, request
// consumption, restarts with new uids, failure handling per runStrategy, deletion, and
// every timestamp taken from the injected clock.
import { Watch } from '@kubernetes/client-node';
import { ManualClock } from '../../simulator';
import { startEnv, subresource, vmPath, type TestEnv } from './helpers';

const T0 = new Date('2030-01-02T03:04:05Z');
let clock: ManualClock;
let env: TestEnv;
beforeAll(async () => {
  clock = new ManualClock(T0);
  env = await startEnv({ clock });
});
afterAll(() => env.sim.close());

let seq = 0;
const fresh = (p: string) => `${p}-${++seq}`;

/** Follow a VM's printableStatus over a real watch; returns the distinct sequence seen. */
async function followVM(name: string) {
  const seen: string[] = [];
  const watch = new Watch(env.kc);
  const ctl = await watch.watch(
    vmPath(),
    { fieldSelector: `metadata.name=${name}` },
    (_type, obj: any) => {
      const s = obj?.status?.printableStatus;
      if (s && seen.at(-1) !== s) seen.push(s);
    },
    () => undefined,
  );
  return { seen, stop: () => ctl.abort() };
}

test('start of a Halted VM walks Stopped -> Starting -> Running; VMI phases and times come from the clock', async () => {
  const { sim, kc } = env;
  const name = fresh('walk');
  sim.store.addVM({ metadata: { name }, spec: { runStrategy: 'Halted' } });
  const f = await followVM(name);
  clock.advance(60_000);
  expect((await subresource(kc, 'virtualmachines', name, 'start')).status).toBe(202);
  await sim.settle();
  f.stop();
  expect(f.seen).toEqual(['Stopped', 'Starting', 'Running']);
  const vmi = sim.store.getVMI('default', name)!;
  const at = '2030-01-02T03:05:05Z';
  expect(vmi.metadata.creationTimestamp).toBe(at);
  expect(vmi.status.phaseTransitionTimestamps).toEqual(
    ['Pending', 'Scheduling', 'Scheduled', 'Running'].map((phase) => ({ phase, phaseTransitionTimestamp: at })),
  );
  expect(vmi.metadata.ownerReferences).toEqual([
    expect.objectContaining({ kind: 'VirtualMachine', name, controller: true }),
  ]);
  const vm = sim.store.getVM('default', name)!;
  expect(vm.spec.runStrategy).toBe('Always');
  expect(vm.status).toMatchObject({ printableStatus: 'Running', ready: true, created: true, runStrategy: 'Always' });
  expect(vm.status!.stateChangeRequests).toBeUndefined();
  expect(vm.status!.conditions!.find((c) => c.type === 'Ready')).toMatchObject({
    status: 'True',
    lastTransitionTime: at,
  });
});

test('stop walks Running -> Stopping -> Stopped and removes the VMI', async () => {
  const { sim, kc } = env;
  const name = fresh('stop');
  sim.store.addVM({ metadata: { name }, spec: { runStrategy: 'Always' } }, { running: true });
  const f = await followVM(name);
  expect((await subresource(kc, 'virtualmachines', name, 'stop')).status).toBe(202);
  await sim.settle();
  f.stop();
  expect(f.seen).toEqual(['Running', 'Stopping', 'Stopped']);
  expect(sim.store.getVMI('default', name)).toBeUndefined();
  expect(sim.store.getVM('default', name)!.status).toMatchObject({
    printableStatus: 'Stopped',
    ready: false,
    created: false,
  });
  expect(sim.store.getVM('default', name)!.status!.conditions!.find((c) => c.type === 'Ready')).toMatchObject({
    status: 'False',
    reason: 'VMINotExists',
  });
});

test('Manual: start and stop go through state change requests and keep the strategy', async () => {
  const { sim, kc } = env;
  const name = fresh('manual');
  sim.store.addVM({ metadata: { name }, spec: { runStrategy: 'Manual' } });
  expect((await subresource(kc, 'virtualmachines', name, 'start')).status).toBe(202);
  await sim.settle();
  expect(sim.store.getVM('default', name)!.status).toMatchObject({ printableStatus: 'Running', runStrategy: 'Manual' });
  expect(sim.store.getVM('default', name)!.status!.stateChangeRequests).toBeUndefined();
  expect((await subresource(kc, 'virtualmachines', name, 'stop')).status).toBe(202);
  await sim.settle();
  expect(sim.store.getVM('default', name)!.spec.runStrategy).toBe('Manual');
  expect(sim.store.getVM('default', name)!.status!.printableStatus).toBe('Stopped');
});

test('restart replaces the VMI (new uid) for Always and Manual', async () => {
  const { sim, kc } = env;
  for (const runStrategy of ['Always', 'Manual']) {
    const name = fresh('restart');
    sim.store.addVM({ metadata: { name }, spec: { runStrategy } }, { running: true });
    const before = sim.store.getVMI('default', name)!.metadata.uid;
    clock.advance(1000);
    expect((await subresource(kc, 'virtualmachines', name, 'restart')).status).toBe(202);
    await sim.settle();
    const after = sim.store.getVMI('default', name)!;
    expect(after.metadata.uid).not.toBe(before);
    expect(after.status.phase).toBe('Running');
    expect(sim.store.getVM('default', name)!.status).toMatchObject({ printableStatus: 'Running', ready: true });
    expect(sim.store.getVM('default', name)!.status!.stateChangeRequests).toBeUndefined();
  }
});

test('paused start: Halted VM comes up Running with Paused=True, printableStatus Paused, not ready', async () => {
  const { sim, kc } = env;
  const name = fresh('paused');
  sim.store.addVM({ metadata: { name }, spec: { runStrategy: 'Halted' } });
  expect((await subresource(kc, 'virtualmachines', name, 'start', { paused: true })).status).toBe(202);
  await sim.settle();
  const vm = sim.store.getVM('default', name)!;
  expect(vm.spec.runStrategy).toBe('Always');
  expect(vm.status).toMatchObject({ printableStatus: 'Paused', ready: false, created: true });
  const vmi = sim.store.getVMI('default', name)!;
  expect(vmi.spec.startStrategy).toBe('Paused');
  expect(vmi.status.phase).toBe('Running');
  expect(vmi.status.conditions).toEqual(
    expect.arrayContaining([
      expect.objectContaining({ type: 'Paused', status: 'True' }),
      expect.objectContaining({ type: 'Ready', status: 'False', reason: 'ReadinessGatesNotReady' }),
    ]),
  );
});

test('guest crash: Always restarts, RerunOnFailure reruns, Manual and Once stay down', async () => {
  const { sim } = env;
  const expectations: Record<string, { restarted: boolean; printable: string }> = {
    Always: { restarted: true, printable: 'Running' },
    RerunOnFailure: { restarted: true, printable: 'Running' },
    Manual: { restarted: false, printable: 'Stopped' },
    Once: { restarted: false, printable: 'Stopped' },
  };
  for (const [runStrategy, want] of Object.entries(expectations)) {
    const name = fresh('crash');
    sim.store.addVM({ metadata: { name }, spec: { runStrategy } }, { running: true });
    const uid = sim.store.getVMI('default', name)!.metadata.uid;
    sim.store.setVMIPhase('default', name, 'Failed');
    await sim.settle();
    const vmi = sim.store.getVMI('default', name)!;
    expect([runStrategy, vmi.metadata.uid !== uid]).toEqual([runStrategy, want.restarted]);
    expect([runStrategy, sim.store.getVM('default', name)!.status!.printableStatus]).toEqual([
      runStrategy,
      want.printable,
    ]);
  }
  // A guest that shut down by itself is not rerun under RerunOnFailure: the VMI is removed.
  const name = fresh('shutdown');
  sim.store.addVM({ metadata: { name }, spec: { runStrategy: 'RerunOnFailure' } }, { running: true });
  sim.store.setVMIPhase('default', name, 'Succeeded');
  await sim.settle();
  expect(sim.store.getVMI('default', name)).toBeUndefined();
  expect(sim.store.getVM('default', name)!.status!.printableStatus).toBe('Stopped');
});

test('a new RerunOnFailure VM starts by itself; a new Halted one does not', async () => {
  const { sim, api } = env;
  for (const [runStrategy, printable] of [
    ['RerunOnFailure', 'Running'],
    ['Halted', 'Stopped'],
  ]) {
    const name = fresh('new');
    await api.createNamespacedCustomObject({
      group: 'kubevirt.io',
      version: 'v1',
      namespace: 'default',
      plural: 'virtualmachines',
      body: {
        apiVersion: 'kubevirt.io/v1',
        kind: 'VirtualMachine',
        metadata: { name },
        // The smallest template KubeVirt's CRD schema accepts (domain and devices are required).
        spec: { runStrategy, template: { spec: { domain: { devices: {} } } } },
      },
    });
    await sim.settle();
    expect(sim.store.getVM('default', name)!.status!.printableStatus).toBe(printable);
  }
});

test('stopping a Once VM turns it Halted; the Once strategy is lost', async () => {
  const { sim, kc } = env;
  const name = fresh('once');
  sim.store.addVM({ metadata: { name }, spec: { runStrategy: 'Once' } }, { running: true });
  expect((await subresource(kc, 'virtualmachines', name, 'stop')).status).toBe(202);
  await sim.settle();
  const vm = sim.store.getVM('default', name)!;
  expect(vm.spec.runStrategy).toBe('Halted');
  expect(vm.status!.printableStatus).toBe('Stopped');
});

test('guest agent and other VMI conditions are mirrored to the VM', async () => {
  const { sim } = env;
  const name = fresh('agent');
  sim.store.addVM({ metadata: { name }, spec: { runStrategy: 'Always' } }, { running: true, agentConnected: true });
  expect(sim.store.getVMI('default', name)!.status.conditions!.find((c) => c.type === 'AgentConnected')).toMatchObject({
    status: 'True',
  });
  expect(sim.store.getVM('default', name)!.status!.conditions!.find((c) => c.type === 'AgentConnected')).toMatchObject({
    status: 'True',
  });
  sim.store.setAgentConnected('default', name, false);
  await sim.settle();
  expect(sim.store.getVM('default', name)!.status!.conditions!.some((c) => c.type === 'AgentConnected')).toBe(false);
  sim.store.setCondition('default', name, {
    type: 'LiveMigratable',
    status: 'False',
    reason: 'DisksNotLiveMigratable',
  });
  await sim.settle();
  expect(sim.store.getVM('default', name)!.status!.conditions!.find((c) => c.type === 'LiveMigratable')).toMatchObject({
    status: 'False',
  });
});

test('deleting a running VM: Terminating, VMI torn down, then gone', async () => {
  const { sim, api } = env;
  const name = fresh('delete');
  sim.store.addVM({ metadata: { name }, spec: { runStrategy: 'Always' } }, { running: true });
  const f = await followVM(name);
  const res: any = await api.deleteNamespacedCustomObject({
    group: 'kubevirt.io',
    version: 'v1',
    namespace: 'default',
    plural: 'virtualmachines',
    name,
  });
  expect(res.metadata.deletionTimestamp).toBeDefined();
  await sim.settle();
  f.stop();
  expect(f.seen).toContain('Terminating');
  expect(sim.store.getVM('default', name)).toBeUndefined();
  expect(sim.store.getVMI('default', name)).toBeUndefined();
});

test('vmiCreatedAt seeds the VMI start time for idle accounting', async () => {
  const { sim } = env;
  const name = fresh('idle');
  const at = new Date('2029-12-31T23:00:00Z');
  sim.store.addVM({ metadata: { name }, spec: { runStrategy: 'Always' } }, { running: true, vmiCreatedAt: at });
  const vmi = sim.store.getVMI('default', name)!;
  expect(vmi.metadata.creationTimestamp).toBe('2029-12-31T23:00:00Z');
  expect(vmi.status.phaseTransitionTimestamps!.at(-1)).toEqual({
    phase: 'Running',
    phaseTransitionTimestamp: '2029-12-31T23:00:00Z',
  });
});
