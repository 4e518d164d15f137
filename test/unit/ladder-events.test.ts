import http from 'node:http';
import type net from 'node:net';
import pino from 'pino';
import { eventSink, sinkFrom } from '../../functions/runtime/sink';

// The sleep ladder's own events (io.virtwake.vm.woke, .slept) go out one at a
// time through the K_SINK sender: binary mode, retried on a 5xx, given up on a
// 4xx, and a failure never throws.

const log = pino({ level: 'silent' });

describe('ladder events through K_SINK', () => {
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
    time: '2030-03-04T12:00:00Z',
    data: { a: 1 },
  };
  const quick = (u: string | undefined) => eventSink(sinkFrom(u, { baseDelayMs: 1 }), log);

  test('binary mode, one POST when the sink takes it', async () => {
    expect(await quick(url).send(event)).toBe(true);
    expect(seen).toHaveLength(1);
    expect(seen[0].headers).toMatchObject({
      'ce-specversion': '1.0',
      'ce-type': 'io.virtwake.vm.woke',
      'ce-source': '/virtwake/wake-proxy',
      'ce-subject': 'ns/vm',
      'ce-id': 'e1',
      'ce-time': '2030-03-04T12:00:00Z',
      'content-type': 'application/json',
    });
    expect(JSON.parse(seen[0].body)).toEqual({ a: 1 });
  });

  test('a 5xx is retried (same id), a 4xx is not, and neither throws', async () => {
    answers.push(503, 500);
    expect(await quick(url).send(event)).toBe(true);
    expect(seen.map((s) => s.headers['ce-id'])).toEqual(['e1', 'e1', 'e1']);
    seen.length = 0;
    answers.push(400);
    expect(await quick(url).send(event)).toBe(false);
    expect(seen).toHaveLength(1);
  });

  test('without K_SINK nothing is sent', async () => {
    expect(await quick(undefined).send(event)).toBe(false);
    expect(seen).toHaveLength(0);
  });
});
