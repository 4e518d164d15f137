// A grant taken away: the simulator answers kube-apiserver's RBAC 403, byte for byte the Status
// the real authorization filter writes (the rig's kube-apiserver v1.36 answered the same text).
import http from 'node:http';
import { Watch } from '@kubernetes/client-node';
import { request, startEnv, subresource, vmPath, type TestEnv } from './helpers';

let env: TestEnv;
beforeAll(async () => {
  env = await startEnv();
  env.sim.store.addVM({ metadata: { name: 'target', namespace: 'team' }, spec: { runStrategy: 'Halted' } });
});
afterAll(() => env.sim.close());
afterEach(() => env.sim.rbac.clear());

const USER = 'system:serviceaccount:team:virtwake';

test('a denied watch is a 403 Status naming the user, verb, resource, group and namespace; get stays allowed', async () => {
  env.sim.rbac.deny({ verb: 'watch', group: 'kubevirt.io', resource: 'virtualmachines', user: USER });
  const res = await request(env.kc, 'GET', `${vmPath('team')}?watch=true`);
  expect(res.status).toBe(403);
  expect(res.text).toBe(
    JSON.stringify({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: `virtualmachines.kubevirt.io is forbidden: User "${USER}" cannot watch resource "virtualmachines" in API group "kubevirt.io" in the namespace "team"`,
      reason: 'Forbidden',
      details: { group: 'kubevirt.io', kind: 'virtualmachines' },
      code: 403,
    }),
  );
  expect((await request(env.kc, 'GET', vmPath('team', 'target'))).status).toBe(200);
  expect((await request(env.kc, 'GET', vmPath('team'))).status).toBe(200);
  expect(env.sim.calls.at(-3)).toMatchObject({ verb: 'watch', status: 403 });
});

test('a watch of one object by metadata.name names it, as the apiserver reads the field selector', async () => {
  env.sim.rbac.deny({ verb: 'watch', group: 'kubevirt.io', resource: 'virtualmachines', user: USER });
  const res = await request(env.kc, 'GET', `${vmPath('team')}?watch=1&fieldSelector=metadata.name%3Dtarget`);
  expect(res.json).toMatchObject({
    message: `virtualmachines.kubevirt.io "target" is forbidden: User "${USER}" cannot watch resource "virtualmachines" in API group "kubevirt.io" in the namespace "team"`,
    details: { name: 'target', group: 'kubevirt.io', kind: 'virtualmachines' },
  });
  // client-node's Watch sees the status code (and drops the body).
  const err = await new Promise<any>((resolve) => {
    void new Watch(env.kc).watch(
      vmPath('team'),
      {},
      () => undefined,
      (e) => resolve(e),
    );
  });
  expect(err.statusCode).toBe(403);
});

test('a subresource, a namespace-scoped denial, the core group and the cluster scope', async () => {
  env.sim.rbac.deny({ verb: 'update', group: 'subresources.kubevirt.io', resource: 'virtualmachines/start' });
  const start = await subresource(env.kc, 'virtualmachines', 'target', 'start', undefined, 'team');
  expect(start.json).toMatchObject({
    message:
      'virtualmachines.subresources.kubevirt.io "target" is forbidden: User "system:serviceaccount:default:virtwake" cannot update resource "virtualmachines/start" in API group "subresources.kubevirt.io" in the namespace "team"',
    details: { name: 'target', group: 'subresources.kubevirt.io', kind: 'virtualmachines' },
  });
  expect(env.sim.store.getVM('team', 'target')!.spec.runStrategy).toBe('Halted');

  env.sim.rbac.deny({ verb: 'list', group: 'discovery.k8s.io', resource: 'endpointslices', namespace: 'other' });
  expect((await request(env.kc, 'GET', '/apis/discovery.k8s.io/v1/namespaces/team/endpointslices')).status).toBe(200);
  expect((await request(env.kc, 'GET', '/apis/discovery.k8s.io/v1/namespaces/other/endpointslices')).status).toBe(403);

  env.sim.rbac.deny({ verb: 'get', group: '', resource: 'services' });
  expect((await request(env.kc, 'GET', '/api/v1/namespaces/team/services/web')).json).toMatchObject({
    message:
      'services "web" is forbidden: User "system:serviceaccount:default:virtwake" cannot get resource "services" in API group "" in the namespace "team"',
    details: { name: 'web', kind: 'services' },
  });

  env.sim.rbac.deny({ verb: 'list', group: 'kubevirt.io', resource: 'virtualmachines' });
  expect((await request(env.kc, 'GET', '/apis/kubevirt.io/v1/virtualmachines')).json.message).toBe(
    'virtualmachines.kubevirt.io is forbidden: User "system:serviceaccount:default:virtwake" cannot list resource "virtualmachines" in API group "kubevirt.io" at the cluster scope',
  );
});

test('over HTTP: POST/GET/DELETE /_sim/rbac/denials; a bad denial is 400', async () => {
  const call = (method: string, body?: unknown) =>
    new Promise<{ status: number; json: any }>((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = http.request(`${env.sim.url}/_sim/rbac/denials`, { method }, (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : undefined }));
      });
      req.on('error', reject);
      req.end(payload);
    });
  const added = await call('POST', { verb: 'watch', group: 'kubevirt.io', resource: 'virtualmachines', user: USER });
  expect(added.status).toBe(201);
  expect((await call('GET')).json).toEqual([
    { id: added.json.id, verb: 'watch', group: 'kubevirt.io', resource: 'virtualmachines', user: USER },
  ]);
  expect((await request(env.kc, 'GET', `${vmPath('team')}?watch=true`)).status).toBe(403);
  expect((await call('DELETE')).status).toBe(200);
  expect((await call('GET')).json).toEqual([]);
  expect((await call('POST', { verb: 'watch' })).json).toEqual({ error: 'resource must be a non-empty string' });
  expect((await call('POST', { verb: 'watch', resource: 'x', user: 7 })).status).toBe(400);
});
