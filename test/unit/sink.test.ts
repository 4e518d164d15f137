import http from 'node:http';
import type net from 'node:net';
import pino from 'pino';
import { ConfigError, loadConfig } from '../../functions/runtime/config';
import { eventSink } from '../../functions/runtime/sink';

// K_SINK: the address is checked at start; an event goes out in binary mode,
// is retried on a 5xx, given up on a 4xx, and a failure never throws.

const log = pino({ level: 'silent' });

test('K_SINK must be an http(s) URL; the message says what to fix', () => {
  expect(() => loadConfig({ K_SINK: 'broker' })).toThrow(ConfigError);
  expect(() => loadConfig({ K_SINK: 'broker' })).toThrow('K_SINK: "broker" is not a URL');
  expect(() => loadConfig({ K_SINK: 'ftp://x/' })).toThrow('must be an http:// or https:// URL');
  expect(loadConfig({ K_SINK: 'http://broker-ingress.knative-eventing.svc/ns/virtwake' }).sinkUrl).toBe(
    'http://broker-ingress.knative-eventing.svc/ns/virtwake',
  );
  expect(loadConfig({}).sinkUrl).toBeUndefined();
});

describe('sending', () => {
  let server: http.Server;
  let url: string;
  const answers: number[] = [];
  const seen: { headers: http.IncomingHttpHeaders; body: string }[] = [];
  beforeAll(async () => {
    server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        seen.push({ headers: req.headers, body });
        res.writeHead(answers.shift() ?? 202).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/`;
  });
  afterAll(() => server.close());
  beforeEach(() => {
    seen.length = 0;
    answers.length = 0;
  });

  const event = {
    type: 'io.virtwake.vm.woke',
    source: '/virtwake/wake-proxy',
    subject: 'ns/vm',
    id: 'e1',
    data: { a: 1 },
  };

  test('binary mode, one POST when the sink takes it', async () => {
    expect(await eventSink(url, log).send(event)).toBe(true);
    expect(seen).toHaveLength(1);
    expect(seen[0].headers).toMatchObject({
      'ce-specversion': '1.0',
      'ce-type': 'io.virtwake.vm.woke',
      'ce-source': '/virtwake/wake-proxy',
      'ce-subject': 'ns/vm',
      'ce-id': 'e1',
      'content-type': 'application/json',
    });
    expect(JSON.parse(seen[0].body)).toEqual({ a: 1 });
  });

  test('a 5xx is retried (same id), a 4xx is not, and neither throws', async () => {
    answers.push(503, 500);
    expect(await eventSink(url, log).send(event)).toBe(true);
    expect(seen.map((s) => s.headers['ce-id'])).toEqual(['e1', 'e1', 'e1']);
    seen.length = 0;
    answers.push(400);
    expect(await eventSink(url, log).send(event)).toBe(false);
    expect(seen).toHaveLength(1);
  });

  test('without K_SINK nothing is sent', async () => {
    expect(await eventSink(undefined, log).send(event)).toBe(false);
    expect(seen).toHaveLength(0);
  });
});
