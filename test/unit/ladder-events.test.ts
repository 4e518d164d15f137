import pino from 'pino';
import { eventSink, sinkFrom } from '../../functions/runtime/sink';
import { recordingBroker } from '../helpers/recording-broker';

// The sleep ladder's own events (io.virtwake.vm.woke, .slept) go out one at a
// time through the K_SINK sender: binary mode, retried on a 5xx, given up on a
// 4xx, and a failure never throws.

const log = pino({ level: 'silent' });

describe('ladder events through K_SINK', () => {
  let broker: Awaited<ReturnType<typeof recordingBroker>>;
  let url: string;
  let answers: number[];
  let seen: Awaited<ReturnType<typeof recordingBroker>>['seen'];
  beforeAll(async () => {
    broker = await recordingBroker();
    ({ url, answers, seen } = broker);
  });
  afterAll(() => broker.server.close());
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
