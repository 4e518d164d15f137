import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import request from 'supertest';
import type { App } from '../../functions/app';
import { MAX_ERROR_BODY_BYTES, Problem, problemBody } from '../../functions/runtime/problems';
import { startHarness, type Harness } from '../helpers/harness';

// Every non-2xx body virtwake writes stays within MAX_ERROR_BODY_BYTES: on a
// Trigger with a dead-letter sink, Knative's dispatcher copies the body into a
// 1024-character base64 buffer and crashes on one over 768 bytes. Whatever is
// cut from the body must still be in the log line.

const OPT_IN = { 'virtwake.io/enabled': 'true' };
const lines: Record<string, unknown>[] = [];
const sink = new Writable({
  write(chunk: Buffer, _enc, done) {
    for (const l of chunk.toString('utf8').split('\n')) if (l.trim()) lines.push(JSON.parse(l));
    done();
  },
});
let h: Harness;
let policyFile: string;

/** Thirty rules that each allow only `snapshot`, so a start is denied once per rule. */
function writePolicy(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'virtwake-policy-'));
  const file = path.join(dir, 'policy.json');
  const rules = Array.from({ length: 30 }, (_, i) => ({
    name: `snapshot-only-rule-number-${i}-with-a-descriptive-name`,
    sources: ['*'],
    actions: ['snapshot'],
    namespaces: ['*'],
  }));
  fs.writeFileSync(file, JSON.stringify({ rules }));
  return file;
}

beforeAll(async () => {
  policyFile = writePolicy();
  h = await startHarness({
    env: { VIRTWAKE_MAX_BODY_BYTES: '16384', VIRTWAKE_BODY_TIMEOUT_MS: '200' },
    log: sink,
  });
  h.sim.store.addVM({
    metadata: { name: 'db', namespace: 'default', labels: OPT_IN },
    spec: { runStrategy: 'Halted' },
  });
});
afterAll(() => h.close());

/** The body is within the cap and a log line after `since` carries `full` whole. */
function expectCappedAndLogged(res: { status: number; text: string }, since: number, full: string | RegExp): void {
  expect(Buffer.byteLength(res.text)).toBeLessThanOrEqual(MAX_ERROR_BODY_BYTES);
  const logged = lines.slice(since).map((l) => JSON.stringify(l));
  const hit = logged.some((l) =>
    typeof full === 'string' ? l.includes(JSON.stringify(full).slice(1, -1)) : full.test(l),
  );
  expect([res.status, hit]).toEqual([res.status, true]);
}

const problemOf = (res: { text: string }) => JSON.parse(res.text) as { detail: string; errors?: string[] };

describe('problem+json bodies of the event server', () => {
  test('400 schema: fifty unknown fields with long names → errors cut with "… N more", all of them logged', async () => {
    const data: Record<string, unknown> = { name: 'db' };
    for (let i = 0; i < 50; i++) data[`an-unknown-field-with-a-rather-long-name-${i}`] = i;
    const since = lines.length;
    const res = await h.send('io.virtwake.vm.start', data).expect(400);
    const body = problemOf(res);
    expect(body.errors!.length).toBeGreaterThan(1);
    expect(body.errors![body.errors!.length - 1]).toMatch(/^… \d+ more$/);
    const shown = body.errors!.length - 1;
    expect(Number(/(\d+) more/.exec(body.errors![shown])![1])).toBe(50 - shown);
    expectCappedAndLogged(res, since, 'an-unknown-field-with-a-rather-long-name-49');
    const line = lines.slice(since).find((l) => l.msg === 'event refused')!;
    expect(line.errorCount).toBe(50);
  });

  test('400 malformed CloudEvent: an extension name of 900 characters, no id, no source', async () => {
    const since = lines.length;
    const res = await request(h.app.server)
      .post('/')
      .set('ce-specversion', '1.0')
      .set('ce-type', 'io.virtwake.vm.start')
      .set('ce-x-' + 'y'.repeat(900), 'v')
      .set('content-type', 'application/json')
      .send('{"name":"db"}')
      .expect(400);
    expect(problemOf(res).detail).toMatch(/…$/);
    // The parser already shortens the bad name; the whole detail it wrote is in the log.
    expectCappedAndLogged(res, since, /ce-id header is missing; ce-source header is missing"/);
  });

  test('400 unknown type: a type of 3,000 characters', async () => {
    const type = `io.example.${'t'.repeat(3000)}`;
    const since = lines.length;
    const res = await h.send(type, { name: 'db' }).expect(400);
    expect(problemOf(res).detail).toMatch(/…$/);
    expectCappedAndLogged(res, since, type);
  });

  test('400 batch: forty bad events refused whole', async () => {
    const batch = Array.from({ length: 40 }, (_, i) => ({
      specversion: '1.0',
      id: `batch-${i}-${'i'.repeat(40)}`,
      source: '/t',
      type: 'io.virtwake.vm.start',
      datacontenttype: 'application/json',
      data: { name: 'NOT/A/NAME' },
    }));
    const since = lines.length;
    const res = await request(h.app.server)
      .post('/')
      .set('content-type', 'application/cloudevents-batch+json')
      .send(JSON.stringify(batch))
      .expect(400);
    expect(problemOf(res).errors!.at(-1)).toMatch(/^… \d+ more$/);
    expectCappedAndLogged(res, since, `batch-39-${'i'.repeat(40)}`);
  });

  test('403 policy: thirty rules, each saying why it does not allow', async () => {
    const app = await h.replica({ VIRTWAKE_POLICY_FILE: policyFile });
    const since = lines.length;
    const res = await h.send('io.virtwake.vm.start', { name: 'db' }, { to: app }).expect(403);
    expect(problemOf(res).errors!.at(-1)).toMatch(/^… \d+ more$/);
    expectCappedAndLogged(res, since, 'snapshot-only-rule-number-29-with-a-descriptive-name');
  });

  test('413 body over the limit', async () => {
    const since = lines.length;
    const res = await h.send('io.virtwake.vm.start', { name: 'db', pad: 'x'.repeat(20_000) }).expect(413);
    expectCappedAndLogged(res, since, /over the limit of 16384 bytes/);
  });

  test('415 an unsupported content-encoding of 2,000 characters', async () => {
    const encoding = `x-${'z'.repeat(2000)}`;
    const since = lines.length;
    const res = await h.send('io.virtwake.vm.start', { name: 'db' }, { headers: { 'content-encoding': encoding } });
    expect(res.status).toBe(415);
    expectCappedAndLogged(res, since, encoding);
  });

  test('408 a body that does not arrive in time', async () => {
    const since = lines.length;
    const res = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const { port } = h.app.server.address() as net.AddressInfo;
      const req = http.request({
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/',
        headers: {
          'ce-specversion': '1.0',
          'ce-id': 'slow-1',
          'ce-source': '/t',
          'ce-type': 'io.virtwake.vm.start',
          'content-type': 'application/json',
          'content-length': '100',
        },
      });
      req.on('response', (r) => {
        let text = '';
        r.on('data', (c: Buffer) => (text += c.toString('utf8')));
        r.on('end', () => resolve({ status: r.statusCode ?? 0, text }));
      });
      req.on('error', reject);
      req.write('{"name":'); // and nothing more
    });
    expect(res.status).toBe(408);
    expectCappedAndLogged(res, since, /not received within 200 ms/);
  });

  test('503 a Kubernetes Status message of 5,000 characters', async () => {
    const message = `admission webhook denied: ${'because '.repeat(620)}end-of-message`;
    const id = h.sim.faults.add({ path: /virtualmachines\/db/, status: 503, message });
    try {
      const since = lines.length;
      const res = await h.send('io.virtwake.vm.start', { name: 'db' }).expect(503);
      expect(problemOf(res).detail).toMatch(/KubeVirt API unavailable after retries .*admission webhook denied/);
      // The Status is decoded whole (not cut into broken JSON first); its message is kept to 2,000 characters.
      expectCappedAndLogged(res, since, /admission webhook denied: (because ){200}/);
    } finally {
      h.sim.faults.remove(id);
    }
  });

  test('503 an HTML error page from a proxy in front of the API server', async () => {
    const page = `<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>${'<p>upstream connect error or disconnect/reset before headers</p>'.repeat(40)}<hr>proxy-page-end</body></html>`;
    const id = h.sim.faults.add({ path: /virtualmachines\/db/, status: 502, rawBody: page });
    try {
      const since = lines.length;
      const res = await h.send('io.virtwake.vm.start', { name: 'db' }).expect(503);
      expect(problemOf(res).detail).toMatch(/502 Bad Gateway/);
      // The API error text is kept to 2,000 characters when it is read; that much reaches the log.
      expectCappedAndLogged(res, since, /upstream connect error.*upstream connect error.*upstream connect error/);
      expect(Buffer.byteLength(JSON.stringify(lines.slice(since)))).toBeGreaterThan(2000);
    } finally {
      h.sim.faults.remove(id);
    }
  });
});

describe('plain-text bodies of the wake proxy', () => {
  let proxy: App;
  beforeAll(async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'virtwake-routes-'));
    const file = path.join(dir, 'routes.json');
    fs.writeFileSync(file, JSON.stringify({ routes: [] }));
    proxy = await h.replica({ VIRTWAKE_FUNCTIONS: 'wake-proxy', VIRTWAKE_PROXY_ROUTES: file });
  });

  test('404 for a path of 4,000 characters', async () => {
    const long = `/${'p'.repeat(4000)}`;
    const since = lines.length;
    const res = await request(proxy.server).get(long).expect(404);
    expectCappedAndLogged(res, since, long);
  });
});

describe('problemBody', () => {
  test.each([
    ['short', new Problem('invalid-data', 'bad', ['/a: x'])],
    ['long detail, no errors', new Problem('unavailable', 'é"\\\n'.repeat(1000))],
    ['long detail and long errors', new Problem('invalid-data', 'd'.repeat(2000), ['e'.repeat(2000), 'f'.repeat(5)])],
    [
      'a thousand errors',
      new Problem(
        'forbidden',
        'denied',
        Array.from({ length: 1000 }, (_, i) => `rule ${i}`),
      ),
    ],
    [
      'emoji everywhere',
      new Problem(
        'invalid-event',
        '🙂'.repeat(500),
        Array.from({ length: 50 }, () => '🙂'.repeat(50)),
      ),
    ],
  ])('%s: valid JSON within the cap', (_what, p) => {
    const body = problemBody(p);
    expect(body.length).toBeLessThanOrEqual(MAX_ERROR_BODY_BYTES);
    const json = JSON.parse(body.toString('utf8'));
    expect(json).toMatchObject({ type: `https://virtwake.io/problems/${p.kind}`, status: p.status });
    expect(body.toString('utf8')).not.toContain('\ufffd');
  });

  test('a body that fits is unchanged', () => {
    const p = new Problem('invalid-data', 'data does not match', ['/name: bad']);
    expect(JSON.parse(problemBody(p).toString('utf8'))).toEqual(p.toJSON());
  });
});
