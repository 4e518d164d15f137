import request from 'supertest';
import { Writable } from 'node:stream';
import pino from 'pino';
import { createApp } from '../../functions/app';
import { baseEnv, Harness, replyData, startHarness } from '../helpers/harness';

// contract §3: every answer of the event endpoint, health, metrics and the log line.

const OPT_IN = { 'virtwake.io/enabled': 'true' };
let h: Harness;

beforeAll(async () => {
  h = await startHarness({
    sim: { stepMs: 5 },
    env: { VIRTWAKE_NAMESPACES: 'default,other', VIRTWAKE_MAX_BODY_BYTES: '4096' },
  });
  h.sim.store.addVM(
    { metadata: { name: 'web', namespace: 'default', labels: OPT_IN }, spec: { runStrategy: 'Manual' } },
    { running: true },
  );
  h.sim.store.addVM(
    { metadata: { name: 'db', namespace: 'default', labels: OPT_IN }, spec: { runStrategy: 'Manual' } },
    {},
  );
  h.sim.store.addVM(
    { metadata: { name: 'private', namespace: 'default', labels: { team: 'x' } }, spec: { runStrategy: 'Halted' } },
    {},
  );
});
afterAll(() => h.close());

const writes = () => h.sim.calls.filter((c) => !['get', 'list', 'watch'].includes(c.verb));
const problem = (res: request.Response) => {
  expect(res.headers['content-type']).toBe('application/problem+json');
  return JSON.parse(res.text) as { status: number; detail: string; errors?: string[] };
};

describe('answers', () => {
  test('200 with the result event in binary mode', async () => {
    const res = await h.send('io.virtwake.vm.stop', { name: 'db' }).expect(200);
    expect(res.headers['ce-type']).toBe('io.virtwake.vm.stop.completed');
    expect(res.headers['content-type']).toMatch(/^application\/json/);
  });

  test('structured mode in, result out', async () => {
    const res = await request(h.app.server)
      .post('/')
      .set('content-type', 'application/cloudevents+json; charset=utf-8')
      .send(
        JSON.stringify({
          specversion: '1.0',
          id: 's-1',
          source: '/t',
          type: 'io.virtwake.vm.stop',
          data: { name: 'db' },
        }),
      )
      .expect(200);
    expect(res.headers['ce-type']).toBe('io.virtwake.vm.stop.completed');
  });

  test('a batch is processed event by event and answered with a batch', async () => {
    const batch = [
      { specversion: '1.0', id: 'b-1', source: '/t', type: 'io.virtwake.vm.stop', data: { name: 'db' } },
      { specversion: '1.0', id: 'b-2', source: '/t', type: 'io.virtwake.vm.start', data: { name: 'web' } },
    ];
    const res = await request(h.app.server)
      .post('/')
      .set('content-type', 'application/cloudevents-batch+json')
      .send(JSON.stringify(batch))
      .expect(200);
    expect(res.headers['content-type']).toMatch(/^application\/cloudevents-batch\+json/);
    const replies = JSON.parse(res.text);
    expect(replies.map((r: { type: string }) => r.type)).toEqual([
      'io.virtwake.vm.stop.completed',
      'io.virtwake.vm.start.completed',
    ]);
    expect(replies.map((r: { causationid: string }) => r.causationid)).toEqual(['b-1', 'b-2']);
  });

  test('a batch with one bad event is refused whole, before anything runs', async () => {
    h.sim.resetCalls();
    const batch = [
      { specversion: '1.0', id: 'c-1', source: '/t', type: 'io.virtwake.vm.start', data: { name: 'db' } },
      { specversion: '1.0', id: 'c-2', source: '/t', type: 'io.virtwake.vm.start', data: { name: 'Bad/Name' } },
    ];
    const res = await request(h.app.server)
      .post('/')
      .set('content-type', 'application/cloudevents-batch+json')
      .send(JSON.stringify(batch))
      .expect(400);
    expect(problem(res).errors?.join('\n')).toMatch(/events\[1\].*\/name/);
    expect(h.sim.calls).toEqual([]);
  });

  test('415 for a request that is not a CloudEvent', async () => {
    h.sim.resetCalls();
    const res = await request(h.app.server).post('/').set('content-type', 'text/plain').send('hello').expect(415);
    expect(problem(res).detail).toMatch(/CloudEvent/i);
    expect(h.sim.calls).toEqual([]);
  });

  test('415 for a compressed body', async () => {
    const res = await h
      .send('io.virtwake.vm.start', { name: 'db' }, { headers: { 'content-encoding': 'gzip' } })
      .expect(415);
    expect(problem(res).detail).toMatch(/content-encoding gzip is not supported/);
  });

  test('400 for a malformed CloudEvent, naming what is missing', async () => {
    const res = await request(h.app.server)
      .post('/')
      .set('ce-specversion', '1.0')
      .set('ce-id', 'x')
      .set('content-type', 'application/json')
      .send('{}')
      .expect(400);
    expect(problem(res).errors?.join(' ')).toMatch(/ce-source/);
    expect(problem(res).errors?.join(' ')).toMatch(/ce-type/);
  });

  test('400 for an unknown type, listing what is served', async () => {
    const res = await h.send('io.virtwake.vm.explode', { name: 'db' }).expect(400);
    expect(problem(res).detail).toMatch(
      /"io.virtwake.vm.explode" is not handled by this service; it serves: io.virtwake.vm.start/,
    );
  });

  test('400 for schema-invalid data, every failing path listed, no API call', async () => {
    h.sim.resetCalls();
    const res = await h
      .send('io.virtwake.vm.stop', { name: 'UPPER', gracePeriodSeconds: -1, colour: 'red' })
      .expect(400);
    const body = problem(res);
    expect(body.detail).toBe('data does not match schemas/io.virtwake.vm.stop.json');
    expect(body.errors).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^\/name: "UPPER" does not match/),
        '/gracePeriodSeconds: must be >= 0',
        '/colour: unknown field, not allowed',
      ]),
    );
    expect(h.sim.calls).toEqual([]);
  });

  test('400 when data is missing or not JSON', async () => {
    await request(h.app.server)
      .post('/')
      .set('ce-specversion', '1.0')
      .set('ce-id', 'n')
      .set('ce-source', '/t')
      .set('ce-type', 'io.virtwake.vm.start')
      .expect(400);
    const res = await request(h.app.server)
      .post('/')
      .set('ce-specversion', '1.0')
      .set('ce-id', 'n2')
      .set('ce-source', '/t')
      .set('ce-type', 'io.virtwake.vm.start')
      .set('content-type', 'text/plain')
      .send('start it')
      .expect(400);
    expect(problem(res).detail).toMatch(/must be a JSON object/);
  });

  test('403 for a namespace outside the allowlist, before any API call', async () => {
    h.sim.resetCalls();
    const res = await h.send('io.virtwake.vm.start', { name: 'db', namespace: 'kube-system' }).expect(403);
    expect(problem(res).detail).toMatch(/namespace "kube-system" is not in the allowlist/);
    expect(h.sim.calls).toEqual([]);
  });

  test('403 for a VM that has not opted in, naming the label, no write', async () => {
    h.sim.resetCalls();
    const res = await h.send('io.virtwake.vm.start', { name: 'private' }).expect(403);
    expect(problem(res).detail).toMatch(/label virtwake.io\/enabled=true is missing/);
    expect(writes()).toEqual([]);
  });

  test('413 for a body over the limit', async () => {
    const res = await h.send('io.virtwake.vm.start', { name: 'db', pad: 'x'.repeat(5000) }).expect(413);
    expect(problem(res).detail).toMatch(/over the limit of 4096 bytes/);
  });

  test('503 with Retry-After when the API keeps failing; nothing claimed done', async () => {
    const id = h.sim.faults.add({ path: /virtualmachines\/db/, status: 503, message: 'etcd is sad' });
    try {
      const res = await h.send('io.virtwake.vm.start', { name: 'db' }).expect(503);
      expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect(problem(res).detail).toMatch(/KubeVirt API unavailable after retries/);
      expect(h.sim.store.getVMI('default', 'db')).toBeUndefined();
    } finally {
      h.sim.faults.remove(id);
    }
  });

  test('429 Retry-After from the API server is passed on when it does not fit the budget', async () => {
    const id = h.sim.faults.add({ path: /virtualmachines\/db/, status: 429, retryAfterSeconds: 7 });
    try {
      const res = await h.send('io.virtwake.vm.start', { name: 'db' }).expect(503);
      expect(res.headers['retry-after']).toBe('7');
    } finally {
      h.sim.faults.remove(id);
    }
  });

  test('the event endpoint never answers 404 or 3xx: any path takes events', async () => {
    const res = await request(h.app.server)
      .post('/some/trigger/path')
      .set('ce-specversion', '1.0')
      .set('ce-id', 'p')
      .set('ce-source', '/t')
      .set('ce-type', 'io.virtwake.vm.stop')
      .set('content-type', 'application/json')
      .send('{"name":"db"}');
    expect(res.status).toBe(200);
  });

  test('405 for other methods', async () => {
    const res = await request(h.app.server).get('/').expect(405);
    expect(res.headers.allow).toBe('POST, OPTIONS');
  });
});

describe('operations', () => {
  test('health endpoints', async () => {
    await request(h.app.server).get('/health/liveness').expect(200);
    await request(h.app.server).get('/health/readiness').expect(200);
  });

  test('metrics count actions by type and outcome, and KubeVirt call latency', async () => {
    await h.send('io.virtwake.vm.stop', { name: 'db' }).expect(200);
    const res = await request(h.app.server).get('/metrics').expect(200);
    expect(res.text).toMatch(
      /virtwake_actions_total\{type="io.virtwake.vm.stop",outcome="completed",reason="AlreadyInState"\} \d+/,
    );
    expect(res.text).toMatch(
      /virtwake_kubevirt_request_duration_seconds_count\{verb="get",resource="virtualmachines",code="2xx"\} \d+/,
    );
    expect(res.text).toMatch(/virtwake_http_responses_total\{status="200"\}/);
  });

  test('replies switched off: 202 with an empty body', async () => {
    const app = await h.replica({ VIRTWAKE_REPLY: 'false' });
    const res = await h.send('io.virtwake.vm.stop', { name: 'db' }, { to: app }).expect(202);
    expect(res.text).toBe('');
  });

  test('VIRTWAKE_FUNCTIONS limits what an instance serves', async () => {
    const app = await h.replica({ VIRTWAKE_FUNCTIONS: 'stop' });
    await h.send('io.virtwake.vm.stop', { name: 'db' }, { to: app }).expect(200);
    const res = await h.send('io.virtwake.vm.start', { name: 'db' }, { to: app }).expect(400);
    expect(problem(res).detail).toMatch(/it serves: io.virtwake.vm.stop$/);
  });

  test('one JSON log line per event, with type, id, source, VM, outcome and duration, and no body', async () => {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk, _enc, cb) {
        lines.push(JSON.parse(String(chunk)));
        cb();
      },
    });
    const app = await createApp({ env: baseEnv(h.sim), logger: pino({ level: 'info' }, sink) });
    try {
      await new Promise<void>((r) => app.server.listen(0, '127.0.0.1', r));
      await h
        .send('io.virtwake.vm.stop', { name: 'db', gracePeriodSeconds: 5 }, { to: app, id: 'log-1', source: '/logger' })
        .expect(200);
      await h
        .send('io.virtwake.vm.stop', { name: 'NOPE', secret: 'hunter2' }, { to: app, id: 'log-2', source: '/logger' })
        .expect(400);
    } finally {
      await app.close();
    }
    const events = lines.filter((l) => l.id === 'log-1' || l.id === 'log-2');
    expect(events).toHaveLength(2);
    expect(events[0]).toMatchObject({
      type: 'io.virtwake.vm.stop',
      id: 'log-1',
      source: '/logger',
      vm: 'default/db',
      outcome: 'completed',
      status: 200,
    });
    expect(typeof events[0].durationMs).toBe('number');
    expect(events[1]).toMatchObject({ id: 'log-2', status: 400, outcome: 'invalid-data' });
    expect(JSON.stringify(lines)).not.toContain('hunter2');
    expect(JSON.stringify(lines)).not.toContain('virtwake-test-token');
  });
});

describe('API servers a kubeconfig can describe', () => {
  test('https with client certificates', async () => {
    const other = await startHarness({ sim: { stepMs: 5, clientCertAuth: true, token: undefined } });
    try {
      other.sim.store.addVM(
        { metadata: { name: 'cert-vm', namespace: 'default', labels: OPT_IN }, spec: { runStrategy: 'Halted' } },
        {},
      );
      const res = await other
        .send('io.virtwake.vm.start', { name: 'cert-vm', wait: { timeoutSeconds: 30 } })
        .expect(200);
      expect(replyData(res)).toMatchObject({
        outcome: 'completed',
        status: { printableStatus: 'Running', ready: true },
      });
    } finally {
      await other.close();
    }
  });

  test('a wrong token is not a verdict on the VM: 503, redelivered once credentials are fixed', async () => {
    const app = await createApp({ env: baseEnv(h.sim), logger: pino({ level: 'silent' }) });
    const kc = app.connection.kubeConfig;
    await app.close();
    (kc.getCurrentUser() as { token?: string }).token = 'wrong';
    const bad = await createApp({ env: baseEnv(h.sim), kubeConfig: kc, logger: pino({ level: 'silent' }) });
    try {
      await new Promise<void>((r) => bad.server.listen(0, '127.0.0.1', r));
      await h.send('io.virtwake.vm.stop', { name: 'db' }, { to: bad }).expect(503);
    } finally {
      await bad.close();
    }
  });
});
