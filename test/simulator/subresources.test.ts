// virt-api details around the table: check order, body decoding, dry run, the state change
// request queue ("already underway"), pause/unpause, and webhook denials during snapshots.
import { request, startEnv, subresource, type TestEnv } from './helpers';

let env: TestEnv;
beforeAll(async () => {
  env = await startEnv();
});
afterAll(() => env.sim.close());
afterEach(() => env.sim.resumeControllers());

let seq = 0;
const fresh = (prefix: string) => `${prefix}-${++seq}`;

test('404 for a missing VM uses virt-api singular resource name', async () => {
  const res = await subresource(env.kc, 'virtualmachines', 'ghost', 'start');
  expect(res.status).toBe(404);
  expect(res.json).toEqual({
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: 'virtualmachine.kubevirt.io "ghost" not found',
    reason: 'NotFound',
    details: { name: 'ghost', group: 'kubevirt.io', kind: 'virtualmachine' },
    code: 404,
  });
  const pause = await subresource(env.kc, 'virtualmachineinstances', 'ghost', 'pause');
  expect(pause.status).toBe(404);
  expect(pause.json.message).toBe('virtualmachineinstance.kubevirt.io "ghost" not found');
});

test('malformed body: 400, but only after the already-running check', async () => {
  const { sim, kc } = env;
  const stopped = fresh('body');
  sim.store.addVM({ metadata: { name: stopped }, spec: { runStrategy: 'Halted' } });
  const bad = await subresource(kc, 'virtualmachines', stopped, 'start', '{not json');
  expect(bad.status).toBe(400);
  expect(bad.json.reason).toBe('BadRequest');
  expect(bad.json.message).toMatch(/^Can not unmarshal Request body to struct, error: /);
  const wrongType = await subresource(kc, 'virtualmachines', stopped, 'start', { paused: 'yes' });
  expect(wrongType.status).toBe(400);
  expect(wrongType.json.message).toBe(
    'Can not unmarshal Request body to struct, error: json: cannot unmarshal string into Go struct field StartOptions.paused of type bool',
  );
  const running = fresh('body');
  sim.store.addVM({ metadata: { name: running }, spec: { runStrategy: 'Manual' } }, { running: true });
  const conflict = await subresource(kc, 'virtualmachines', running, 'start', '{not json');
  expect(conflict.status).toBe(409);
  // stop decodes its body first.
  const stopBad = await subresource(kc, 'virtualmachines', 'does-not-exist', 'stop', '{not json');
  expect(stopBad.status).toBe(400);
});

test('empty body, YAML body and v1alpha3 are accepted', async () => {
  const { sim, kc } = env;
  sim.pauseControllers();
  const a = fresh('accept');
  sim.store.addVM({ metadata: { name: a }, spec: { runStrategy: 'Manual' } });
  expect(
    (await request(kc, 'PUT', `/apis/subresources.kubevirt.io/v1alpha3/namespaces/default/virtualmachines/${a}/start`))
      .status,
  ).toBe(202);
  const b = fresh('accept');
  sim.store.addVM({ metadata: { name: b }, spec: { runStrategy: 'Manual' } });
  const yaml = await request(
    kc,
    'PUT',
    `/apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachines/${b}/start`,
    'paused: true',
    { 'Content-Type': 'application/yaml' },
  );
  expect(yaml.status).toBe(202);
  expect(sim.store.getVM('default', b)!.status!.stateChangeRequests).toEqual([
    { action: 'Start', data: { paused: 'true' } },
  ]);
});

test('restart gracePeriodSeconds: only 0 is allowed, and 0 forces a 1s VMI grace period', async () => {
  const { sim, kc } = env;
  const name = fresh('restart');
  sim.store.addVM({ metadata: { name }, spec: { runStrategy: 'Always' } }, { running: true });
  const five = await subresource(kc, 'virtualmachines', name, 'restart', { gracePeriodSeconds: 5 });
  expect(five.status).toBe(400);
  expect(five.json.message).toBe('For force restart, only gracePeriod=0 is supported for now');
  const neg = await subresource(kc, 'virtualmachines', name, 'restart', { gracePeriodSeconds: -1 });
  expect(neg.json.message).toBe('gracePeriod has to be greater or equal to 0');
  // Validation happens before the VM lookup.
  expect((await subresource(kc, 'virtualmachines', 'nope', 'restart', { gracePeriodSeconds: 5 })).status).toBe(400);
  sim.pauseControllers();
  expect((await subresource(kc, 'virtualmachines', name, 'restart', { gracePeriodSeconds: 0 })).status).toBe(202);
  expect(sim.store.getVMI('default', name)!.spec.terminationGracePeriodSeconds).toBe(1);
});

test('stop gracePeriod is written to the VMI even when the answer is 409', async () => {
  const { sim, kc } = env;
  sim.pauseControllers();
  const name = fresh('grace');
  sim.store.addVM({ metadata: { name }, spec: { runStrategy: 'Halted' } }, { vmiPhase: 'Running' });
  const res = await subresource(kc, 'virtualmachines', name, 'stop', { gracePeriod: 500 });
  expect(res.status).toBe(409);
  expect(sim.store.getVMI('default', name)!.spec.terminationGracePeriodSeconds).toBe(500);
});

test('dryRun in the body answers as if done and persists nothing', async () => {
  const { sim, kc } = env;
  sim.pauseControllers();
  const name = fresh('dry');
  sim.store.addVM({ metadata: { name }, spec: { runStrategy: 'Halted' } });
  const rv = sim.store.resourceVersion();
  const res = await subresource(kc, 'virtualmachines', name, 'start', { dryRun: ['All'] });
  expect(res.status).toBe(202);
  expect(sim.store.resourceVersion()).toBe(rv);
  expect(sim.store.getVM('default', name)!.spec.runStrategy).toBe('Halted');
  expect(sim.calls.at(-1)).toMatchObject({
    verb: 'update',
    group: 'subresources.kubevirt.io',
    resource: 'virtualmachines',
    subresource: 'start',
    dryRun: true,
  });
  // A refusal is still a refusal under dry run.
  const running = fresh('dry');
  sim.store.addVM({ metadata: { name: running }, spec: { runStrategy: 'Always' } }, { running: true });
  expect((await subresource(kc, 'virtualmachines', running, 'start', { dryRun: ['All'] })).status).toBe(409);
});

test('legacy spec.running VMs keep using spec.running', async () => {
  const { sim, kc } = env;
  sim.pauseControllers();
  const a = fresh('legacy');
  sim.store.addVM({ metadata: { name: a }, spec: { running: false } });
  expect((await subresource(kc, 'virtualmachines', a, 'start')).status).toBe(202);
  expect(sim.store.getVM('default', a)!.spec).toMatchObject({ running: true });
  expect(sim.store.getVM('default', a)!.spec.runStrategy).toBeUndefined();
  const b = fresh('legacy');
  sim.store.addVM({ metadata: { name: b }, spec: { running: true } }, { running: true });
  expect((await subresource(kc, 'virtualmachines', b, 'stop')).status).toBe(202);
  expect(sim.store.getVM('default', b)!.spec.running).toBe(false);
});

test('a second request before the first is consumed: 500 already underway; a lone stop replaces the queue', async () => {
  const { sim, kc } = env;
  sim.pauseControllers();
  const name = fresh('queue');
  sim.store.addVM({ metadata: { name }, spec: { runStrategy: 'Manual' } });
  expect((await subresource(kc, 'virtualmachines', name, 'start')).status).toBe(202);
  const again = await subresource(kc, 'virtualmachines', name, 'start');
  expect(again.status).toBe(500);
  expect(again.json).toEqual({
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: 'Internal error occurred: unable to complete request: stop/start already underway',
    reason: 'InternalError',
    details: { causes: [{ message: 'unable to complete request: stop/start already underway' }] },
    code: 500,
  });
  const running = fresh('queue');
  sim.store.addVM({ metadata: { name: running }, spec: { runStrategy: 'Manual' } }, { running: true });
  const uid = sim.store.getVMI('default', running)!.metadata.uid;
  expect((await subresource(kc, 'virtualmachines', running, 'restart')).status).toBe(202);
  expect((await subresource(kc, 'virtualmachines', running, 'restart')).status).toBe(500);
  expect((await subresource(kc, 'virtualmachines', running, 'stop')).status).toBe(202);
  expect(sim.store.getVM('default', running)!.status!.stateChangeRequests).toEqual([{ action: 'Stop', uid }]);
});

test('ManualRecoveryRequired and VolumesChange conditions block start and restart', async () => {
  const { sim, kc } = env;
  const name = fresh('recovery');
  sim.store.addVM({ metadata: { name }, spec: { runStrategy: 'Manual' } });
  sim.store.setCondition('default', name, { type: 'ManualRecoveryRequired', status: 'True' }, 'vm');
  const res = await subresource(kc, 'virtualmachines', name, 'start');
  expect(res.status).toBe(409);
  expect(res.json.message).toContain('VM recovery required: Volume migration failed');
});

test('pause and unpause: 200 with an empty body, then the VMI reports it; errors per state', async () => {
  const { sim, kc } = env;
  const name = fresh('pause');
  sim.store.addVM({ metadata: { name }, spec: { runStrategy: 'Always' } }, { running: true });
  const unpauseFirst = await subresource(kc, 'virtualmachineinstances', name, 'unpause');
  expect(unpauseFirst.status).toBe(409);
  expect(unpauseFirst.json.message).toBe(
    `Operation cannot be fulfilled on virtualmachineinstance.kubevirt.io "${name}": VMI is not paused`,
  );
  const dry = await subresource(kc, 'virtualmachineinstances', name, 'pause', { dryRun: ['All'] });
  expect(dry.status).toBe(200);
  await sim.settle();
  expect(sim.store.getVM('default', name)!.status!.printableStatus).toBe('Running');
  const res = await subresource(kc, 'virtualmachineinstances', name, 'pause');
  expect(res.status).toBe(200);
  expect(res.text).toBe('');
  await sim.settle();
  const vmi = sim.store.getVMI('default', name)!;
  expect(vmi.status.conditions).toEqual(
    expect.arrayContaining([expect.objectContaining({ type: 'Paused', status: 'True', reason: 'PausedByUser' })]),
  );
  expect(vmi.status.conditions!.find((c) => c.type === 'Ready')).toMatchObject({ status: 'False' });
  const vm = sim.store.getVM('default', name)!;
  expect(vm.status).toMatchObject({ printableStatus: 'Paused', ready: false });
  expect(vm.status!.conditions!.find((c) => c.type === 'Paused')).toMatchObject({ status: 'True' });
  const twice = await subresource(kc, 'virtualmachineinstances', name, 'pause');
  expect(twice.json.message).toContain('VMI is already paused');
  expect((await subresource(kc, 'virtualmachineinstances', name, 'unpause')).status).toBe(200);
  await sim.settle();
  expect(sim.store.getVM('default', name)!.status).toMatchObject({ printableStatus: 'Running', ready: true });
  expect(sim.store.getVM('default', name)!.status!.conditions!.some((c) => c.type === 'Paused')).toBe(false);

  const stopped = fresh('pause');
  sim.store.addVM({ metadata: { name: stopped }, spec: { runStrategy: 'Manual' } }, { vmiPhase: 'Scheduling' });
  const notRunning = await subresource(kc, 'virtualmachineinstances', stopped, 'pause');
  expect(notRunning.json.message).toContain('VM is not running');
  expect((await subresource(kc, 'virtualmachineinstances', stopped, 'unpause')).json.message).toContain(
    'VMI is not running',
  );
  expect((await subresource(kc, 'virtualmachineinstances', name, 'freeze')).status).toBe(200);
  expect(sim.store.getVMI('default', name)!.status.fsFreezeStatus).toBe('frozen');
  expect((await subresource(kc, 'virtualmachineinstances', name, 'unfreeze')).status).toBe(200);
});

test('while a snapshot holds the VM: spec-patching actions fail with 500, requests go through, unpause is 409', async () => {
  const { sim, kc } = env;
  sim.pauseControllers();
  const halted = fresh('locked');
  sim.store.addVM({ metadata: { name: halted }, spec: { runStrategy: 'Halted' } });
  sim.store.updateVM('default', halted, (vm) => {
    vm.status = { ...vm.status, snapshotInProgress: 'snap-1' };
  });
  const res = await subresource(kc, 'virtualmachines', halted, 'start');
  expect(res.status).toBe(500);
  expect(res.json.reason).toBe('InternalError');
  expect(res.json.message).toBe(
    'Internal error occurred: admission webhook "virtualmachine-validator.kubevirt.io" denied the request: Cannot update vm running state until snapshot "snap-1" completes',
  );
  const manual = fresh('locked');
  sim.store.addVM({ metadata: { name: manual }, spec: { runStrategy: 'Manual' } }, { paused: true });
  sim.store.updateVM('default', manual, (vm) => {
    vm.status = { ...vm.status, snapshotInProgress: 'snap-2' };
  });
  expect((await subresource(kc, 'virtualmachines', manual, 'stop')).status).toBe(202);
  const unpause = await subresource(kc, 'virtualmachineinstances', manual, 'unpause');
  expect(unpause.status).toBe(409);
  expect(unpause.json.message).toBe(
    `Operation cannot be fulfilled on virtualmachine.kubevirt.io "${manual}": VM snapshot is in progress`,
  );
});

test('while a restore holds the VM, changing its run strategy is denied (500 from start)', async () => {
  const { sim, kc } = env;
  sim.pauseControllers();
  const name = fresh('restoring');
  sim.store.addVM({ metadata: { name }, spec: { runStrategy: 'Halted' } });
  sim.store.updateVM('default', name, (vm) => {
    vm.status = { ...vm.status, restoreInProgress: 'restore-1' };
  });
  const res = await subresource(kc, 'virtualmachines', name, 'start');
  expect(res.status).toBe(500);
  expect(res.json.message).toBe(
    'Internal error occurred: admission webhook "virtualmachine-validator.kubevirt.io" denied the request: Cannot update VM runStrategy until restore "restore-1" completes',
  );
});

test('RBAC view of subresource calls', async () => {
  const { sim, kc } = env;
  const name = fresh('rbac');
  sim.store.addVM({ metadata: { name }, spec: { runStrategy: 'Halted' } });
  sim.resetCalls();
  await subresource(kc, 'virtualmachines', name, 'start');
  expect(sim.calls).toEqual([
    expect.objectContaining({
      method: 'PUT',
      path: `/apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachines/${name}/start`,
      verb: 'update',
      group: 'subresources.kubevirt.io',
      version: 'v1',
      resource: 'virtualmachines',
      subresource: 'start',
      namespace: 'default',
      name,
      status: 202,
      dryRun: false,
    }),
  ]);
});
