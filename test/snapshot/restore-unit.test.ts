import { KubeApiError } from '../../functions/runtime/kube/errors';
import type { VirtualMachineRestore } from '../../functions/runtime/snapshot-objects';
import { restore, RestoreCommand } from '../../functions/restore';
import { objectMetaValidator, validate, validatorFor } from '../knative/manifests';
import { context, Fake, fakeKubeVirt, vmObject } from './fake';

// The restore function against an in-memory KubeVirt: every reason it refuses
// up front, the object it creates, redelivery, and startAfter.

const RESTORES = 'virtualmachinerestores';
let fake: Fake;

const readySnap = (
  name: string,
  vm = 'erp',
  status: Record<string, unknown> = { phase: 'Succeeded', readyToUse: true },
) => ({
  metadata: { name },
  spec: { source: { apiGroup: 'kubevirt.io', kind: 'VirtualMachine', name: vm } },
  status,
});

beforeEach(() => {
  fake = fakeKubeVirt();
  fake.put('virtualmachines', vmObject('erp') as never);
  fake.put('virtualmachinesnapshots', readySnap('good') as never);
});

const run = (command: Partial<RestoreCommand>, o: Parameters<typeof context>[2] = {}) =>
  restore.run(context(fake, { name: 'erp', snapshotName: 'good', ...command } as RestoreCommand, o));
const only = () => {
  const all = fake.all(RESTORES) as unknown as VirtualMachineRestore[];
  expect(all).toHaveLength(1);
  return all[0];
};
const running = () => fake.put('virtualmachineinstances', { metadata: { name: 'erp' }, status: { phase: 'Running' } });

describe('refused before anything is created', () => {
  test.each<[string, () => void, Partial<RestoreCommand>, string, RegExp]>([
    [
      'a missing snapshot',
      () => {},
      { snapshotName: 'nope' },
      'SnapshotNotFound',
      /VirtualMachineSnapshot default\/nope does not exist/,
    ],
    [
      'a snapshot not ready yet',
      () =>
        fake.put(
          'virtualmachinesnapshots',
          readySnap('young', 'erp', { phase: 'InProgress', readyToUse: false }) as never,
        ),
      { snapshotName: 'young' },
      'SnapshotNotReady',
      /young is not ready to use \(phase InProgress\)/,
    ],
    [
      'a Succeeded snapshot not readyToUse',
      () =>
        fake.put(
          'virtualmachinesnapshots',
          readySnap('young', 'erp', { phase: 'Succeeded', readyToUse: false }) as never,
        ),
      { snapshotName: 'young' },
      'SnapshotNotReady',
      /is not ready to use \(phase Succeeded\)/,
    ],
    [
      'a failed snapshot',
      () =>
        fake.put(
          'virtualmachinesnapshots',
          readySnap('bad', 'erp', {
            phase: 'Failed',
            conditions: [{ type: 'Failure', status: 'True', reason: 'snapshot deadline exceeded' }],
          }) as never,
        ),
      { snapshotName: 'bad' },
      'SnapshotFailed',
      /bad failed and cannot be restored: snapshot deadline exceeded/,
    ],
    [
      'a snapshot of another VM',
      () => fake.put('virtualmachinesnapshots', readySnap('crm-1', 'crm') as never),
      { snapshotName: 'crm-1' },
      'SnapshotOfOtherVM',
      /crm-1 is a snapshot of VM crm, not of erp/,
    ],
    [
      'a restore in progress',
      () =>
        fake.put(
          'virtualmachines',
          vmObject('erp', { printableStatus: 'Stopped', restoreInProgress: 'other-restore' }) as never,
        ),
      {},
      'RestoreInProgress',
      /VirtualMachineRestore "other-restore" is in progress for VM erp/,
    ],
    [
      'a running VM without stopFirst',
      running,
      {},
      'TargetRunning',
      /has a VirtualMachineInstance \(phase Running\).*stop it first or send stopFirst: true/,
    ],
  ])('%s', async (_what, arrange, command, reason, message) => {
    arrange();
    const o = await run(command);
    expect(o).toMatchObject({ outcome: 'failed', reason });
    expect(o.message).toMatch(message);
    expect(fake.calls.some((c) => c.startsWith('create'))).toBe(false);
  });

  test('KubeVirt’s one-restore-per-target webhook is RestoreInProgress', async () => {
    fake.admit = () => {
      throw new KubeApiError(
        400,
        'BadRequest',
        'admission webhook "virtualmachinerestore-validator.snapshot.kubevirt.io" denied the request: VirtualMachineRestore "r-1" in progress',
      );
    };
    expect(await run({})).toMatchObject({
      outcome: 'failed',
      reason: 'RestoreInProgress',
      message: expect.stringContaining('VirtualMachineRestore "r-1" in progress'),
    });
  });

  test('any other refusal is Refused, verbatim', async () => {
    fake.admit = () => {
      throw new KubeApiError(
        400,
        'BadRequest',
        'admission webhook denied the request: spec.target.kind: Invalid value: "VirtualMachineInstance"',
      );
    };
    // (The feature gate's refusal says more than this: SnapshotApiUnavailable, test/kubevirt/snapshot-findings.test.ts.)
    expect(await run({})).toMatchObject({
      outcome: 'failed',
      reason: 'Refused',
      message: expect.stringContaining('spec.target.kind: Invalid value'),
    });
  });
});

describe('the object it creates', () => {
  test('a stopped VM: FailImmediate, so a VM started meanwhile fails fast instead of a 5-minute wait', async () => {
    const o = await run({}, { id: 'r-1' });
    expect(o).toMatchObject({
      outcome: 'accepted',
      restore: { name: expect.stringMatching(/^vw-erp-[0-9a-f]{10}$/), complete: false },
    });
    const r = only();
    expect(validate(validatorFor('snapshot.kubevirt.io_v1beta1_VirtualMachineRestore.json'), r)).toEqual([]);
    expect(validate(objectMetaValidator(), r.metadata)).toEqual([]);
    expect(r).toMatchObject({
      apiVersion: 'snapshot.kubevirt.io/v1beta1',
      kind: 'VirtualMachineRestore',
      metadata: {
        labels: { 'virtwake.io/vm': 'erp', 'app.kubernetes.io/managed-by': 'virtwake' },
        annotations: { 'virtwake.io/request-id': 'r-1' },
      },
      spec: {
        target: { apiGroup: 'kubevirt.io', kind: 'VirtualMachine', name: 'erp' },
        virtualMachineSnapshotName: 'good',
        targetReadinessPolicy: 'FailImmediate',
      },
    });
  });

  test('stopFirst on a running VM: StopTarget', async () => {
    running();
    await run({ stopFirst: true });
    expect(only().spec.targetReadinessPolicy).toBe('StopTarget');
  });

  test('dryRun validates and creates nothing', async () => {
    expect(await run({ dryRun: true })).toMatchObject({ outcome: 'accepted', reason: 'DryRun' });
    expect(fake.calls).toContain('create virtualmachinerestores dryRun');
    expect(fake.all(RESTORES)).toHaveLength(0);
  });
});

describe('redelivery', () => {
  test('finds its own restore first and checks nothing again, though the VM now runs', async () => {
    await run({ stopFirst: true });
    const r = only();
    r.status = { complete: true };
    running();
    fake.calls.length = 0;
    expect(await run({ stopFirst: true })).toMatchObject({
      outcome: 'completed',
      restore: { name: r.metadata.name, complete: true },
    });
    expect(fake.calls.some((c) => c.startsWith('create') || c.includes('virtualmachinesnapshots'))).toBe(false);
  });

  test('a restore of that name made by another request is NameInUse', async () => {
    await run({}, { id: 'a' });
    const r = only();
    r.metadata.labels = { ...r.metadata.labels, 'virtwake.io/request': 'someone-else' };
    expect(await run({}, { id: 'a' })).toMatchObject({ outcome: 'failed', reason: 'NameInUse' });
  });
});

describe('wait and startAfter', () => {
  const progress = (status: VirtualMachineRestore['status']) => {
    fake.progress = (resource, name) => {
      if (resource === RESTORES)
        (fake.objects.get(RESTORES)!.get(name) as unknown as VirtualMachineRestore).status = status;
      if (resource === 'virtualmachines')
        fake.put('virtualmachines', vmObject('erp', { printableStatus: 'Running', ready: true }) as never);
    };
  };

  test('complete: completed, with the VM as it is now', async () => {
    progress({ complete: true });
    const o = await run({ wait: { timeoutSeconds: 60 } }, { wait: true });
    expect(o).toMatchObject({ outcome: 'completed', restore: { complete: true } });
    expect(fake.calls.some((c) => c.startsWith('start'))).toBe(false);
  });

  test('startAfter: starts the VM once complete and waits for Running', async () => {
    running();
    progress({ complete: true });
    const o = await run({ stopFirst: true, startAfter: true, wait: { timeoutSeconds: 60 } }, { wait: true });
    expect(o).toMatchObject({
      outcome: 'completed',
      restore: { complete: true },
      vm: { status: { printableStatus: 'Running' } },
    });
    expect(fake.calls).toContain('start erp');
  });

  test('startAfter where KubeVirt refuses the start: its refusal, with the restore done', async () => {
    progress({ complete: true });
    fake.lifecycleAnswer = {
      kind: 'outcome',
      outcome: 'failed',
      reason: 'Refused',
      message: 'Once does not support manual start requests',
    };
    const o = await run({ startAfter: true, wait: { timeoutSeconds: 60 } }, { wait: true });
    expect(o).toMatchObject({ outcome: 'failed', reason: 'Refused', restore: { complete: true } });
  });

  test('a Failure condition is RestoreFailed with KubeVirt’s text', async () => {
    progress({
      complete: false,
      conditions: [
        { type: 'Failure', status: 'True', reason: 'Restore target VMI must be powered off before restore operation' },
      ],
    });
    const o = await run({ wait: { timeoutSeconds: 60 } }, { wait: true });
    expect(o).toMatchObject({ outcome: 'failed', reason: 'RestoreFailed', restore: { complete: false } });
    expect(o.message).toMatch(/must be powered off/);
  });

  test('deleted while waiting is RestoreFailed', async () => {
    fake.progress = (_r, name) => fake.objects.get(RESTORES)!.delete(name);
    expect(await run({ wait: { timeoutSeconds: 60 } }, { wait: true })).toMatchObject({
      outcome: 'failed',
      reason: 'RestoreFailed',
      message: expect.stringContaining('deleted before it completed'),
    });
  });

  test('not complete in time: WaitTimeout, saying what KubeVirt is doing and that the VM was not started', async () => {
    progress({ complete: false, conditions: [{ type: 'Progressing', status: 'True', reason: 'Creating new PVCs' }] });
    const o = await run({ startAfter: true, wait: { timeoutSeconds: 5 } }, { wait: true });
    expect(o).toMatchObject({ outcome: 'accepted', reason: 'WaitTimeout', restore: { complete: false } });
    expect(o.message).toBe(
      'restore not complete within 5s (KubeVirt: Creating new PVCs); the VM was not started: send the same event again to finish',
    );
  });
});
