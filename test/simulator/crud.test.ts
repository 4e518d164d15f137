// kube-apiserver semantics for the custom resources: Status errors, create/get/list,
// merge and JSON patch (415 for strategic merge), optimistic concurrency, server-side dry
// run, status subresource, finalizer-aware delete, discovery and unknown paths.
import { ApiException, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { request, startEnv, vmManifest, vmPath, type TestEnv } from './helpers';

let env: TestEnv;
beforeAll(async () => {
  env = await startEnv();
});
afterAll(() => env.sim.close());

const VMS = { group: 'kubevirt.io', version: 'v1', namespace: 'default', plural: 'virtualmachines' };
let seq = 0;
const fresh = (p: string) => `${p}-${++seq}`;

async function apiError(p: Promise<unknown>): Promise<{ code: number; body: any }> {
  try {
    await p;
  } catch (e) {
    if (e instanceof ApiException)
      return { code: e.code, body: typeof e.body === 'string' ? JSON.parse(e.body) : e.body };
    throw e;
  }
  throw new Error('expected an ApiException');
}

test('GET of a missing VM: 404 Status exactly as kube-apiserver sends it', async () => {
  const res = await request(env.kc, 'GET', vmPath('default', 'nope'));
  expect(res.status).toBe(404);
  expect(res.text).toBe(
    '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"virtualmachines.kubevirt.io \\"nope\\" not found","reason":"NotFound","details":{"name":"nope","group":"kubevirt.io","kind":"virtualmachines"},"code":404}',
  );
  expect(res.headers['content-type']).toBe('application/json');
});

test('create, get, AlreadyExists', async () => {
  const { api } = env;
  const name = fresh('crud');
  const created: any = await api.createNamespacedCustomObject({ ...VMS, body: vmManifest(name) });
  expect(created.metadata).toMatchObject({ name, namespace: 'default', generation: 1 });
  expect(created.metadata.uid).toMatch(/^[0-9a-f-]{36}$/);
  expect(Number(created.metadata.resourceVersion)).toBeGreaterThan(0);
  const got: any = await api.getNamespacedCustomObject({ ...VMS, name });
  expect(got.metadata.uid).toBe(created.metadata.uid);
  const dup = await apiError(api.createNamespacedCustomObject({ ...VMS, body: vmManifest(name) }));
  expect(dup.code).toBe(409);
  expect(dup.body).toMatchObject({
    reason: 'AlreadyExists',
    message: `virtualmachines.kubevirt.io "${name}" already exists`,
  });
});

test('VM admission: runStrategy rules and the required template', async () => {
  const { api } = env;
  const none = await apiError(
    api.createNamespacedCustomObject({
      ...VMS,
      // A template the CRD schema accepts (domain and its devices are required), so the webhook decides.
      body: { ...vmManifest(fresh('adm')), spec: { template: { spec: { domain: { devices: {} } } } } },
    }),
  );
  expect(none.code).toBe(422);
  expect(none.body.message).toBe(
    'admission webhook "virtualmachine-validator.kubevirt.io" denied the request: RunStrategy must be specified',
  );
  const both = await apiError(
    api.createNamespacedCustomObject({
      ...VMS,
      body: vmManifest(fresh('adm'), { running: true, runStrategy: 'Always' }),
    }),
  );
  expect(both.body.message).toContain('Running and RunStrategy are mutually exclusive');
  const bad = await apiError(
    api.createNamespacedCustomObject({ ...VMS, body: vmManifest(fresh('adm'), { runStrategy: 'Sometimes' }) }),
  );
  expect(bad.body.message).toContain('Invalid RunStrategy (Sometimes)');
  const name = fresh('adm');
  const noTemplate = await apiError(
    api.createNamespacedCustomObject({
      ...VMS,
      body: {
        apiVersion: 'kubevirt.io/v1',
        kind: 'VirtualMachine',
        metadata: { name },
        spec: { runStrategy: 'Halted' },
      },
    }),
  );
  expect(noTemplate.body).toMatchObject({
    code: 422,
    reason: 'Invalid',
    message: `VirtualMachine.kubevirt.io "${name}" is invalid: spec.template: Required value`,
  });
  const badName = await apiError(api.createNamespacedCustomObject({ ...VMS, body: vmManifest('Bad_Name') }));
  expect(badName.code).toBe(422);
});

test('dryRun=All on create, patch, update and delete validates and persists nothing', async () => {
  const { sim, api, kc } = env;
  const name = fresh('dry');
  const rv0 = sim.store.resourceVersion();
  const created = await request(kc, 'POST', `${vmPath()}?dryRun=All`, vmManifest(name));
  expect(created.status).toBe(201);
  expect(created.json.metadata.name).toBe(name);
  expect(sim.store.getVM('default', name)).toBeUndefined();
  expect(sim.store.resourceVersion()).toBe(rv0);
  expect(
    (await request(kc, 'POST', `${vmPath()}?dryRun=All`, { ...vmManifest(name), spec: { template: {} } })).status,
  ).toBe(422);

  await api.createNamespacedCustomObject({ ...VMS, body: vmManifest(name) });
  await env.sim.settle();
  const rv1 = sim.store.resourceVersion();
  const patched = await request(
    kc,
    'PATCH',
    `${vmPath('default', name)}?dryRun=All`,
    { metadata: { labels: { x: 'y' } } },
    { 'Content-Type': 'application/merge-patch+json' },
  );
  expect(patched.status).toBe(200);
  expect(patched.json.metadata.labels).toEqual({ x: 'y' });
  const current = sim.store.getVM('default', name)!;
  const put = await request(kc, 'PUT', `${vmPath('default', name)}?dryRun=All`, {
    ...current,
    metadata: { ...current.metadata, labels: { z: '1' } },
  });
  expect(put.status).toBe(200);
  const del = await request(kc, 'DELETE', `${vmPath('default', name)}?dryRun=All`);
  expect(del.status).toBe(200);
  expect(sim.store.resourceVersion()).toBe(rv1);
  expect(sim.store.getVM('default', name)!.metadata.labels).toEqual({});
  expect(sim.calls.filter((c) => c.dryRun).map((c) => c.verb)).toEqual([
    'create',
    'create',
    'patch',
    'update',
    'delete',
  ]);
});

test('merge patch and JSON patch (with test ops); strategic merge is 415 on custom resources', async () => {
  const { sim, api, kc } = env;
  const name = fresh('patch');
  sim.store.addVM({ metadata: { name, labels: { a: '1' } }, spec: { runStrategy: 'Halted' } });
  const merged: any = await api.patchNamespacedCustomObject(
    {
      ...VMS,
      name,
      body: {
        metadata: { labels: { b: '2', a: null }, annotations: { 'virtwake.io/last-activity': '2030-01-01T00:00:00Z' } },
      },
    },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
  expect(merged.metadata.labels).toEqual({ b: '2' });
  expect(merged.metadata.annotations['virtwake.io/last-activity']).toBe('2030-01-01T00:00:00Z');
  // client-node's default patch type is JSON patch.
  const jp: any = await api.patchNamespacedCustomObject({
    ...VMS,
    name,
    body: [
      { op: 'test', path: '/metadata/labels/b', value: '2' },
      { op: 'add', path: '/metadata/labels/c', value: '3' },
    ],
  });
  expect(jp.metadata.labels).toEqual({ b: '2', c: '3' });
  const failedTest = await apiError(
    api.patchNamespacedCustomObject({
      ...VMS,
      name,
      body: [
        { op: 'test', path: '/metadata/labels/b', value: 'nope' },
        { op: 'remove', path: '/metadata/labels/b' },
      ],
    }),
  );
  expect(failedTest.code).toBe(422);
  expect(failedTest.body).toMatchObject({
    reason: 'Invalid',
    message: 'the server rejected our request due to an error in our request',
  });
  expect(sim.store.getVM('default', name)!.metadata.labels).toEqual({ b: '2', c: '3' });
  const notArray = await request(
    kc,
    'PATCH',
    vmPath('default', name),
    { op: 'add' },
    { 'Content-Type': 'application/json-patch+json' },
  );
  expect(notArray.status).toBe(400);
  const smp = await request(
    kc,
    'PATCH',
    vmPath('default', name),
    { metadata: { labels: { d: '4' } } },
    { 'Content-Type': 'application/strategic-merge-patch+json' },
  );
  expect(smp.status).toBe(415);
  expect(smp.json).toEqual({
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message:
      'the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml',
    reason: 'UnsupportedMediaType',
    code: 415,
  });
  const missing = await request(
    kc,
    'PATCH',
    vmPath('default', 'absent'),
    {},
    { 'Content-Type': 'application/merge-patch+json' },
  );
  expect(missing.status).toBe(404);
});

test('resourceVersion in a merge patch or PUT is a precondition: 409 Conflict when stale', async () => {
  const { sim, api, kc } = env;
  const name = fresh('rv');
  sim.store.addVM({ metadata: { name }, spec: { runStrategy: 'Halted' } });
  const stale = sim.store.getVM('default', name)!;
  await api.patchNamespacedCustomObject(
    { ...VMS, name, body: { metadata: { labels: { v: '1' } } } },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
  const conflictMsg = `Operation cannot be fulfilled on virtualmachines.kubevirt.io "${name}": the object has been modified; please apply your changes to the latest version and try again`;
  const res = await request(
    kc,
    'PATCH',
    vmPath('default', name),
    { metadata: { resourceVersion: stale.metadata.resourceVersion, labels: { v: '2' } } },
    { 'Content-Type': 'application/merge-patch+json' },
  );
  expect(res.status).toBe(409);
  expect(res.json).toEqual({
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: conflictMsg,
    reason: 'Conflict',
    details: { name, group: 'kubevirt.io', kind: 'virtualmachines' },
    code: 409,
  });
  const put = await apiError(api.replaceNamespacedCustomObject({ ...VMS, name, body: stale }));
  expect(put.code).toBe(409);
  expect(put.body.message).toBe(conflictMsg);
  const { resourceVersion: _rv, ...noRv } = stale.metadata;
  const unconditional = await apiError(
    api.replaceNamespacedCustomObject({ ...VMS, name, body: { ...stale, metadata: noRv } }),
  );
  expect(unconditional.code).toBe(422);
  expect(unconditional.body.message).toContain(
    'metadata.resourceVersion: Invalid value: 0x0: must be specified for an update',
  );
  const fresh2 = sim.store.getVM('default', name)!;
  const ok: any = await api.replaceNamespacedCustomObject({
    ...VMS,
    name,
    body: { ...fresh2, metadata: { ...fresh2.metadata, labels: { v: '3' } } },
  });
  expect(ok.metadata.labels).toEqual({ v: '3' });
  expect(Number(ok.metadata.resourceVersion)).toBeGreaterThan(Number(fresh2.metadata.resourceVersion));
});

test('status is ignored on the main endpoint; spec changes bump generation', async () => {
  const { sim, api } = env;
  const name = fresh('status');
  sim.store.addVM({ metadata: { name }, spec: { runStrategy: 'Halted' } });
  const out: any = await api.patchNamespacedCustomObject(
    {
      ...VMS,
      name,
      body: { status: { printableStatus: 'Running' }, spec: { template: { spec: { domain: { cpu: { cores: 2 } } } } } },
    },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
  expect(out.status.printableStatus).toBe('Stopped');
  expect(out.metadata.generation).toBe(2);
});

test('VMIs are read-only except delete; deleting a VMI of an Always VM brings a new one', async () => {
  const { sim, kc } = env;
  const name = fresh('vmi');
  sim.store.addVM({ metadata: { name }, spec: { runStrategy: 'Always' } }, { running: true });
  const uid = sim.store.getVMI('default', name)!.metadata.uid;
  const post = await request(kc, 'POST', '/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstances', {
    metadata: { name: 'x' },
  });
  expect(post.status).toBe(405);
  const del = await request(kc, 'DELETE', `/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstances/${name}`);
  expect(del.status).toBe(200);
  expect(del.json.metadata.deletionTimestamp).toBeDefined();
  await sim.settle();
  expect(sim.store.getVMI('default', name)!.metadata.uid).not.toBe(uid);
  const missing = await request(kc, 'GET', '/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstances/absent');
  expect(missing.json.message).toBe('virtualmachineinstances.kubevirt.io "absent" not found');
});

test('cluster-wide list, /version, discovery, unknown paths', async () => {
  const { sim, kc } = env;
  sim.store.addVM({ metadata: { name: fresh('other'), namespace: 'other-ns' }, spec: { runStrategy: 'Halted' } });
  const all = await request(kc, 'GET', '/apis/kubevirt.io/v1/virtualmachines');
  expect(all.json.kind).toBe('VirtualMachineList');
  expect(new Set(all.json.items.map((i: any) => i.metadata.namespace))).toEqual(new Set(['default', 'other-ns']));
  expect(all.json.items.every((i: any) => i.kind === 'VirtualMachine' && i.apiVersion === 'kubevirt.io/v1')).toBe(true);
  const version = await request(kc, 'GET', '/version');
  expect(version.json).toMatchObject({ major: '1', gitVersion: expect.stringMatching(/^v1\./) });
  const disc = await request(kc, 'GET', '/apis/subresources.kubevirt.io/v1');
  expect(disc.json.resources.map((r: any) => r.name)).toContain('virtualmachines/start');
  const unknown = await request(kc, 'GET', '/apis/example.com/v1/widgets');
  expect(unknown.status).toBe(404);
  expect(unknown.json).toMatchObject({ kind: 'Status', reason: 'NotFound', code: 404 });
  expect((await request(kc, 'GET', '/healthz/nope')).status).toBe(404);
});
