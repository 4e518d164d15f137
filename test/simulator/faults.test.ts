// Fault injection, in process and over /_sim/: injected statuses (with Retry-After on
// 429), delays, dropped connections, hung requests, watches cut short, and the call log.
import http from 'node:http';
import { Watch } from '@kubernetes/client-node';
import { request, startEnv, subresource, vmPath, type TestEnv } from './helpers';

let env: TestEnv;
beforeAll(async () => {
  env = await startEnv();
  env.sim.store.addVM({ metadata: { name: 'target' }, spec: { runStrategy: 'Halted' } });
});
afterAll(() => env.sim.close());
afterEach(() => env.sim.faults.clear());

test('an injected 500 answers with a Status body, then the rule is used up', async () => {
  const { sim, kc } = env;
  sim.faults.add({ method: 'GET', path: /virtualmachines\/target$/, status: 500, times: 1 });
  const first = await request(kc, 'GET', vmPath('default', 'target'));
  expect(first.status).toBe(500);
  expect(first.json).toMatchObject({
    kind: 'Status',
    apiVersion: 'v1',
    status: 'Failure',
    reason: 'InternalError',
    code: 500,
  });
  expect((await request(kc, 'GET', vmPath('default', 'target'))).status).toBe(200);
  expect(sim.calls.slice(-2).map((c) => c.status)).toEqual([500, 200]);
});

test('429 carries Retry-After; 503 with a custom message', async () => {
  const { sim, kc } = env;
  sim.faults.add({ path: '/start$', status: 429, retryAfterSeconds: 3, times: 1 });
  const limited = await subresource(kc, 'virtualmachines', 'target', 'start');
  expect(limited.status).toBe(429);
  expect(limited.headers['retry-after']).toBe('3');
  expect(limited.json).toMatchObject({ reason: 'TooManyRequests', details: { retryAfterSeconds: 3 }, code: 429 });
  expect(sim.store.getVM('default', 'target')!.spec.runStrategy).toBe('Halted');
  sim.faults.add({ path: '/start$', status: 429, times: 1 });
  expect((await subresource(kc, 'virtualmachines', 'target', 'start')).headers['retry-after']).toBe('1');
  sim.faults.add({ method: 'PUT', status: 503, message: 'etcd is having a bad day', times: 1 });
  const unavailable = await subresource(kc, 'virtualmachines', 'target', 'stop');
  expect(unavailable.json).toMatchObject({
    reason: 'ServiceUnavailable',
    message: 'etcd is having a bad day',
    code: 503,
  });
});

test('delayMs holds the request, then serves it normally', async () => {
  const { sim, kc } = env;
  sim.faults.add({ path: 'target', delayMs: 150, times: 1 });
  let answered = false;
  const pending = request(kc, 'GET', vmPath('default', 'target')).then((r) => {
    answered = true;
    return r;
  });
  await new Promise((r) => setTimeout(r, 20));
  expect(answered).toBe(false);
  expect((await pending).status).toBe(200);
});

test('drop destroys the connection; hang never answers (the client times out)', async () => {
  const { sim, kc } = env;
  sim.faults.add({ path: 'target', drop: true, times: 1 });
  await expect(request(kc, 'GET', vmPath('default', 'target'))).rejects.toThrow(/socket hang up|ECONNRESET/);
  sim.faults.add({ path: 'target', hang: true, times: 1 });
  await expect(request(kc, 'GET', vmPath('default', 'target'), undefined, {}, { timeoutMs: 200 })).rejects.toThrow(
    'client timeout',
  );
  expect((await request(kc, 'GET', vmPath('default', 'target'))).status).toBe(200);
  // Recorded, with no status since nothing was answered.
  expect(sim.calls.slice(-3).map((c) => c.status)).toEqual([0, 0, 200]);
});

test('watchEndAfterEvents cuts a watch short', async () => {
  const { sim, kc } = env;
  for (const n of ['w1', 'w2', 'w3']) sim.store.addVM({ metadata: { name: n, namespace: 'watchns' } });
  sim.faults.add({ path: 'watchns', watchEndAfterEvents: 2, times: 1 });
  const seen: string[] = [];
  const done = new Promise((resolve) => {
    void new Watch(kc).watch(vmPath('watchns'), {}, (t, o: any) => seen.push(`${t}:${o.metadata.name}`), resolve);
  });
  await done;
  expect(seen).toEqual(['ADDED:w1', 'ADDED:w2']);
});

test('the same over HTTP: POST/GET/DELETE /_sim/faults and GET /_sim/calls', async () => {
  const { sim } = env;
  const call = (method: string, path: string, body?: unknown) =>
    new Promise<{ status: number; json: any }>((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = http.request(
        `${sim.url}${path}`,
        { method, headers: payload ? { 'Content-Type': 'application/json' } : {} },
        (res) => {
          let text = '';
          res.on('data', (c) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : undefined }));
        },
      );
      req.on('error', reject);
      if (payload) req.write(payload);
      req.end();
    });
  const added = await call('POST', '/_sim/faults', {
    method: 'GET',
    path: 'virtualmachines/target$',
    status: 504,
    times: 2,
  });
  expect(added.status).toBe(201);
  expect(typeof added.json.id).toBe('number');
  expect((await call('GET', '/_sim/faults')).json).toEqual([
    expect.objectContaining({ id: added.json.id, status: 504, remaining: 2 }),
  ]);
  expect((await request(env.kc, 'GET', vmPath('default', 'target'))).json).toMatchObject({
    reason: 'Timeout',
    code: 504,
  });
  expect((await call('DELETE', '/_sim/faults')).status).toBe(200);
  expect((await request(env.kc, 'GET', vmPath('default', 'target'))).status).toBe(200);
  const calls = (await call('GET', '/_sim/calls')).json;
  expect(calls.at(-1)).toMatchObject({
    method: 'GET',
    verb: 'get',
    resource: 'virtualmachines',
    name: 'target',
    status: 200,
  });
  expect(calls.some((c: any) => c.path.startsWith('/_sim'))).toBe(false);
  expect((await call('POST', '/_sim/faults', { times: 'x' })).status).toBe(400);
});
