/**
 * Interop with the `cloudevents` npm SDK (v10), for ordinary events (ASCII header values the
 * SDK neither needs to percent-encode nor decode). The SDK is used here, in tests only; the
 * runtime never imports it. Messages go through a real Node HTTP server, as on the wire.
 */
import { CloudEvent as SdkEvent, HTTP } from 'cloudevents';
import type { CloudEvent } from '../../functions/runtime/cloudevents/event';
import { encodeBatch, encodeBinary } from '../../functions/runtime/cloudevents/http-encode';
import { parseHttpMessage } from '../../functions/runtime/cloudevents/http-parse';
import { sendOverLoopback } from './loopback';

const OURS: CloudEvent = {
  specversion: '1.0',
  id: 'reply-1',
  source: '/virtwake/start',
  type: 'io.virtwake.vm.start.completed',
  subject: 'default/vm1',
  time: '2024-05-01T10:00:00Z',
  datacontenttype: 'application/json',
  extensions: { vmnamespace: 'default', vmname: 'vm1', causationid: 'req-1' },
  data: { name: 'vm1', outcome: 'completed', status: { printableStatus: 'Running', ready: true } },
};

function stringHeaders(headers: Record<string, unknown>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, String(v)]));
}

describe('the SDK reads what we send', () => {
  test('HTTP.toEvent on our binary reply', async () => {
    const { headers, body } = encodeBinary(OURS);
    const captured = await sendOverLoopback(headers, body);
    // The SDK's express example hands toEvent the raw body as a UTF-8 string.
    const received = HTTP.toEvent({ headers: captured.headers, body: captured.body.toString('utf8') }) as SdkEvent;
    expect(received.validate()).toBe(true);
    expect(received).toMatchObject({
      specversion: '1.0',
      id: OURS.id,
      source: OURS.source,
      type: OURS.type,
      subject: OURS.subject,
      datacontenttype: 'application/json',
      data: OURS.data,
      ...OURS.extensions,
    });
    expect(Date.parse(received.time!)).toBe(Date.parse(OURS.time!));
  });

  test('HTTP.toEvent on our batch', () => {
    const { headers, body } = encodeBatch([
      OURS,
      { ...OURS, id: 'reply-2', data: 'text', datacontenttype: 'text/plain' },
    ]);
    const received = HTTP.toEvent({ headers, body: body.toString('utf8') }) as SdkEvent[];
    expect(received.map((e) => [e.id, e.data])).toEqual([
      ['reply-1', OURS.data],
      ['reply-2', 'text'],
    ]);
  });
});

describe('we read what the SDK sends', () => {
  const sdkEvent = new SdkEvent({
    source: '/producer',
    type: 'io.virtwake.vm.start',
    subject: 'default/vm1',
    data: { name: 'vm1', wait: { timeoutSeconds: 30 } },
    vmname: 'vm1',
    attempt: 3,
    urgent: true,
  });

  const expected = {
    specversion: '1.0',
    id: sdkEvent.id,
    source: '/producer',
    type: 'io.virtwake.vm.start',
    subject: 'default/vm1',
    time: sdkEvent.time,
    data: { name: 'vm1', wait: { timeoutSeconds: 30 } },
  };

  test('HTTP.binary', async () => {
    const message = HTTP.binary(sdkEvent);
    const captured = await sendOverLoopback(stringHeaders(message.headers), String(message.body));
    const { mode, events } = parseHttpMessage(captured.headers, captured.body);
    expect(mode).toBe('binary');
    expect(events).toEqual([
      {
        ...expected,
        datacontenttype: 'application/json; charset=utf-8',
        extensions: { vmname: 'vm1', attempt: '3', urgent: 'true' }, // binary mode carries no types
      },
    ]);
  });

  test('HTTP.structured', async () => {
    const message = HTTP.structured(sdkEvent);
    const captured = await sendOverLoopback(stringHeaders(message.headers), String(message.body));
    const { mode, events } = parseHttpMessage(captured.headers, captured.body);
    expect(mode).toBe('structured');
    expect(events).toEqual([{ ...expected, extensions: { vmname: 'vm1', attempt: 3, urgent: true } }]);
  });

  test('a batch of SDK events', () => {
    const second = sdkEvent.cloneWith({ id: 'second' });
    const { events } = parseHttpMessage(
      { 'content-type': 'application/cloudevents-batch+json' },
      Buffer.from(JSON.stringify([sdkEvent, second])),
    );
    expect(events.map((e) => e.id)).toEqual([sdkEvent.id, 'second']);
  });

  test('where the SDK is lax, we are not: an event it accepts after filling in defaults', () => {
    const body = JSON.stringify({ type: 't', source: '/s' });
    const headers = { 'content-type': 'application/cloudevents+json' };
    const lax = HTTP.toEvent({ headers, body }) as SdkEvent;
    expect(lax.id).toMatch(/^[0-9a-f-]{36}$/); // invented
    expect(lax.validate()).toBe(true);
    expect(() => parseHttpMessage(headers, Buffer.from(body))).toThrow('id is missing; specversion is missing');
  });
});
