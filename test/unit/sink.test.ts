import { sinkFrom } from '../../functions/runtime/sink';
import type { CloudEvent } from '../../functions/runtime/cloudevents/event';
import { recordingBroker } from '../helpers/recording-broker';

// contract §2: K_SINK gets binary-mode CloudEvents, each tried a bounded number
// of times; what still fails is handed back to the caller (which keeps its
// record and tries on a later tick). A loopback server plays the Broker.

const event = (id: string): CloudEvent => ({
  specversion: '1.0',
  id,
  source: '/virtwake/pause',
  type: 'io.virtwake.vm.pause.failed',
  subject: 'default/vm-1',
  datacontenttype: 'application/json',
  data: { outcome: 'failed', reason: 'Timeout' },
  extensions: { causationid: 'cmd-1', vmnamespace: 'default', vmname: 'vm-1' },
});

const broker = (answers: number[]) => recordingBroker(answers, '/ns/broker');

test('binary mode: ce- headers, JSON body; a 5xx is tried again', async () => {
  const b = await broker([503, 202]);
  try {
    const lost = await sinkFrom(b.url, { baseDelayMs: 1 }).send([event('e1')]);
    expect(lost).toEqual([]);
    expect(b.seen).toHaveLength(2);
    expect(b.seen[1].headers).toMatchObject({
      'ce-id': 'e1',
      'ce-type': 'io.virtwake.vm.pause.failed',
      'ce-causationid': 'cmd-1',
      'content-type': 'application/json',
    });
    expect(JSON.parse(b.seen[1].body)).toEqual({ outcome: 'failed', reason: 'Timeout' });
  } finally {
    b.server.close();
  }
});

test('bounded: three attempts, then handed back; a 400 is not tried again', async () => {
  const b = await broker([500, 500, 500, 400]);
  try {
    const lost = await sinkFrom(b.url, { baseDelayMs: 1 }).send([event('e1'), event('e2')]);
    expect(lost.map((e) => e.id)).toEqual(['e1', 'e2']);
    expect(b.seen.map((s) => s.headers['ce-id'])).toEqual(['e1', 'e1', 'e1', 'e2']);
  } finally {
    b.server.close();
  }
});

test('no K_SINK: nothing is sent, everything handed back', async () => {
  const sink = sinkFrom(undefined);
  expect(sink.url).toBeUndefined();
  expect((await sink.send([event('e1')])).map((e) => e.id)).toEqual(['e1']);
});

test('a sink that is not there: handed back, no throw', async () => {
  const lost = await sinkFrom('http://127.0.0.1:1/', { baseDelayMs: 1, attempts: 2 }).send([event('e1')]);
  expect(lost.map((e) => e.id)).toEqual(['e1']);
});
