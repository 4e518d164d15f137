// TLS with a generated CA, bearer tokens and client certificates, through client-node's
// own kubeconfig handling.
import https from 'node:https';
import { KubeConfig } from '@kubernetes/client-node';
import { request, startEnv, subresource, vmPath, type TestEnv } from './helpers';

describe('TLS + bearer token', () => {
  let env: TestEnv;
  beforeAll(async () => {
    env = await startEnv({ tls: true, token: 's3cret' });
    env.sim.store.addVM({ metadata: { name: 'secure' }, spec: { runStrategy: 'Halted' } });
  });
  afterAll(() => env.sim.close());

  test('client-node with the generated kubeconfig works over HTTPS', async () => {
    expect(env.sim.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(env.sim.kubeconfig).toContain('certificate-authority-data');
    const vm: any = await env.api.getNamespacedCustomObject({
      group: 'kubevirt.io',
      version: 'v1',
      namespace: 'default',
      plural: 'virtualmachines',
      name: 'secure',
    });
    expect(vm.metadata.name).toBe('secure');
    expect((await subresource(env.kc, 'virtualmachines', 'secure', 'start')).status).toBe(202);
  });

  test('missing or wrong token: 401 Status, not recorded', async () => {
    const kc = new KubeConfig();
    kc.loadFromString(env.sim.kubeconfig.replace('token: s3cret', 'token: wrong'));
    const before = env.sim.calls.length;
    const res = await request(kc, 'GET', vmPath('default', 'secure'));
    expect(res.status).toBe(401);
    expect(res.json).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'Unauthorized',
      reason: 'Unauthorized',
      code: 401,
    });
    expect(env.sim.calls.length).toBe(before);
  });

  test('a rotated token (POST /_sim/token): the old one gets 401, the new one is accepted; a bad body is 400', async () => {
    const withToken = (t: string) => {
      const kc = new KubeConfig();
      kc.loadFromString(env.sim.kubeconfig.replace('token: s3cret', `token: ${t}`));
      return kc;
    };
    const control = (body: string) =>
      new Promise<number>((resolve, reject) => {
        const req = https.request(`${env.sim.url}/_sim/token`, { method: 'POST', ca: caOf(env.kc) }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end(body);
      });
    expect(await control('{"token": ""}')).toBe(400);
    expect(await control('{"token": "n3w"}')).toBe(200);
    try {
      expect((await request(withToken('s3cret'), 'GET', vmPath('default', 'secure'))).status).toBe(401);
      expect((await request(withToken('n3w'), 'GET', vmPath('default', 'secure'))).status).toBe(200);
    } finally {
      env.sim.rotateToken('s3cret');
    }
    expect((await request(withToken('s3cret'), 'GET', vmPath('default', 'secure'))).status).toBe(200);
  });

  test('the server certificate does not verify without the simulator CA', async () => {
    const url = new URL(`${env.sim.url}/version`);
    await expect(
      new Promise((resolve, reject) => {
        https.get(url, { headers: { Authorization: 'Bearer s3cret' } }, resolve).on('error', reject);
      }),
    ).rejects.toThrow(/self[- ]signed|unable to verify|certificate/i);
  });
});

describe('TLS + client certificates', () => {
  let env: TestEnv;
  beforeAll(async () => {
    env = await startEnv({ tls: true, clientCertAuth: true });
  });
  afterAll(() => env.sim.close());

  test('the kubeconfig client certificate is accepted', async () => {
    expect(env.sim.kubeconfig).toContain('client-certificate-data');
    expect(env.sim.kubeconfig).toContain('client-key-data');
    const list: any = await env.api.listNamespacedCustomObject({
      group: 'kubevirt.io',
      version: 'v1',
      namespace: 'default',
      plural: 'virtualmachines',
    });
    expect(list.kind).toBe('VirtualMachineList');
  });

  test('no client certificate: 401', async () => {
    const kc = new KubeConfig();
    kc.loadFromString(
      env.sim.kubeconfig.replace(/\s+client-certificate-data: \S+/, '').replace(/\s+client-key-data: \S+/, ''),
    );
    const res = await request(kc, 'GET', vmPath());
    expect(res.status).toBe(401);
  });
});

function caOf(kc: KubeConfig): string {
  return Buffer.from(kc.getCurrentCluster()?.caData ?? '', 'base64').toString('utf8');
}
