import type { CloudEvent } from '../../functions/runtime/cloudevents/event';
import {
  encodeBatch,
  encodeBinary,
  encodeStructured,
  toJsonFormat,
} from '../../functions/runtime/cloudevents/http-encode';
import { parseHttpMessage } from '../../functions/runtime/cloudevents/http-parse';
import { sendOverLoopback } from './loopback';

const REPLY: CloudEvent = {
  specversion: '1.0',
  id: 'b3c1f1e0-reply',
  source: '/virtwake/start',
  type: 'io.virtwake.vm.start.completed',
  subject: 'default/vm1',
  time: '2024-05-01T10:00:00.123+02:00',
  datacontenttype: 'application/json',
  extensions: { vmnamespace: 'default', vmname: 'vm1', causationid: 'req-1' },
  data: { namespace: 'default', name: 'vm1', action: 'start', outcome: 'completed', reason: 'AlreadyInState' },
};

describe('encodeBinary', () => {
  test('one ce- header per attribute and extension, Content-Type from datacontenttype, JSON body', () => {
    const { headers, body } = encodeBinary(REPLY);
    expect(headers).toEqual({
      'ce-specversion': '1.0',
      'ce-id': 'b3c1f1e0-reply',
      'ce-source': '/virtwake/start',
      'ce-type': 'io.virtwake.vm.start.completed',
      'ce-subject': 'default/vm1',
      'ce-time': '2024-05-01T10:00:00.123+02:00', // as it was, not reformatted
      'content-type': 'application/json',
      'ce-vmnamespace': 'default',
      'ce-vmname': 'vm1',
      'ce-causationid': 'req-1',
    });
    expect(JSON.parse(body.toString('utf8'))).toEqual(REPLY.data);
  });

  test('percent-encodes space, ", % and anything outside printable ASCII', () => {
    const { headers } = encodeBinary({ ...REPLY, subject: 'Euro € 😀', extensions: { note: 'say "hi" 100%\n' } });
    expect(headers['ce-subject']).toBe('Euro%20%E2%82%AC%20%F0%9F%98%80');
    expect(headers['ce-note']).toBe('say%20%22hi%22%20100%25%0A');
  });

  test('integer and boolean extensions as canonical strings', () => {
    const { headers } = encodeBinary({ ...REPLY, extensions: { count: -5, flag: true } });
    expect(headers['ce-count']).toBe('-5');
    expect(headers['ce-flag']).toBe('true');
  });

  test('a JSON string is quoted in the body', () => {
    expect(encodeBinary({ ...REPLY, data: "I'm just a string" }).body.toString()).toBe('"I\'m just a string"');
  });

  test('text data is written as UTF-8; bytes as they are', () => {
    expect(encodeBinary({ ...REPLY, datacontenttype: 'text/plain', data: 'héllo' }).body).toEqual(Buffer.from('héllo'));
    const bytes = Buffer.from([0, 255]);
    expect(encodeBinary({ ...REPLY, datacontenttype: 'application/octet-stream', data: bytes }).body).toBe(bytes);
    const view = new Uint8Array([1, 2, 3]).subarray(1);
    expect(encodeBinary({ ...REPLY, datacontenttype: 'application/octet-stream', data: view }).body).toEqual(
      Buffer.from([2, 3]),
    );
  });

  test('no data: empty body; no datacontenttype and JSON data: Content-Type application/json', () => {
    const { data: _data, datacontenttype: _ct, ...noData } = REPLY;
    expect(encodeBinary(noData).body.length).toBe(0);
    expect(encodeBinary(noData).headers['content-type']).toBeUndefined();
    const implied = encodeBinary({ ...noData, data: { a: 1 } });
    expect(implied.headers['content-type']).toBe('application/json');
    expect(implied.body.toString()).toBe('{"a":1}');
  });

  test('programming errors throw TypeError', () => {
    expect(() => encodeBinary({ ...REPLY, extensions: { 'vm-name': 'x' } })).toThrow(TypeError);
    expect(() => encodeBinary({ ...REPLY, extensions: { id: 'x' } })).toThrow(TypeError);
    expect(() => encodeBinary({ ...REPLY, datacontenttype: 'text/plain', data: { a: 1 } })).toThrow(TypeError);
  });
});

describe('round trip: parseHttpMessage(encodeBinary(e)) == e', () => {
  const cases: Array<[string, CloudEvent]> = [
    ['a reply with JSON data', REPLY],
    ['minimal', { specversion: '1.0', id: '1', source: '/s', type: 't', extensions: {} }],
    [
      'awkward header values',
      {
        ...REPLY,
        id: 'id with spaces %41 "quotes"',
        subject: 'Euro € 😀 ünï',
        extensions: { note: '100% "sure"', empty: '' },
      },
    ],
    ['JSON string data', { ...REPLY, data: '{"not":"parsed"}' }],
    ['JSON null data', { ...REPLY, data: null }],
    [
      'JSON array data with a +json type',
      { ...REPLY, datacontenttype: 'application/vnd.virtwake+json; charset=utf-8', data: [1, 'two'] },
    ],
    ['text data', { ...REPLY, datacontenttype: 'text/plain; charset=utf-8', data: 'line 1\nline 2 🌎' }],
    ['binary data', { ...REPLY, datacontenttype: 'application/octet-stream', data: Buffer.from([0, 1, 254, 255]) }],
    [
      'all optional attributes',
      { ...REPLY, dataschema: 'https://virtwake.io/schemas/reply.json', time: '2018-04-05T17:31:00Z' },
    ],
  ];

  test.each(cases)('%s', (_name, event) => {
    const { headers, body } = encodeBinary(event);
    expect(parseHttpMessage(headers, body)).toEqual({ mode: 'binary', events: [event] });
  });

  test.each(cases)('%s, through a real Node HTTP server', async (_name, event) => {
    const { headers, body } = encodeBinary(event);
    const captured = await sendOverLoopback(headers, body);
    expect(parseHttpMessage(captured.headers, captured.body).events).toEqual([event]);
  });

  test('integer and boolean extensions come back as strings (binary mode carries no types)', () => {
    const event: CloudEvent = { ...REPLY, extensions: { count: 5, flag: false } };
    const { headers, body } = encodeBinary(event);
    expect(parseHttpMessage(headers, body).events[0].extensions).toEqual({ count: '5', flag: 'false' });
  });

  test('no datacontenttype with JSON data comes back as application/json', () => {
    const { datacontenttype: _ct, ...event } = REPLY;
    const { headers, body } = encodeBinary(event);
    expect(parseHttpMessage(headers, body).events[0]).toEqual({ ...event, datacontenttype: 'application/json' });
  });
});

describe('JSON format: encodeStructured and encodeBatch', () => {
  test('toJsonFormat: attributes and extensions top-level, bytes as data_base64', () => {
    expect(toJsonFormat({ ...REPLY, datacontenttype: 'application/octet-stream', data: Buffer.from('Ma') })).toEqual({
      specversion: '1.0',
      id: REPLY.id,
      source: REPLY.source,
      type: REPLY.type,
      datacontenttype: 'application/octet-stream',
      subject: REPLY.subject,
      time: REPLY.time,
      vmnamespace: 'default',
      vmname: 'vm1',
      causationid: 'req-1',
      data_base64: 'TWE=',
    });
  });

  test('structured round trip', () => {
    for (const event of [
      REPLY,
      { ...REPLY, data: Buffer.from([1, 2]) },
      { ...REPLY, datacontenttype: 'text/plain', data: 'x' },
      { ...REPLY, extensions: { n: 5, b: true } },
    ]) {
      const { headers, body } = encodeStructured(event);
      expect(headers).toEqual({ 'content-type': 'application/cloudevents+json; charset=utf-8' });
      expect(parseHttpMessage(headers, body)).toEqual({ mode: 'structured', events: [event] });
    }
  });

  test('batch: application/cloudevents-batch+json, round trip, empty', () => {
    const events = [REPLY, { ...REPLY, id: 'second', data: 'just a string' }];
    const { headers, body } = encodeBatch(events);
    expect(headers).toEqual({ 'content-type': 'application/cloudevents-batch+json; charset=utf-8' });
    expect(JSON.parse(body.toString())).toHaveLength(2);
    expect(parseHttpMessage(headers, body)).toEqual({ mode: 'batch', events });
    expect(encodeBatch([]).body.toString()).toBe('[]');
  });
});
