import { Writable } from 'node:stream';
import { startHarness, type Harness } from '../helpers/harness';

// The dead-letter sink's log line tells a failed command from a command that ran
// and whose result event could not be delivered back to the Broker: Knative
// dead-letters the original command in both cases, with knativeerrordest
// naming what failed (the subscriber, or the Broker's ingress for the reply).

const lines: Record<string, unknown>[] = [];
const sink = new Writable({
  write(chunk: Buffer, _enc, done) {
    for (const l of chunk.toString('utf8').split('\n')) if (l.trim()) lines.push(JSON.parse(l));
    done();
  },
});
let h: Harness;
beforeAll(async () => {
  h = await startHarness({ env: { VIRTWAKE_FUNCTIONS: 'deadletter' }, log: sink });
});
afterAll(() => h.close());

async function deadLetter(id: string, dest?: string): Promise<Record<string, unknown>> {
  await h
    .send(
      'io.virtwake.vm.start',
      { name: 'db' },
      {
        id,
        headers: dest === undefined ? {} : { 'ce-knativeerrorcode': '500', 'ce-knativeerrordest': dest },
      },
    )
    .expect((res) => expect(res.status).toBeLessThan(300));
  const line = lines.find((l) => l.id === id);
  if (!line) throw new Error(`no log line for ${id}`);
  return line;
}

test.each([
  ['the MT channel-based Broker', 'http://broker-ingress.knative-eventing.svc.cluster.local/virtwake/virtwake'],
  ['the Kafka broker', 'http://kafka-broker-ingress.knative-eventing.svc.cluster.local/virtwake/virtwake'],
])('a reply that could not reach %s: the command ran', async (_what, dest) => {
  const line = await deadLetter(`reply-${_what.length}`, dest);
  expect(line.msg).toBe('result undeliverable: the command ran, its result event could not be delivered to the Broker');
  expect(line.replyUndeliverable).toBe(true);
});

test.each([
  ['the subscriber', 'http://virtwake-vm.virtwake.svc.cluster.local/'],
  ['not a URL', 'broker-ingress'],
])('a delivery that failed at %s: dead-lettered', async (what, dest) => {
  const line = await deadLetter(`cmd-${what.length}`, dest);
  expect(line.msg).toBe('event dead-lettered');
  expect(line.replyUndeliverable).toBeUndefined();
});

// Knative adds no knativeerror* extensions when it read no answer: a delivery that timed out
// (test/cluster/knative.rig.test.ts shows it with Knative's own dispatcher).
test('a delivery that got no answer: dead-lettered, and the line says the command may have run', async () => {
  const line = await deadLetter('no-answer');
  expect(line.msg).toBe(
    'event dead-lettered without an answer (the delivery timed out or its connection broke): the command may have run; its result event reports the outcome',
  );
  expect(line.noAnswer).toBe(true);
  expect(line.knativeerrorcode).toBeUndefined();
  expect(line.replyUndeliverable).toBeUndefined();
});
