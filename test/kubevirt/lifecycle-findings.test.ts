import { ManualClock } from '../../simulator';
import { Harness, replyData, startHarness } from '../helpers/harness';

// The lifecycle findings of issue 13 (docs/kubevirt-answers.md), over HTTP
// against the simulator, which follows KubeVirt's source for each: a start
// while Stopping (H1), "VM is already running" for a VMI not running yet (M1),
// starting from runStrategy and the VMI rather than printableStatus (M4),
// final VMIs (M5), stop of a VM with a DataVolume problem (L3), transient
// refusals (L4), RerunOnFailure reruns (L5) and virt-api's concurrent-change
// 500 (L1). Grace periods end when the test moves the simulator's clock.

const OPT_IN = { 'virtwake.io/enabled': 'true' };
let h: Harness;
let clock: ManualClock;

beforeAll(async () => {
  clock = new ManualClock();
  h = await startHarness({ sim: { stepMs: 5, clock } });
});
afterAll(() => h.close());

let n = 0;
function addVM(
  runStrategy: string,
  state: { running?: boolean; paused?: boolean; vmiPhase?: string } = {},
  template?: Record<string, unknown>,
): string {
  const name = `kv-${runStrategy.toLowerCase()}-${++n}`;
  const spec: Record<string, unknown> = { runStrategy };
  if (template) spec.template = { metadata: { labels: { 'kubevirt.io/vm': name } }, spec: { domain: {}, ...template } };
  h.sim.store.addVM({ metadata: { name, namespace: 'default', labels: OPT_IN }, spec }, state);
  return name;
}

const vm = (name: string) => h.sim.store.getVM('default', name)!;
const starts = (name: string) =>
  h.sim.calls.filter((c) => c.verb === 'update' && c.subresource === 'start' && c.name === name);

async function until(what: string, test: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !test(); i++) await new Promise((r) => setTimeout(r, 10));
  if (!test()) throw new Error(`never happened: ${what}`);
}

/** A running Always VM stopped with a grace period: Stopping until the clock passes it. */
async function stopping(grace = 120): Promise<string> {
  const name = addVM('Always', { running: true }, { terminationGracePeriodSeconds: grace });
  await h.send('io.virtwake.vm.stop', { name }).expect(200);
  await h.sim.settle();
  expect(vm(name).status?.printableStatus).toBe('Stopping');
  return name;
}

/** The function is watching the VMI go: now the clock may move. */
const watching = (resource: string, name: string) => () =>
  h.sim.calls.some(
    (c) =>
      c.verb === 'watch' &&
      c.resource === resource &&
      (c.name === name || c.query?.fieldSelector === `metadata.name=${name}`),
  );
const watchingVmi = (name: string) => watching('virtualmachineinstances', name);

describe('H1: a start while the VM is Stopping', () => {
  test('waits for the old VMI to go within the retry budget, then starts it: the VM ends running', async () => {
    const name = await stopping();
    const replica = await h.replica({ VIRTWAKE_RETRY_BUDGET_MS: '20000' });
    const reply = h.send('io.virtwake.vm.start', { name }, { to: replica }).then((r) => r);
    await until('the start watches the VMI', watchingVmi(name));
    clock.advance(121_000);
    const res = await reply;
    expect(res.status).toBe(200);
    expect(replyData(res)).toMatchObject({ outcome: 'accepted' });
    await h.sim.settle();
    expect(vm(name).spec?.runStrategy).toBe('Always');
    expect(vm(name).status).toMatchObject({ printableStatus: 'Running', ready: true });
  });

  test('with wait: completed only once it runs', async () => {
    const name = await stopping();
    const reply = h.send('io.virtwake.vm.start', { name, wait: { timeoutSeconds: 20 } }).then((r) => r);
    await until('the start watches the VMI', watchingVmi(name));
    clock.advance(121_000);
    const res = await reply;
    expect(res.headers['ce-type']).toBe('io.virtwake.vm.start.completed');
    expect(replyData(res).status).toEqual({ printableStatus: 'Running', ready: true });
  });

  test('past the retry budget: 503 with Retry-After, never completed; the redelivery starts it', async () => {
    const name = await stopping();
    const res = await h.send('io.virtwake.vm.start', { name }, { id: 'h1-redelivered' });
    expect(res.status).toBe(503);
    expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(res.text).toMatch(/stopping/);
    expect(vm(name).spec?.runStrategy).toBe('Halted');
    clock.advance(121_000);
    await h.sim.settle();
    const again = await h.send(
      'io.virtwake.vm.start',
      { name, wait: { timeoutSeconds: 20 } },
      { id: 'h1-redelivered' },
    );
    expect(again.headers['ce-type']).toBe('io.virtwake.vm.start.completed');
    expect(vm(name).status?.printableStatus).toBe('Running');
  });

  test('activity wake of a Stopping VM waits it out the same way', async () => {
    const name = await stopping();
    const reply = h.send('io.virtwake.vm.activity', { name, wake: true, wait: { timeoutSeconds: 20 } }).then((r) => r);
    await until('the wake watches the VMI', watchingVmi(name));
    clock.advance(121_000);
    const res = await reply;
    expect(res.headers['ce-type']).toBe('io.virtwake.vm.activity.completed');
    expect(vm(name).status?.printableStatus).toBe('Running');
  });
});

describe('M1: "VM is already running" for a VMI that does not run yet', () => {
  function unschedulable(): string {
    const name = addVM('Always', { vmiPhase: 'Scheduling' });
    h.sim.store.setCondition('default', name, { type: 'PodScheduled', status: 'False', reason: 'Unschedulable' });
    h.sim.store.reconcile('default', name);
    return name;
  }

  test('ErrorUnschedulable without wait: accepted / AlreadyInProgress with the printableStatus seen', async () => {
    const name = unschedulable();
    await h.sim.settle();
    const res = await h.send('io.virtwake.vm.start', { name }).expect(200);
    expect(res.headers['ce-type']).toBe('io.virtwake.vm.start.accepted');
    expect(replyData(res)).toMatchObject({
      reason: 'AlreadyInProgress',
      status: { printableStatus: 'ErrorUnschedulable', ready: false },
    });
  });

  test('with wait: accepted / WaitTimeout while it does not run', async () => {
    const name = unschedulable();
    await h.sim.settle();
    const res = await h.send('io.virtwake.vm.start', { name, wait: { timeoutSeconds: 1 } }).expect(200);
    expect(replyData(res)).toMatchObject({ outcome: 'accepted', reason: 'WaitTimeout' });
  });

  test('with wait: completed once Running and ready', async () => {
    const name = addVM('Manual', { vmiPhase: 'Scheduled' });
    await h.sim.settle();
    expect(vm(name).status?.printableStatus).toBe('Starting');
    const reply = h.send('io.virtwake.vm.start', { name, wait: { timeoutSeconds: 20 } }).then((r) => r);
    await until('the start watches the VM', watching('virtualmachines', name));
    h.sim.store.setVMIPhase('default', name, 'Running');
    const res = await reply;
    expect(res.headers['ce-type']).toBe('io.virtwake.vm.start.completed');
    expect(replyData(res).status).toEqual({ printableStatus: 'Running', ready: true });
  });

  test('paused: true of a VM that runs unpaused is failed, saying so; of a paused VM completed', async () => {
    const running = addVM('Manual', { running: true });
    const res = await h.send('io.virtwake.vm.start', { name: running, paused: true }).expect(200);
    expect(res.headers['ce-type']).toBe('io.virtwake.vm.start.failed');
    expect(replyData(res)).toMatchObject({ reason: 'RunningNotPaused', status: { printableStatus: 'Running' } });
    expect(replyData(res).message).toMatch(/already runs and is not paused/);
    const paused = addVM('Manual', { running: true, paused: true });
    const ok = await h.send('io.virtwake.vm.start', { name: paused, paused: true }).expect(200);
    expect(replyData(ok)).toMatchObject({ outcome: 'completed', reason: 'AlreadyInState' });
  });
});

describe('M4 and L3: decided from runStrategy and the VMI, not printableStatus Stopped', () => {
  test('activity wake of a Halted VM that shows Provisioning PUTs start', async () => {
    const name = addVM('Halted');
    h.sim.store.setVolumeState('default', name, 'Provisioning');
    await h.sim.settle();
    expect(vm(name).status?.printableStatus).toBe('Provisioning');
    const res = await h.send('io.virtwake.vm.activity', { name, wake: true }).expect(200);
    expect(replyData(res)).toMatchObject({ outcome: 'accepted' });
    expect(starts(name)).toHaveLength(1);
    expect(vm(name).spec?.runStrategy).toBe('Always');
  });

  test('so does a Halted VM whose DataVolume failed or waits for binding', async () => {
    for (const state of ['DataVolumeError', 'WaitingForVolumeBinding'] as const) {
      const name = addVM('Halted');
      h.sim.store.setVolumeState('default', name, state);
      const res = await h.send('io.virtwake.vm.activity', { name, wake: true }).expect(200);
      expect(replyData(res)).toMatchObject({ outcome: 'accepted' });
      expect(starts(name)).toHaveLength(1);
    }
  });

  test('stop with wait of a VM whose DataVolume failed completes once the VMI is gone (L3)', async () => {
    const name = addVM('Always', { running: true });
    h.sim.store.setVolumeState('default', name, 'DataVolumeError');
    const res = await h.send('io.virtwake.vm.stop', { name, wait: { timeoutSeconds: 10 } }).expect(200);
    expect(res.headers['ce-type']).toBe('io.virtwake.vm.stop.completed');
    expect(replyData(res).status.printableStatus).toBe('DataVolumeError');
    expect(h.sim.store.getVMI('default', name)).toBeUndefined();
  });
});

describe('M5: a final VMI (a Manual VM whose guest powered off)', () => {
  test('stop is completed, saying the VMI stays', async () => {
    const name = addVM('Manual', { running: true });
    h.sim.store.setVMIPhase('default', name, 'Succeeded');
    h.sim.store.reconcile('default', name);
    await h.sim.settle();
    const res = await h.send('io.virtwake.vm.stop', { name, wait: { timeoutSeconds: 5 } }).expect(200);
    expect(res.headers['ce-type']).toBe('io.virtwake.vm.stop.completed');
    expect(replyData(res)).toMatchObject({ reason: 'AlreadyInState' });
    expect(replyData(res).message).toMatch(/VMI is Succeeded/);
  });

  test('activity wake starts it again', async () => {
    const name = addVM('Manual', { running: true });
    h.sim.store.setVMIPhase('default', name, 'Succeeded');
    h.sim.store.reconcile('default', name);
    await h.sim.settle();
    const res = await h.send('io.virtwake.vm.activity', { name, wake: true, wait: { timeoutSeconds: 10 } }).expect(200);
    expect(res.headers['ce-type']).toBe('io.virtwake.vm.activity.completed');
    expect(starts(name)).toHaveLength(1);
  });
});

describe('L4: transient refusals stay transient', () => {
  test('pause while the VMI is still being scheduled is 503, not failed', async () => {
    const name = addVM('Always', { vmiPhase: 'Scheduled' });
    const res = await h.send('io.virtwake.vm.pause', { name });
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBeDefined();
  });

  test('restart during a volume update is 503, not failed', async () => {
    const name = addVM('Always', { running: true });
    h.sim.store.setCondition('default', name, { type: 'VolumesChange', status: 'True' });
    h.sim.store.reconcile('default', name);
    await h.sim.settle();
    const res = await h.send('io.virtwake.vm.restart', { name });
    expect(res.status).toBe(503);
    expect(res.text).toMatch(/VM recovery required/);
  });
});

describe('L5: RerunOnFailure reruns a failed VMI itself', () => {
  test('a stop between the failed VMI and the rerun KubeVirt queued is 503, not AlreadyInState; once the VMI runs it stops', async () => {
    const name = addVM('RerunOnFailure');
    h.sim.pauseControllers();
    try {
      // virt-controller deleted the failed VMI and queued a Start; the new VMI is not there yet.
      h.sim.store.updateVM('default', name, (v) => {
        v.status = { ...(v.status ?? {}), stateChangeRequests: [{ action: 'Start' }] };
      });
      const res = await h.send('io.virtwake.vm.stop', { name }, { id: 'l5-stop' });
      expect(res.status).toBe(503);
      expect(res.text).toMatch(/about to start VM .* again \(a queued Start\)/);
    } finally {
      h.sim.resumeControllers();
    }
    h.sim.store.reconcile('default', name);
    await h.sim.settle();
    expect(vm(name).status?.printableStatus).toBe('Running');
    const again = await h.send('io.virtwake.vm.stop', { name, wait: { timeoutSeconds: 10 } }, { id: 'l5-stop' });
    expect(again.headers['ce-type']).toBe('io.virtwake.vm.stop.completed');
  });
});

describe('L1: a concurrent change is virt-api 500, retried from a fresh read', () => {
  test('two starts racing each end accepted or completed; one of them met the 500', async () => {
    const name = addVM('Halted');
    h.sim.store.setVirtApiWindow(100);
    try {
      const [a, b] = await Promise.all([
        h.send('io.virtwake.vm.start', { name }),
        h.send('io.virtwake.vm.start', { name }),
      ]);
      expect([a.status, b.status]).toEqual([200, 200]);
      for (const r of [a, b]) expect(['accepted', 'completed']).toContain(replyData(r).outcome);
      expect(starts(name).map((c) => c.status)).toContain(500);
    } finally {
      h.sim.store.setVirtApiWindow(0);
    }
  });
});
