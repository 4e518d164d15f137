import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { FAILSAFE_SCHEMA, loadAll } from 'js-yaml';
import request from 'supertest';
import type { App } from '../../functions/app';
import { collectionPath, objectPath } from '../../functions/runtime/kubevirt';
import { InvalidName } from '../../functions/runtime/errors';
import { MAX_ERROR_BODY_BYTES } from '../../functions/runtime/problems';
import { Harness, replyData, startHarness } from '../helpers/harness';

// Hostile and malformed input through the real server: the public CloudEvents
// conformance data, names built to escape a URL path, prototype keys, deep
// nesting, oversize and slow bodies, huge selectors. Each is answered 4xx with
// a message that says what is wrong, makes no KubeVirt API call, and leaves
// the server answering the next good event.

const CONFORMANCE = path.resolve(__dirname, '../fixtures/cloudevents-conformance');
const OPT_IN = { 'virtwake.io/enabled': 'true' };
const BODY_TIMEOUT_MS = 300;
const MAX_BODY = 1024 * 1024;

let h: Harness;
/** The dead-letter sink (VIRTWAKE_FUNCTIONS=deadletter): answers 202 to any valid CloudEvent, whatever its type. */
let sink: App;

beforeAll(async () => {
  h = await startHarness({ sim: { stepMs: 5 }, env: { VIRTWAKE_BODY_TIMEOUT_MS: String(BODY_TIMEOUT_MS) } });
  sink = await h.replica({ VIRTWAKE_FUNCTIONS: 'deadletter' });
  h.sim.store.addVM(
    { metadata: { name: 'target', namespace: 'default', labels: OPT_IN }, spec: { runStrategy: 'Manual' } },
    { running: true },
  );
});
afterAll(() => h.close());
beforeEach(() => h.sim.resetCalls());

const STRUCTURED = 'application/cloudevents+json; charset=utf-8';
const BATCH = 'application/cloudevents-batch+json';
const post = (app: App, contentType: string, body: string | Buffer, headers: Record<string, string> = {}) =>
  request(app.server)
    .post('/')
    .set('content-type', contentType)
    .set(headers)
    .send(typeof body === 'string' ? body : body);
/** A binary-mode command with a raw JSON body, so the body can hold what JSON.stringify would not write. */
const rawCommand = (type: string, json: string, headers: Record<string, string> = {}) =>
  post(h.app, 'application/json', json, {
    'ce-specversion': '1.0',
    'ce-id': `raw-${Math.random()}`,
    'ce-source': '/test/hostile',
    'ce-type': type,
    ...headers,
  });

/** A 4xx with a problem body whose detail says something, and nothing asked of the API. */
function refused(
  res: { status: number; headers: Record<string, string>; text: string },
  status?: number,
): { detail: string; errors: string[] } {
  expect(res.status >= 400 && res.status < 500).toBe(true);
  if (status) expect(res.status).toBe(status);
  expect(res.headers['content-type']).toBe('application/problem+json');
  const body = JSON.parse(res.text) as { detail: string; errors?: string[] };
  expect(body.detail.length).toBeGreaterThan(10);
  expect(h.sim.calls).toEqual([]);
  return { detail: body.detail, errors: body.errors ?? [] };
}

describe('CloudEvents conformance data (format/json, yaml)', () => {
  interface FormatTest {
    id: string;
    event?: unknown;
    batch?: unknown;
  }
  const load = (file: string) =>
    (
      JSON.parse(fs.readFileSync(path.join(CONFORMANCE, 'format/json', file), 'utf8')) as { tests: FormatTest[] }
    ).tests.map((t) => [t.id, t] as const);

  test.each(load('valid-events.json'))(
    'valid event %s: accepted by the CloudEvents layer (dead-letter sink 202); a command server says unknown type',
    async (_id, t) => {
      expect((await post(sink, STRUCTURED, JSON.stringify(t.event))).status).toBe(202);
      const res = await post(h.app, STRUCTURED, JSON.stringify(t.event));
      expect(refused(res, 400).detail).toMatch(/event type "io.cloudevents.test" is not handled by this service/);
    },
  );

  test.each(load('invalid-events.json'))('invalid event %s: 400 on every server', async (_id, t) => {
    for (const app of [sink, h.app]) refused(await post(app, STRUCTURED, JSON.stringify(t.event)), 400);
  });

  test.each(load('valid-batches.json'))('valid batch %s: accepted', async (_id, t) => {
    expect((await post(sink, BATCH, JSON.stringify(t.batch))).status).toBe(202);
  });

  test.each(load('invalid-batches.json'))('invalid batch %s: 400, nothing in it processed', async (_id, t) => {
    for (const app of [sink, h.app]) refused(await post(app, BATCH, JSON.stringify(t.batch)), 400);
  });

  interface YamlEvent {
    ContextAttributes: Record<string, string> & { Extensions?: Record<string, string> };
    TransportExtensions?: Record<string, string>;
    Data?: string;
  }
  const yamlDocs = (file: string) =>
    (
      loadAll(fs.readFileSync(path.join(CONFORMANCE, 'yaml', file), 'utf8'), { schema: FAILSAFE_SCHEMA }) as YamlEvent[]
    ).filter(Boolean);
  /** The attributes as the `cloudevents invoke` tool sends them: trimmed strings, empty ones left out. */
  const attrs = (d: YamlEvent) =>
    Object.entries({ ...d.ContextAttributes, ...d.ContextAttributes.Extensions })
      .filter(([k, v]) => k !== 'Extensions' && typeof v === 'string' && v.trim() !== '')
      .map(([k, v]) => [k, (v as string).trim()] as const);
  function sendYaml(app: App, d: YamlEvent, mode: 'binary' | 'structured') {
    const transport = Object.fromEntries(Object.entries(d.TransportExtensions ?? {}).map(([k, v]) => [k, v.trim()]));
    if (mode === 'binary') {
      const headers = Object.fromEntries(
        attrs(d).map(([k, v]) => [k === 'datacontenttype' ? 'content-type' : `ce-${k}`, v]),
      );
      return request(app.server)
        .post('/')
        .set({ 'content-type': 'application/octet-stream', ...transport, ...headers })
        .send(Buffer.from(d.Data ?? ''));
    }
    const envelope: Record<string, unknown> = Object.fromEntries(attrs(d));
    const ct = d.ContextAttributes.datacontenttype;
    if (d.Data) envelope.data = !ct || /json/i.test(ct) ? JSON.parse(d.Data) : d.Data;
    return request(app.server)
      .post('/')
      .set({ ...transport, 'content-type': STRUCTURED })
      .send(JSON.stringify(envelope));
  }
  const v1 = [...yamlDocs('v1.yaml'), ...yamlDocs('v1.0/v1_minimum.yaml')];
  const v03 = [...yamlDocs('v03.yaml'), ...yamlDocs('v0.3/v03_minimum.yaml')];

  test.each(['binary', 'structured'] as const)('yaml 1.0 events in %s mode: accepted', async (mode) => {
    expect(v1.length).toBeGreaterThan(5);
    for (const d of v1)
      expect([d.ContextAttributes.id, (await sendYaml(sink, d, mode)).status]).toEqual([d.ContextAttributes.id, 202]);
  });

  test.each(['binary', 'structured'] as const)(
    'yaml 0.3 events in %s mode: 400 unsupported specversion',
    async (mode) => {
      expect(v03.length).toBeGreaterThan(0);
      for (const d of v03)
        expect(
          refused(await sendYaml(sink, d, mode), 400).detail +
            refused(await sendYaml(sink, d, mode), 400).errors.join(' '),
        ).toMatch(/specversion/);
    },
  );
});

describe('names that could escape a URL path', () => {
  const names = [
    'a/b',
    '..',
    '../etc',
    'vm/../../kube-system',
    'UPPER',
    'Vm',
    'x'.repeat(300),
    '',
    ' vm',
    'vm\u0000',
    'vm%2F..',
    'vm?watch=true',
    'vm#frag',
    'vm\\..',
  ];
  test.each(names.map((n) => [JSON.stringify(n).slice(0, 40), n]))(
    'name %s: 400 naming /name',
    async (_label, name) => {
      const { errors } = refused(await h.send('io.virtwake.vm.start', { name }), 400);
      expect(errors.join('\n')).toMatch(/^\/name: /m);
    },
  );

  const namespaces = ['../kube-system', 'a/b', 'Default', 'x'.repeat(64), 'kube..system', '.'];
  test.each(namespaces.map((n) => [JSON.stringify(n).slice(0, 40), n]))(
    'namespace %s: 400 naming /namespace',
    async (_label, namespace) => {
      const { errors } = refused(await h.send('io.virtwake.vm.stop', { name: 'target', namespace }), 400);
      expect(errors.join('\n')).toMatch(/^\/namespace: /m);
    },
  );

  test('a second guard: the KubeVirt client refuses to build a URL from any of them, whatever validated it before', () => {
    for (const name of names) expect(() => objectPath('virtualmachines', 'default', name)).toThrow(InvalidName);
    for (const namespace of namespaces) expect(() => collectionPath('virtualmachines', namespace)).toThrow(InvalidName);
    expect(objectPath('virtualmachines', 'default', 'vm-1.example')).toBe(
      '/apis/kubevirt.io/v1/namespaces/default/virtualmachines/vm-1.example',
    );
  });

  test('snapshot and restore names too', async () => {
    refused(await h.send('io.virtwake.vm.snapshot', { name: 'target', snapshotName: '../other-vm-snap' }), 400);
    refused(await h.send('io.virtwake.vm.restore', { name: 'target', snapshotName: 'Snap/1' }), 400);
  });

  test('label keys and values in a selector', async () => {
    for (const matchLabels of [
      { 'a/b/c': 'x' },
      { '../x': 'y' },
      { app: 'a/b' },
      { app: 'x'.repeat(64) },
      { ['k'.repeat(400)]: 'v' },
    ]) {
      refused(await h.send('io.virtwake.vm.start', { selector: { matchLabels } }), 400);
    }
  });
});

describe('__proto__ and constructor keys', () => {
  const clean = () => {
    expect(
      Object.getOwnPropertyNames(Object.prototype).filter((k) => ['admin', 'polluted', 'isAdmin'].includes(k)),
    ).toEqual([]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(typeof ({} as { constructor: unknown }).constructor).toBe('function');
  };
  afterEach(clean);

  test('in command data: 400 unknown field', async () => {
    const { errors } = refused(
      await rawCommand('io.virtwake.vm.start', '{"name":"target","__proto__":{"polluted":true,"admin":true}}'),
      400,
    );
    expect(errors).toContain('/__proto__: unknown field, not allowed');
    refused(
      await rawCommand('io.virtwake.vm.start', '{"name":"target","constructor":{"prototype":{"polluted":true}}}'),
      400,
    );
    refused(
      await rawCommand(
        'io.virtwake.vm.start',
        '{"name":"target","wait":{"timeoutSeconds":5,"__proto__":{"polluted":1}}}',
      ),
      400,
    );
  });

  test('as a label key: __proto__ is not a label key (400); constructor is one, matched as a plain label', async () => {
    refused(await rawCommand('io.virtwake.vm.stop', '{"selector":{"matchLabels":{"__proto__":"x"}}}'), 400);
    const res = await rawCommand('io.virtwake.vm.stop', '{"selector":{"matchLabels":{"constructor":"Object"}}}').expect(
      200,
    );
    expect(replyData(res)).toMatchObject({ outcome: 'completed', reason: 'NoMatch', matched: 0 });
    expect(h.sim.calls.map((c) => [c.verb, c.query?.labelSelector])).toEqual([
      ['list', 'constructor=Object,virtwake.io/enabled=true'],
    ]);
  });

  test('as CloudEvent attributes: __proto__ is an invalid name (400); constructor is a valid extension', async () => {
    const event = {
      specversion: '1.0',
      id: 'p-1',
      source: '/test/hostile',
      type: 'io.virtwake.vm.start',
      data: { name: 'target' },
    };
    const text = JSON.stringify(event).replace('{', '{"__proto__":{"polluted":true},');
    refused(await post(h.app, STRUCTURED, text), 400);
    refused(await rawCommand('io.virtwake.vm.start', '{"name":"target"}', { 'ce-__proto__': 'x' }), 400);
    // A valid extension name, so a valid event: processed like any other.
    const ok = await post(h.app, STRUCTURED, JSON.stringify({ ...event, id: 'p-2', constructor: 'x' })).expect(200);
    expect(ok.headers['ce-type']).toBe('io.virtwake.vm.start.completed');
  });
});

describe('deep nesting', () => {
  const LEVELS = 300_000; // 600 KB, under the 1 MiB limit
  const deepArray = '['.repeat(LEVELS) + ']'.repeat(LEVELS);
  const deepObject = '{"a":'.repeat(LEVELS / 2) + '1' + '}'.repeat(LEVELS / 2);

  test.each([
    ['as data', deepArray, /^\/: must be object$/m],
    ['inside a field', `{"name":"target","wait":${deepArray}}`, /\/wait: must be object/],
    ['as an unknown field', `{"name":"target","x":${deepObject}}`, /\/x: unknown field/],
    ['inside the selector', `{"selector":${deepObject}}`, /selector/],
  ])('%s: 400, no crash', async (_what, body, message) => {
    const { detail, errors } = refused(await rawCommand('io.virtwake.vm.start', body), 400);
    expect([detail, ...errors].join('\n')).toMatch(message);
  });

  test('in structured mode and in a batch', async () => {
    const envelope = (data: string) =>
      `{"specversion":"1.0","id":"deep","source":"/test/hostile","type":"io.virtwake.vm.start","data":${data}}`;
    refused(await post(h.app, STRUCTURED, envelope(deepArray)), 400);
    refused(await post(h.app, STRUCTURED, envelope(deepArray).replace('"data":', '"deepext":')), 400);
    refused(await post(h.app, BATCH, `[${envelope(deepObject)}]`), 400);
    refused(await post(h.app, BATCH, deepArray), 400);
    // A valid event whatever its data: the dead-letter sink takes it without walking it.
    expect((await post(sink, STRUCTURED, envelope(deepArray))).status).toBe(202);
  });
});

/** Raw HTTP, for bodies a client library would not send: resolves with the first answer, or with how the connection ended. */
function rawHttp(
  app: App,
  head: string,
  feed: (socket: net.Socket) => void,
): Promise<{ status?: number; text: string; closed: boolean }> {
  const { port } = app.server.address() as net.AddressInfo;
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write(head);
      feed(socket);
    });
    let text = '';
    const done = (closed: boolean) => {
      const status = /^HTTP\/1\.1 (\d{3})/.exec(text)?.[1];
      resolve({ status: status ? Number(status) : undefined, text, closed });
    };
    socket.on('data', (c) => (text += c.toString('utf8')));
    socket.on('close', () => done(true));
    socket.on('error', () => undefined);
  });
}
const HEAD = (extra: string) =>
  `POST / HTTP/1.1\r\nHost: virtwake\r\nce-specversion: 1.0\r\nce-id: big\r\nce-source: /test/hostile\r\nce-type: io.virtwake.vm.start\r\ncontent-type: application/json\r\n${extra}\r\n`;

describe('oversize and slow bodies', () => {
  const TEN_MIB = 10 * 1024 * 1024;

  test('10 MiB with Content-Length: 413 before reading it', async () => {
    const res = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const { port } = h.app.server.address() as net.AddressInfo;
      const req = http.request(
        {
          host: '127.0.0.1',
          port,
          method: 'POST',
          path: '/',
          agent: false,
          headers: {
            'ce-specversion': '1.0',
            'ce-id': 'big',
            'ce-source': '/t',
            'ce-type': 'io.virtwake.vm.start',
            'content-type': 'application/json',
            'content-length': TEN_MIB,
          },
        },
        (r) => {
          let text = '';
          r.on('data', (c) => (text += c));
          r.on('end', () => resolve({ status: r.statusCode ?? 0, text }));
        },
      );
      req.on('error', (e) => reject(e));
      req.end(Buffer.alloc(TEN_MIB, 0x20));
    });
    expect(res.status).toBe(413);
    expect(JSON.parse(res.text).detail).toBe(`body of ${TEN_MIB} bytes is over the limit of ${MAX_BODY} bytes`);
    expect(h.sim.calls).toEqual([]);
  });

  test('10 MiB chunked (no Content-Length): 413 once past the limit, the connection closed', async () => {
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    const res = await rawHttp(h.app, HEAD('transfer-encoding: chunked\r\n'), (socket) => {
      let sent = 0;
      const pump = () => {
        while (sent < TEN_MIB && !socket.destroyed) {
          sent += chunk.length;
          if (!socket.write(`${chunk.length.toString(16)}\r\n${chunk.toString('latin1')}\r\n`, 'latin1'))
            return void socket.once('drain', pump);
        }
        if (!socket.destroyed) socket.end('0\r\n\r\n');
      };
      pump();
    });
    expect(res.status).toBe(413);
    expect(res.text).toMatch(/body is over the limit of 1048576 bytes/);
    expect(res.closed).toBe(true);
    expect(h.sim.calls).toEqual([]);
  });

  test(`a body that trickles in: 408 after VIRTWAKE_BODY_TIMEOUT_MS (${BODY_TIMEOUT_MS} ms), the connection closed`, async () => {
    let timer: NodeJS.Timeout | undefined;
    const res = await rawHttp(h.app, HEAD('content-length: 1000\r\n'), (socket) => {
      socket.write('{"name":');
      // One byte every 50 ms keeps the socket busy; only a limit on the whole body stops it.
      timer = setInterval(() => !socket.destroyed && socket.write(' '), 50);
    });
    clearInterval(timer);
    expect(res.status).toBe(408);
    expect(JSON.parse(res.text.slice(res.text.indexOf('\r\n\r\n') + 4)).detail).toMatch(
      /^request body not received within 300 ms/,
    );
    expect(res.closed).toBe(true);
    expect(h.sim.calls).toEqual([]);
  });

  test('headers that trickle in: the connection is closed', async () => {
    let timer: NodeJS.Timeout | undefined;
    const res = await rawHttp(h.app, 'POST / HTTP/1.1\r\nHost: virtwake\r\n', (socket) => {
      timer = setInterval(() => !socket.destroyed && socket.write('x-slow: y\r\n'), 50);
    });
    clearInterval(timer);
    expect(res.closed).toBe(true);
    if (res.status !== undefined) expect(res.status).toBe(408);
    expect(h.sim.calls).toEqual([]);
  });
});

describe('huge selectors', () => {
  test('1,000 labels: 400, at most 16', async () => {
    const matchLabels = Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`label-${i}`, 'x']));
    const { errors } = refused(await h.send('io.virtwake.vm.start', { selector: { matchLabels } }), 400);
    expect(errors).toContain('/selector/matchLabels: must NOT have more than 16 properties');
  });

  test('as many bad keys as fit in the body: 400 with a bounded list of errors', async () => {
    const matchLabels = Object.fromEntries(Array.from({ length: 40_000 }, (_, i) => [`Bad Key ${i}`, 'x']));
    const res = await h.send('io.virtwake.vm.start', { selector: { matchLabels } });
    const { errors } = refused(res, 400);
    expect(errors.length).toBeGreaterThan(1);
    expect(errors[errors.length - 1]).toMatch(/^… \d+ more$/);
    expect(Buffer.byteLength(res.text)).toBeLessThanOrEqual(MAX_ERROR_BODY_BYTES);
  });

  test('one huge key or value: 400', async () => {
    refused(await h.send('io.virtwake.vm.start', { selector: { matchLabels: { ['a'.repeat(100_000)]: 'x' } } }), 400);
    refused(await h.send('io.virtwake.vm.start', { selector: { matchLabels: { app: 'a'.repeat(100_000) } } }), 400);
  });
});

describe('afterwards', () => {
  test('both servers still answer a good event, and no prototype was touched', async () => {
    const res = await h.send('io.virtwake.vm.start', { name: 'target' }).expect(200);
    expect(res.headers['ce-type']).toBe('io.virtwake.vm.start.completed');
    expect((await h.send('io.virtwake.vm.start', { name: 'target' }, { to: sink })).status).toBe(202);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(({} as Record<string, unknown>).admin).toBeUndefined();
  });
});
