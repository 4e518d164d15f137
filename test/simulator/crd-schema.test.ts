// KubeVirt's CRD schemas as kube-apiserver enforces them: k8s.io/apiextensions-apiserver
// pkg/apiserver/validation/validation.go turns kube-openapi's schema errors into a 422 Invalid
// with one cause per problem (type, required, enum), before any KubeVirt webhook runs, and
// ratcheting.go lets an update keep what was stored. Each expected body was read from the rig's
// real kube-apiserver v1.36.3 with the CRDs it derives from the same OpenAPI document.
import { request, startEnv, vmPath, type TestEnv } from './helpers';

let env: TestEnv;
beforeAll(async () => {
  env = await startEnv();
});
afterAll(() => env.sim.close());

const TEMPLATE = { spec: { domain: { devices: {} } } };
const vm = (name: string, spec: unknown) => ({
  apiVersion: 'kubevirt.io/v1',
  kind: 'VirtualMachine',
  metadata: { name },
  spec,
});
const typeCause = (field: string, got: string, want: string) => ({
  reason: 'FieldValueTypeInvalid',
  message: `Invalid value: "${got}": ${field} in body must be of type ${want}: "${got}"`,
  field,
});

function invalid(
  kind: string,
  group: string,
  name: string,
  causes: Array<{ reason: string; field: string; message: string }>,
) {
  const text = causes.map((c) => `${c.field}: ${c.message}`).join(', ');
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: `${kind}.${group} "${name}" is invalid: ${causes.length > 1 ? `[${text}]` : text}`,
    reason: 'Invalid',
    details: { name, group, kind, causes },
    code: 422,
  };
}

test('spec.runStrategy: 5 without a template is 422 naming both causes', async () => {
  const r = await request(env.kc, 'POST', vmPath(), vm('rs-int', { runStrategy: 5 }));
  expect(r.json).toEqual(
    invalid('VirtualMachine', 'kubevirt.io', 'rs-int', [
      typeCause('spec.runStrategy', 'integer', 'string'),
      { reason: 'FieldValueRequired', message: 'Required value', field: 'spec.template' },
    ]),
  );
  expect(env.sim.store.getVM('default', 'rs-int')).toBeUndefined();
});

test.each([
  ['spec.runStrategy', { runStrategy: 5, template: TEMPLATE }, 'integer', 'string'],
  ['spec.runStrategy', { runStrategy: 1.5, template: TEMPLATE }, 'number', 'string'],
  ['spec.runStrategy', { runStrategy: ['x'], template: TEMPLATE }, 'array', 'string'],
  ['spec.running', { running: 'yes', template: TEMPLATE }, 'string', 'boolean'],
  ['spec', 5, 'integer', 'object'],
  [
    'spec.template.spec.domain.cpu.cores',
    { runStrategy: 'Halted', template: { spec: { domain: { devices: {}, cpu: { cores: 'two' } } } } },
    'string',
    'integer',
  ],
  [
    'spec.template.spec.domain.devices.disks[0].name',
    { runStrategy: 'Halted', template: { spec: { domain: { devices: { disks: [{ name: 5 }] } } } } },
    'integer',
    'string',
  ],
])('%s of the wrong type is a FieldValueTypeInvalid cause', async (field, spec, got, want) => {
  const name = `t-${field.replace(/[^a-z]/g, '').slice(-20)}-${got}`;
  const r = await request(env.kc, 'POST', vmPath(), vm(name, spec));
  expect(r.json).toEqual(invalid('VirtualMachine', 'kubevirt.io', name, [typeCause(field, got, want)]));
});

test('an enum and a required property deep in the template', async () => {
  const r = await request(
    env.kc,
    'POST',
    vmPath(),
    vm('deep', {
      runStrategy: 'Halted',
      template: { spec: { dnsPolicy: 'Foo', domain: { devices: { disks: [{}] } } } },
    }),
  );
  expect(r.json).toEqual(
    invalid('VirtualMachine', 'kubevirt.io', 'deep', [
      {
        reason: 'FieldValueNotSupported',
        message:
          'Unsupported value: "Foo": supported values: "ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"',
        field: 'spec.template.spec.dnsPolicy',
      },
      {
        reason: 'FieldValueRequired',
        message: 'Required value',
        field: 'spec.template.spec.domain.devices.disks[0].name',
      },
    ]),
  );
});

test('snapshots and restores are checked against their own schemas', async () => {
  const snap = await request(
    env.kc,
    'POST',
    '/apis/snapshot.kubevirt.io/v1beta1/namespaces/default/virtualmachinesnapshots',
    {
      apiVersion: 'snapshot.kubevirt.io/v1beta1',
      kind: 'VirtualMachineSnapshot',
      metadata: { name: 's1' },
      spec: { source: { apiGroup: 'kubevirt.io', kind: 'VirtualMachine', name: 5 }, failureDeadline: 7 },
    },
  );
  expect(snap.json).toEqual(
    invalid('VirtualMachineSnapshot', 'snapshot.kubevirt.io', 's1', [
      typeCause('spec.source.name', 'integer', 'string'),
      typeCause('spec.failureDeadline', 'integer', 'string'),
    ]),
  );
  const restore = await request(
    env.kc,
    'POST',
    '/apis/snapshot.kubevirt.io/v1beta1/namespaces/default/virtualmachinerestores',
    {
      apiVersion: 'snapshot.kubevirt.io/v1beta1',
      kind: 'VirtualMachineRestore',
      metadata: { name: 'r1' },
      spec: { target: { apiGroup: 'kubevirt.io', kind: 'VirtualMachine', name: 'x' } },
    },
  );
  expect(restore.json).toEqual(
    invalid('VirtualMachineRestore', 'snapshot.kubevirt.io', 'r1', [
      { reason: 'FieldValueRequired', message: 'Required value', field: 'spec.virtualMachineSnapshotName' },
    ]),
  );
});

test('nulls, the open ObjectMeta of the template and a valid VM pass', async () => {
  const r = await request(
    env.kc,
    'POST',
    vmPath(),
    vm('fine', { runStrategy: 'Halted', running: null, template: { metadata: { labels: { a: 5 } }, ...TEMPLATE } }),
  );
  expect(r.status).toBe(201);
});

test('a patch that breaks a type is refused; one that leaves an old problem alone is ratcheted', async () => {
  env.sim.store.addVM({
    metadata: { name: 'legacy', namespace: 'default' },
    spec: { runStrategy: 'Halted', template: { spec: { domain: {} } } }, // devices missing, as stored before
  });
  const patch = (body: unknown) =>
    request(env.kc, 'PATCH', `${vmPath()}/legacy`, body, { 'Content-Type': 'application/merge-patch+json' });
  const broken = await patch({ spec: { runStrategy: 5 } });
  expect(broken.json).toEqual(
    invalid('VirtualMachine', 'kubevirt.io', 'legacy', [typeCause('spec.runStrategy', 'integer', 'string')]),
  );
  expect((await patch({ metadata: { annotations: { a: 'b' } } })).status).toBe(200);
  expect((await patch({ spec: { runStrategy: 'Always' } })).status).toBe(200);
});
