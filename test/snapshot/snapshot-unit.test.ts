import { KubeApiError } from '../../functions/runtime/kube/errors';
import type { VirtualMachineSnapshot } from '../../functions/runtime/snapshot-objects';
import { consistency, snapshot, SnapshotCommand } from '../../functions/snapshot';
import { retention } from '../../functions/snapshot-retention';
import { objectMetaValidator, validate, validatorFor } from '../knative/manifests';
import { context, Fake, fakeKubeVirt } from './fake';

// The snapshot function against an in-memory KubeVirt: what it creates, how a
// redelivery adopts it, how each KubeVirt state becomes an outcome, and which
// snapshots retention lets go.

const SNAPS = 'virtualmachinesnapshots';
let fake: Fake;
beforeEach(() => {
  fake = fakeKubeVirt();
});

const run = (command: SnapshotCommand, o: Parameters<typeof context>[2] = {}) =>
  snapshot.run(context(fake, command, o));
const only = () => {
  const all = fake.all(SNAPS) as unknown as VirtualMachineSnapshot[];
  expect(all).toHaveLength(1);
  return all[0];
};
const setStatus = (name: string, status: VirtualMachineSnapshot['status']) => {
  (fake.objects.get(SNAPS)!.get(name) as unknown as VirtualMachineSnapshot).status = status;
};
const ready = (indications: string[] = []) => ({
  phase: 'Succeeded',
  readyToUse: true,
  sourceIndications: indications.map((indication) => ({ indication, message: '' })),
});

describe('the object it creates', () => {
  test('is a v1beta1 VirtualMachineSnapshot of the VM, valid against the KubeVirt schema, labelled to be found again', async () => {
    const o = await run({ name: 'erp', failureDeadline: '90s' }, { id: 'evt-7', source: '/ops' });
    expect(o).toMatchObject({
      outcome: 'accepted',
      snapshot: { name: expect.stringMatching(/^vw-erp-[0-9a-f]{10}$/) },
    });
    const s = only();
    expect(validate(validatorFor('snapshot.kubevirt.io_v1beta1_VirtualMachineSnapshot.json'), s)).toEqual([]);
    expect(validate(objectMetaValidator(), s.metadata)).toEqual([]);
    expect(s).toMatchObject({
      apiVersion: 'snapshot.kubevirt.io/v1beta1',
      kind: 'VirtualMachineSnapshot',
      metadata: {
        labels: {
          'virtwake.io/vm': 'erp',
          'virtwake.io/request': expect.stringMatching(/^[0-9a-f]{20}$/),
          'app.kubernetes.io/managed-by': 'virtwake',
        },
        annotations: {
          'virtwake.io/request-id': 'evt-7',
          'virtwake.io/request-source': '/ops',
          'virtwake.io/created-at': '2025-01-01T12:00:00.123Z',
        },
      },
      spec: { source: { apiGroup: 'kubevirt.io', kind: 'VirtualMachine', name: 'erp' }, failureDeadline: '90s' },
    });
  });

  test('snapshotName names it; without failureDeadline KubeVirt keeps its default', async () => {
    await run({ name: 'erp', snapshotName: 'before-upgrade' });
    const s = only();
    expect(s.metadata.name).toBe('before-upgrade');
    expect(s.spec).not.toHaveProperty('failureDeadline');
  });

  test('a VM name too long for a label value is labelled by a shortened form and annotated in full', async () => {
    const vm = `${'a'.repeat(70)}.example`;
    await run({ name: vm });
    const s = only();
    expect(s.metadata.labels?.['virtwake.io/vm']).toMatch(/^a{52}-[0-9a-f]{10}$/);
    expect(s.metadata.annotations?.['virtwake.io/vm-name']).toBe(vm);
    expect(validate(objectMetaValidator(), s.metadata)).toEqual([]);
  });
});

describe('redelivery', () => {
  test('a second and third delivery find the first snapshot and create nothing', async () => {
    const first = await run({ name: 'erp' });
    const again = await run({ name: 'erp' });
    const third = await run({ name: 'erp' });
    only();
    expect(fake.calls.filter((c) => c.startsWith('create'))).toHaveLength(1);
    expect(again.snapshot?.name).toBe(first.snapshot?.name);
    expect(third.snapshot?.name).toBe(first.snapshot?.name);
  });

  test('losing the create race to another replica adopts the winner', async () => {
    // The other replica creates between our read and our create.
    fake.admit = (_r, body) => {
      fake.admit = undefined;
      fake.put(SNAPS, structuredClone(body));
    };
    const o = await run({ name: 'erp' });
    expect(o.outcome).toBe('accepted');
    only();
  });

  test('a name taken by another request fails with NameInUse', async () => {
    await run({ name: 'erp', snapshotName: 'nightly' }, { id: 'a' });
    const o = await run({ name: 'erp', snapshotName: 'nightly' }, { id: 'b' });
    expect(o).toMatchObject({ outcome: 'failed', reason: 'NameInUse' });
    expect(o.message).toMatch(
      /VirtualMachineSnapshot default\/nightly already exists and was not created by this request/,
    );
  });

  test('a snapshot of that name made by hand is not ours either', async () => {
    fake.put(SNAPS, {
      metadata: { name: 'manual' },
      spec: { source: { apiGroup: 'kubevirt.io', kind: 'VirtualMachine', name: 'erp' } },
    });
    expect(await run({ name: 'erp', snapshotName: 'manual' })).toMatchObject({
      outcome: 'failed',
      reason: 'NameInUse',
    });
  });
});

describe('what KubeVirt says becomes the outcome', () => {
  test('an admission refusal is Refused with its message verbatim', async () => {
    fake.admit = () => {
      throw new KubeApiError(
        400,
        'BadRequest',
        'admission webhook "virtualmachinesnapshot-validator.snapshot.kubevirt.io" denied the request: spec.source.kind: Invalid value: "VirtualMachineInstance"',
      );
    };
    // (The feature gate's refusal says more than this: SnapshotApiUnavailable, test/kubevirt/snapshot-findings.test.ts.)
    const o = await run({ name: 'erp' });
    expect(o).toMatchObject({
      outcome: 'failed',
      reason: 'Refused',
      message: expect.stringContaining('spec.source.kind: Invalid value'),
    });
  });

  test('dryRun asks KubeVirt to validate and persists nothing', async () => {
    const o = await run({ name: 'erp', dryRun: true, keep: 1 });
    expect(o).toMatchObject({ outcome: 'accepted', reason: 'DryRun' });
    expect(fake.calls).toContain('create virtualmachinesnapshots dryRun');
    expect(fake.all(SNAPS)).toHaveLength(0);
    expect(fake.calls.some((c) => c.startsWith('delete'))).toBe(false);
  });

  test('wait: readyToUse completes, with indications and what they mean', async () => {
    fake.progress = (_r, name) => setStatus(name, ready(['Online', 'NoGuestAgent']));
    const o = await run({ name: 'erp', wait: { timeoutSeconds: 30 } }, { wait: true });
    expect(o).toMatchObject({
      outcome: 'completed',
      snapshot: { phase: 'Succeeded', readyToUse: true, indications: ['Online', 'NoGuestAgent'] },
      message: 'online without a guest agent, crash-consistent',
    });
  });

  test('wait: phase Succeeded without readyToUse is not done yet', async () => {
    fake.progress = (_r, name) =>
      setStatus(name, {
        phase: 'Succeeded',
        readyToUse: false,
        conditions: [{ type: 'Progressing', status: 'False', reason: 'Operation complete' }],
      });
    const o = await run({ name: 'erp', wait: { timeoutSeconds: 30 } }, { wait: true });
    expect(o).toMatchObject({
      outcome: 'accepted',
      reason: 'WaitTimeout',
      snapshot: { phase: 'Succeeded', readyToUse: false },
    });
    expect(o.message).toBe('not ready within 30s (phase Succeeded; KubeVirt: Operation complete)');
  });

  test('wait: the failure deadline passing is DeadlineExceeded', async () => {
    fake.progress = (_r, name) =>
      setStatus(name, {
        phase: 'Failed',
        readyToUse: false,
        conditions: [
          { type: 'Failure', status: 'True', reason: 'snapshot deadline exceeded' },
          { type: 'Progressing', status: 'False', reason: 'Operation failed' },
        ],
      });
    const o = await run({ name: 'erp', failureDeadline: '1m', wait: { timeoutSeconds: 30 } }, { wait: true });
    expect(o).toMatchObject({
      outcome: 'failed',
      reason: 'DeadlineExceeded',
      message: expect.stringContaining('snapshot deadline exceeded'),
    });
  });

  test('wait: a Failed phase with an error recorded is SnapshotFailed, for that error', async () => {
    fake.progress = (_r, name) =>
      setStatus(name, {
        phase: 'Failed',
        error: { message: 'VolumeSnapshot creation failed' },
        conditions: [{ type: 'Failure', status: 'True', reason: 'snapshot deadline exceeded' }],
      });
    const o = await run({ name: 'erp', wait: { timeoutSeconds: 30 } }, { wait: true });
    expect(o).toMatchObject({
      outcome: 'failed',
      reason: 'SnapshotFailed',
      message: expect.stringMatching(/failed: VolumeSnapshot creation failed; snapshot deadline exceeded$/),
    });
  });

  test('wait: the snapshot deleted before it was ready is SnapshotFailed', async () => {
    fake.progress = (_r, name) => fake.objects.get(SNAPS)!.delete(name);
    const o = await run({ name: 'erp', wait: { timeoutSeconds: 30 } }, { wait: true });
    expect(o).toMatchObject({
      outcome: 'failed',
      reason: 'SnapshotFailed',
      message: expect.stringContaining('deleted before it became ready'),
    });
  });

  test('a redelivery that finds its snapshot ready completes without waiting', async () => {
    const first = await run({ name: 'erp' });
    setStatus(first.snapshot!.name, ready());
    const o = await run({ name: 'erp' });
    expect(o).toMatchObject({
      outcome: 'completed',
      snapshot: { readyToUse: true, indications: [] },
      message: 'taken while the VM was stopped',
    });
  });
});

test.each<[string[], string]>([
  [[], 'taken while the VM was stopped'],
  [['Online', 'GuestAgent'], 'online, filesystems frozen by the guest agent'],
  [['Online', 'GuestAgent', 'QuiesceTimeout'], 'online, crash-consistent: the guest agent freeze timed out'],
  [['Online', 'Paused'], 'online while paused, crash-consistent'],
  [
    ['Online', 'NoGuestAgent', 'PartialSnapshot'],
    'online without a guest agent, crash-consistent; partial: some volumes could not be snapshotted',
  ],
])('indications %j read as "%s"', (indications, text) => {
  expect(consistency(indications)).toBe(text);
});

describe('retention (keep)', () => {
  let t = 0;
  const snap = (
    name: string,
    status: VirtualMachineSnapshot['status'],
    o: { vm?: string; managed?: boolean; createdAt?: string; deleting?: boolean } = {},
  ): VirtualMachineSnapshot => ({
    metadata: {
      name,
      creationTimestamp: o.createdAt ?? `2025-01-01T00:00:${String(++t).padStart(2, '0')}Z`,
      labels:
        o.managed === false ? {} : { 'app.kubernetes.io/managed-by': 'virtwake', 'virtwake.io/vm': o.vm ?? 'erp' },
      ...(o.deleting && { deletionTimestamp: '2025-01-02T00:00:00Z' }),
    },
    spec: { source: { apiGroup: 'kubevirt.io', kind: 'VirtualMachine', name: o.vm ?? 'erp' } },
    status,
  });
  const R = ready();
  beforeEach(() => {
    t = 0;
  });

  test('keeps the N newest ready ones and deletes the older ones', () => {
    const list = ['s1', 's2', 's3', 's4', 's5'].map((n) => snap(n, R));
    expect(retention(list, 'erp', 2, new Set())).toEqual(['s1', 's2', 's3']);
  });

  test('deletes failed ones, leaves in-progress and deleting ones alone', () => {
    const list = [
      snap('old', R),
      snap('bad', { phase: 'Failed' }),
      snap('busy', { phase: 'InProgress' }),
      snap('going', R, { deleting: true }),
      snap('new', R),
    ];
    expect(retention(list, 'erp', 1, new Set()).sort()).toEqual(['bad', 'old']);
  });

  test('never touches snapshots virtwake did not make, or of another VM', () => {
    const list = [snap('hand', R, { managed: false }), snap('other', R, { vm: 'crm' }), snap('a', R), snap('b', R)];
    expect(retention(list, 'erp', 1, new Set())).toEqual(['a']);
  });

  test('never deletes a snapshot an unfinished restore reads', () => {
    const list = [snap('a', R), snap('b', R), snap('c', R)];
    expect(retention(list, 'erp', 1, new Set(['a']))).toEqual(['b']);
  });

  test('never deletes the request’s own snapshot, even when the clocks say it is older', () => {
    const list = [snap('mine', R, { createdAt: '2024-12-31T00:00:00Z' }), snap('a', R), snap('b', R)];
    expect(retention(list, 'erp', 1, new Set(), 'mine').sort()).toEqual(['a', 'b']);
  });

  test('a late delivery of an older request never deletes what newer requests made (the ledger says which)', () => {
    const list = [snap('old', R, { createdAt: '2024-12-31T00:00:00Z' }), snap('mine', R), snap('newer', R)];
    expect(retention(list, 'erp', 1, new Set(), 'mine', new Set(['newer']))).toEqual(['old']);
  });

  test('snapshots of the same second are ordered by virtwake’s millisecond annotation', () => {
    const at = (n: string, ms: string) => {
      const s = snap(n, R, { createdAt: '2025-01-01T00:00:00Z' });
      s.metadata.annotations = { 'virtwake.io/created-at': `2025-01-01T00:00:00.${ms}Z` };
      return s;
    };
    expect(retention([at('z', '001'), at('a', '900'), at('m', '500')], 'erp', 1, new Set()).sort()).toEqual(['m', 'z']);
  });

  test('after a ready snapshot, the function deletes beyond keep and says which', async () => {
    for (const n of ['s1', 's2', 's3']) fake.put(SNAPS, snap(n, R) as never);
    fake.progress = (_r, name) => setStatus(name, ready());
    const o = await run({ name: 'erp', keep: 2, wait: { timeoutSeconds: 30 } }, { wait: true });
    expect(o.outcome).toBe('completed');
    expect(o.message).toMatch(/keep 2: deleted s1, s2$/);
    expect((fake.all(SNAPS) as unknown as VirtualMachineSnapshot[]).map((s) => s.metadata.name).sort()).toEqual(
      ['s3', o.snapshot!.name].sort(),
    );
  });

  test('without wait, the new snapshot is not counted yet: N ready ones stay', async () => {
    for (const n of ['s1', 's2', 's3']) fake.put(SNAPS, snap(n, R) as never);
    const o = await run({ name: 'erp', keep: 2 });
    expect(o).toMatchObject({ outcome: 'accepted', message: 'keep 2: deleted s1' });
    expect(fake.all(SNAPS)).toHaveLength(3);
  });

  test('a refused delete is reported, and the snapshot still succeeded', async () => {
    for (const n of ['s1', 's2']) fake.put(SNAPS, snap(n, R) as never);
    fake.kubevirt.delete = async (_r, _ns, name) => {
      throw new KubeApiError(403, 'Forbidden', `virtualmachinesnapshots "${name}" is forbidden`);
    };
    fake.progress = (_r, name) => setStatus(name, ready());
    const o = await run({ name: 'erp', keep: 1, wait: { timeoutSeconds: 30 } }, { wait: true });
    expect(o.outcome).toBe('completed');
    expect(o.message).toMatch(
      /keep 1: could not delete s1 \(virtualmachinesnapshots "s1" is forbidden\), s2 \(virtualmachinesnapshots "s2" is forbidden\)$/,
    );
  });
});
