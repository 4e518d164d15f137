import { Harness, replyData, startHarness } from '../helpers/harness';

// start, stop, restart, pause, unpause over HTTP against the simulator, for
// every runStrategy × action cell of reference kubevirt-api.md §2.3.

const OPT_IN = { 'virtwake.io/enabled': 'true' };
let h: Harness;

beforeAll(async () => {
  h = await startHarness({ sim: { stepMs: 5 } });
});
afterAll(() => h.close());

let n = 0;
function addVM(
  runStrategy: string,
  state: { running?: boolean; paused?: boolean; vmiPhase?: string; vmiCreatedAt?: Date } = {},
  labels: Record<string, string> = OPT_IN,
): string {
  const name = `vm-${runStrategy.toLowerCase()}-${++n}`;
  h.sim.store.addVM({ metadata: { name, namespace: 'default', labels }, spec: { runStrategy } }, state);
  return name;
}

const writes = () => h.sim.calls.filter((c) => c.verb !== 'get' && c.verb !== 'list' && c.verb !== 'watch');

interface Cell {
  action: string;
  runStrategy: string;
  state: { running?: boolean; paused?: boolean; vmiPhase?: string };
  outcome: string;
  reason?: string;
  message?: RegExp;
}

const cells: Cell[] = [
  // KubeVirt runs an Always VM itself: without a VMI yet (its controller has not caught up, or it waits out a
  // start-failure backoff) the start is KubeVirt's already, whatever the refusal says (issue 13: whether a start
  // is under way is read from runStrategy, the VMI and stateChangeRequests).
  { action: 'start', runStrategy: 'Always', state: {}, outcome: 'accepted', reason: 'AlreadyInProgress' },
  {
    action: 'start',
    runStrategy: 'Always',
    state: { running: true },
    outcome: 'completed',
    reason: 'AlreadyInState',
    message: /VM is already running/,
  },
  { action: 'start', runStrategy: 'Halted', state: {}, outcome: 'accepted' },
  { action: 'start', runStrategy: 'Manual', state: {}, outcome: 'accepted' },
  { action: 'start', runStrategy: 'Manual', state: { running: true }, outcome: 'completed', reason: 'AlreadyInState' },
  { action: 'start', runStrategy: 'RerunOnFailure', state: {}, outcome: 'accepted' },
  // KubeVirt deletes the failed VMI and reruns the VM itself (finding L5): the start is under way.
  {
    action: 'start',
    runStrategy: 'RerunOnFailure',
    state: { running: true, vmiPhase: 'Failed' },
    outcome: 'accepted',
    reason: 'AlreadyInProgress',
  },
  {
    action: 'start',
    runStrategy: 'Once',
    state: {},
    outcome: 'failed',
    reason: 'Refused',
    message: /Once does not support manual start requests/,
  },
  { action: 'stop', runStrategy: 'Always', state: { running: true }, outcome: 'accepted' },
  {
    action: 'stop',
    runStrategy: 'Halted',
    state: {},
    outcome: 'completed',
    reason: 'AlreadyInState',
    message: /VM is not running/,
  },
  { action: 'stop', runStrategy: 'Manual', state: { running: true }, outcome: 'accepted' },
  { action: 'stop', runStrategy: 'Manual', state: {}, outcome: 'completed', reason: 'AlreadyInState' },
  { action: 'stop', runStrategy: 'RerunOnFailure', state: { running: true }, outcome: 'accepted' },
  { action: 'stop', runStrategy: 'RerunOnFailure', state: {}, outcome: 'completed', reason: 'AlreadyInState' },
  { action: 'stop', runStrategy: 'Once', state: { running: true }, outcome: 'accepted' },
  { action: 'restart', runStrategy: 'Always', state: { running: true }, outcome: 'accepted' },
  {
    action: 'restart',
    runStrategy: 'Halted',
    state: {},
    outcome: 'failed',
    reason: 'Refused',
    message: /RunStategy Halted does not support manual restart requests/,
  },
  { action: 'restart', runStrategy: 'Manual', state: { running: true }, outcome: 'accepted' },
  {
    action: 'restart',
    runStrategy: 'Manual',
    state: {},
    outcome: 'failed',
    reason: 'Refused',
    message: /VM is not running/,
  },
  { action: 'restart', runStrategy: 'RerunOnFailure', state: { running: true }, outcome: 'accepted' },
  {
    action: 'restart',
    runStrategy: 'Once',
    state: { running: true },
    outcome: 'failed',
    reason: 'Refused',
    message: /RunStategy Once does not support manual restart requests/,
  },
  { action: 'pause', runStrategy: 'Always', state: { running: true }, outcome: 'accepted' },
  {
    action: 'pause',
    runStrategy: 'Always',
    state: { running: true, paused: true },
    outcome: 'completed',
    reason: 'AlreadyInState',
    message: /VMI is already paused/,
  },
  { action: 'pause', runStrategy: 'Halted', state: {}, outcome: 'failed', reason: 'Refused' },
  { action: 'unpause', runStrategy: 'Manual', state: { running: true, paused: true }, outcome: 'accepted' },
  {
    action: 'unpause',
    runStrategy: 'Manual',
    state: { running: true },
    outcome: 'completed',
    reason: 'AlreadyInState',
    message: /VMI is not paused/,
  },
  { action: 'unpause', runStrategy: 'Halted', state: {}, outcome: 'failed', reason: 'Refused' },
];

describe('runStrategy × action', () => {
  test.each(cells)('$action on $runStrategy $state → $outcome $reason', async (c) => {
    const name = addVM(c.runStrategy, c.state);
    const res = await h.send(`io.virtwake.vm.${c.action}`, { name }).expect(200);
    expect(res.headers['ce-type']).toBe(`io.virtwake.vm.${c.action}.${c.outcome}`);
    const data = replyData(res);
    expect(data).toMatchObject({ namespace: 'default', name, action: c.action, outcome: c.outcome });
    expect(data.reason).toBe(c.reason);
    if (c.message) expect(data.message).toMatch(c.message);
  });
});

describe('wait holds the reply until the target state is observed', () => {
  test('start → Running and ready', async () => {
    const name = addVM('Halted');
    const res = await h.send('io.virtwake.vm.start', { name, wait: { timeoutSeconds: 30 } }).expect(200);
    expect(res.headers['ce-type']).toBe('io.virtwake.vm.start.completed');
    expect(replyData(res).status).toEqual({ printableStatus: 'Running', ready: true });
  });

  test('start paused → Paused', async () => {
    const name = addVM('Halted');
    const res = await h.send('io.virtwake.vm.start', { name, paused: true, wait: { timeoutSeconds: 30 } }).expect(200);
    expect(res.headers['ce-type']).toBe('io.virtwake.vm.start.completed');
    expect(replyData(res).status.printableStatus).toBe('Paused');
  });

  test('stop → Stopped with no VMI', async () => {
    const name = addVM('Always', { running: true });
    const res = await h
      .send('io.virtwake.vm.stop', { name, gracePeriodSeconds: 0, wait: { timeoutSeconds: 30 } })
      .expect(200);
    expect(res.headers['ce-type']).toBe('io.virtwake.vm.stop.completed');
    expect(h.sim.store.getVMI('default', name)).toBeUndefined();
  });

  test('restart → a new VMI running', async () => {
    const name = addVM('Manual', { running: true });
    const before = h.sim.store.getVMI('default', name)?.metadata.uid;
    const res = await h.send('io.virtwake.vm.restart', { name, wait: { timeoutSeconds: 30 } }).expect(200);
    expect(res.headers['ce-type']).toBe('io.virtwake.vm.restart.completed');
    const after = h.sim.store.getVMI('default', name);
    expect(after?.metadata.uid).not.toBe(before);
    expect(after?.status?.phase).toBe('Running');
  });

  test('pause → Paused, unpause → Running', async () => {
    const name = addVM('Always', { running: true });
    let res = await h.send('io.virtwake.vm.pause', { name, wait: { timeoutSeconds: 30 } }).expect(200);
    expect(replyData(res)).toMatchObject({ outcome: 'completed', status: { printableStatus: 'Paused' } });
    res = await h.send('io.virtwake.vm.unpause', { name, wait: { timeoutSeconds: 30 } }).expect(200);
    expect(replyData(res)).toMatchObject({ outcome: 'completed', status: { printableStatus: 'Running' } });
  });
});

describe('dryRun', () => {
  test('is validated by KubeVirt and changes nothing', async () => {
    const name = addVM('Halted');
    const res = await h.send('io.virtwake.vm.start', { name, dryRun: true, wait: { timeoutSeconds: 5 } }).expect(200);
    expect(replyData(res)).toMatchObject({ outcome: 'accepted', reason: 'DryRun' });
    await h.sim.settle();
    expect(h.sim.store.getVM('default', name)?.spec?.runStrategy).toBe('Halted');
    expect(h.sim.store.getVMI('default', name)).toBeUndefined();
  });

  test('a refusal still shows in a dry run', async () => {
    const name = addVM('Always');
    const res = await h.send('io.virtwake.vm.start', { name, dryRun: true }).expect(200);
    expect(replyData(res)).toMatchObject({ outcome: 'failed', reason: 'Refused' });
  });
});

describe('selector commands', () => {
  test('act on every opted-in VM that matches, one summary reply typed by the worst outcome', async () => {
    const labels = { ...OPT_IN, fleet: 'blue' };
    const a = addVM('Halted', {}, labels);
    const b = addVM('Manual', {}, labels);
    const c = addVM('Once', {}, labels); // refused: Once does not support manual start requests
    addVM('Halted', {}, { fleet: 'blue' }); // not opted in: never touched
    const res = await h.send('io.virtwake.vm.start', { selector: { matchLabels: { fleet: 'blue' } } }).expect(200);
    expect(res.headers['ce-type']).toBe('io.virtwake.vm.start.failed');
    const data = replyData(res);
    expect(data.matched).toBe(3);
    // Sorted by name: vm-halted-… < vm-manual-… < vm-once-….
    expect(data.results).toEqual([
      { name: a, outcome: 'accepted' },
      { name: b, outcome: 'accepted' },
      expect.objectContaining({ name: c, outcome: 'failed', reason: 'Refused' }),
    ]);
  });

  test('no match is completed with reason NoMatch', async () => {
    const res = await h.send('io.virtwake.vm.stop', { selector: { matchLabels: { fleet: 'none' } } }).expect(200);
    expect(replyData(res)).toMatchObject({ outcome: 'completed', reason: 'NoMatch', matched: 0 });
  });
});

describe('replies', () => {
  test('carry routing attributes and a deterministic id', async () => {
    const name = addVM('Always', { running: true });
    const first = await h.send('io.virtwake.vm.start', { name }, { id: 'fixed-1', source: '/ci' }).expect(200);
    const again = await h.send('io.virtwake.vm.start', { name }, { id: 'fixed-1', source: '/ci' }).expect(200);
    expect(first.headers['ce-id']).toBe(again.headers['ce-id']);
    expect(first.headers).toMatchObject({
      'ce-specversion': '1.0',
      'ce-source': '/virtwake/start',
      'ce-subject': `default/${name}`,
      'ce-vmnamespace': 'default',
      'ce-vmname': name,
      'ce-causationid': 'fixed-1',
    });
    expect(replyData(first).request).toEqual({ id: 'fixed-1', source: '/ci', type: 'io.virtwake.vm.start' });
    const other = await h.send('io.virtwake.vm.start', { name }, { id: 'fixed-2', source: '/ci' }).expect(200);
    expect(other.headers['ce-id']).not.toBe(first.headers['ce-id']);
  });

  test('a VM that does not exist is failed/NotFound', async () => {
    const res = await h.send('io.virtwake.vm.stop', { name: 'no-such-vm' }).expect(200);
    expect(res.headers['ce-type']).toBe('io.virtwake.vm.stop.failed');
    expect(replyData(res)).toMatchObject({ reason: 'NotFound' });
  });
});

describe('idempotency (contract §6)', () => {
  test('a restart redelivered to two instances at once restarts once', async () => {
    const name = addVM('Always', { running: true, vmiCreatedAt: new Date(Date.now() - 3_600_000) });
    const before = h.sim.store.getVMI('default', name)?.metadata.uid;
    const second = await h.replica();
    h.sim.resetCalls();
    const event = { id: 'restart-once', source: '/ops', time: new Date(Date.now() - 60_000).toISOString() };
    const results = await Promise.all([
      h.send('io.virtwake.vm.restart', { name }, event),
      h.send('io.virtwake.vm.restart', { name }, { ...event, to: second }),
      h.send('io.virtwake.vm.restart', { name }, event),
    ]);
    for (const r of results) expect(r.status).toBe(200);
    await h.sim.settle();
    const restarts = h.sim.calls.filter((c) => c.subresource === 'restart' && c.status === 202);
    expect(restarts).toHaveLength(1);
    // Redelivered later, after the restart took effect: still no second restart.
    const late = await h.send('io.virtwake.vm.restart', { name }, event).expect(200);
    // The ledger holds the request: its final outcome, seen now (a new VMI runs), not a new AlreadyInState.
    expect(replyData(late)).toMatchObject({ outcome: 'completed' });
    expect(replyData(late).reason).toBeUndefined();
    expect(h.sim.calls.filter((c) => c.subresource === 'restart' && c.status === 202)).toHaveLength(1);
    expect(h.sim.store.getVMI('default', name)?.metadata.uid).not.toBe(before);
  });

  test('a restart requested before the VM was last started is already served', async () => {
    const name = addVM('Always', { running: true });
    const res = await h
      .send('io.virtwake.vm.restart', { name }, { time: new Date(Date.now() - 3_600_000).toISOString() })
      .expect(200);
    expect(replyData(res)).toMatchObject({ outcome: 'completed', reason: 'AlreadyInState' });
  });

  test('start and stop redelivered: already in state is completed', async () => {
    const name = addVM('Halted');
    const first = await h
      .send('io.virtwake.vm.start', { name, wait: { timeoutSeconds: 30 } }, { id: 'twice' })
      .expect(200);
    const again = await h.send('io.virtwake.vm.start', { name }, { id: 'twice' }).expect(200);
    // contract §6: a delivery of a recorded request is answered with its recorded outcome (it was
    // AlreadyInState before the ledger), so with the same result id as the first answer.
    expect(replyData(again)).toEqual(expect.objectContaining({ outcome: 'completed' }));
    expect(replyData(again).reason).toBeUndefined();
    expect(again.headers['ce-id']).toBe(first.headers['ce-id']);
  });

  test('no writes happen for a command whose VM is gone', () => {
    expect(writes().every((c) => c.name !== 'no-such-vm')).toBe(true);
  });
});
