import { BINARY_BASE, MINIMAL, parse, parseError, structured, structuredError } from './helpers';
import { sendOverLoopback } from './loopback';
import { parseHttpMessage } from '../../functions/runtime/cloudevents/http-parse';

describe('mode detection', () => {
  test.each([
    ['application/cloudevents-batch+json', 'batch'],
    ['Application/CloudEvents-Batch+JSON; charset=UTF-8', 'batch'],
    ['application/cloudevents+json', 'structured'],
    ['Application/CloudEvents+JSON', 'structured'],
    ['application/cloudevents+json;charset=utf-8', 'structured'],
    ['application/cloudevents+json ; charset="UTF-8"', 'structured'],
  ])('%s → %s', (contentType, mode) => {
    const body = mode === 'batch' ? JSON.stringify([MINIMAL]) : JSON.stringify(MINIMAL);
    expect(parse({ 'content-type': contentType }, body).mode).toBe(mode);
  });

  test('anything else with ce- headers → binary', () => {
    expect(parse({ ...BINARY_BASE, 'content-type': 'application/json' }, '{}').mode).toBe('binary');
    expect(parse({ ...BINARY_BASE }).mode).toBe('binary');
  });

  test.each([
    ['application/cloudevents+avro'],
    ['application/cloudevents+xml; charset=utf-8'],
    ['application/cloudevents'],
    ['application/cloudevents-batch+protobuf'],
    ['application/cloudevents-batch'],
    ['application/cloudevents+json; charset=iso-8859-1'],
    ['application/cloudevents+json; charset'],
  ])('415 for the CloudEvents media type %j we do not read', (contentType) => {
    const err = parseError({ 'content-type': contentType }, JSON.stringify(MINIMAL));
    expect(err.status).toBe(415);
    expect(err.errors).toHaveLength(1);
  });

  test('415 names the format', () => {
    expect(parseError({ 'content-type': 'application/cloudevents+avro' }).errors[0]).toMatch(
      /unsupported CloudEvents format "application\/cloudevents\+avro": only application\/cloudevents\+json/,
    );
  });

  test.each([
    [{}, ''],
    [{ 'content-type': 'text/plain' }, 'hello'],
    [{ 'content-type': 'application/json' }, '{"a":1}'],
    [{ 'content-type': 'application/json', 'ce-subject': 'only optional ce- headers' }, '{}'],
    [{ 'user-agent': 'curl/8', accept: '*/*' }, ''],
  ])('415 for an ordinary HTTP request %j', (headers, body) => {
    const err = parseError(headers, body);
    expect(err.status).toBe(415);
    expect(err.errors[0]).toMatch(/^not a CloudEvent: /);
  });

  test('a repeated Content-Type is rejected', () => {
    const err = parseError({ 'content-type': ['application/cloudevents+json', 'text/plain'] }, JSON.stringify(MINIMAL));
    expect(err.status).toBe(400);
    expect(err.errors).toEqual(['Content-Type header is repeated (2 times): send it exactly once']);
  });

  test('headersDistinct style (every value an array of one) is accepted', () => {
    const { events } = parse(
      {
        'content-type': ['application/json'],
        'ce-specversion': ['1.0'],
        'ce-id': ['1'],
        'ce-source': ['/s'],
        'ce-type': ['t'],
      },
      '{"a":1}',
    );
    expect(events[0]).toMatchObject({ id: '1', datacontenttype: 'application/json', data: { a: 1 } });
  });
});

describe('binary mode', () => {
  test('the Gherkin conformance scenario', () => {
    for (const contentType of ['application/json', 'application/json; charset=utf-8']) {
      const { mode, events } = parse(
        {
          'ce-specversion': '1.0',
          'ce-type': 'com.example.someevent',
          'ce-time': '2018-04-05T03:56:24Z',
          'ce-id': '1234-1234-1234',
          'ce-source': '/mycontext/subcontext',
          'content-type': contentType,
          host: 'example.com',
        },
        '{ "message": "Hello World!" }',
      );
      expect(mode).toBe('binary');
      expect(events).toEqual([
        {
          specversion: '1.0',
          type: 'com.example.someevent',
          time: '2018-04-05T03:56:24Z',
          id: '1234-1234-1234',
          source: '/mycontext/subcontext',
          datacontenttype: contentType,
          data: { message: 'Hello World!' },
          extensions: {},
        },
      ]);
    }
  });

  test('all attributes and extensions; time kept as received', () => {
    const [event] = parse({
      ...BINARY_BASE,
      'ce-subject': 'default/vm1',
      'ce-time': '2018-04-05T18:31:00.123+01:00',
      'ce-dataschema': 'https://example.com/schema.json',
      'ce-vmname': 'vm1',
      'ce-comexampleothervalue': '5',
    }).events;
    expect(event).toEqual({
      ...{ specversion: '1.0', id: 'id-1', source: '/virtwake/test', type: 'io.virtwake.vm.start' },
      subject: 'default/vm1',
      time: '2018-04-05T18:31:00.123+01:00',
      dataschema: 'https://example.com/schema.json',
      extensions: { vmname: 'vm1', comexampleothervalue: '5' },
    });
    expect('data' in event).toBe(false);
    expect('datacontenttype' in event).toBe(false);
  });

  test('header names are case-insensitive: CE-MYEXT is the extension myext', () => {
    const { events } = parse(
      {
        'CE-SPECVERSION': '1.0',
        'Ce-Id': '1',
        'ce-SOURCE': '/s',
        'ce-type': 't',
        'CE-MYEXT': 'v',
        'Content-Type': 'text/plain',
      },
      'hi',
    );
    expect(events[0]).toMatchObject({
      id: '1',
      source: '/s',
      extensions: { myext: 'v' },
      datacontenttype: 'text/plain',
      data: 'hi',
    });
  });

  test('partial ce- headers: 400 listing every missing one', () => {
    const err = parseError({ 'ce-id': '1', 'content-type': 'text/plain' }, 'x');
    expect(err.status).toBe(400);
    expect(err.errors).toEqual([
      'ce-source header is missing',
      'ce-specversion header is missing',
      'ce-type header is missing',
    ]);
    expect(err.message).toBe(
      'ce-source header is missing; ce-specversion header is missing; ce-type header is missing',
    );
  });

  test('empty required headers', () => {
    expect(parseError({ ...BINARY_BASE, 'ce-id': '', 'ce-type': '' }).errors).toEqual([
      'ce-id header must not be empty',
      'ce-type header must not be empty',
    ]);
  });

  test.each(['0.3', '0.9', '1', '1.0.2', '2.0'])('ce-specversion %s → 400 unsupported specversion', (version) => {
    const err = parseError({ ...BINARY_BASE, 'ce-specversion': version, 'ce-schemaurl': 'x' });
    expect(err.status).toBe(400);
    expect(err.errors).toEqual([
      `ce-specversion header "${version}": unsupported specversion, only "1.0" is supported`,
    ]);
  });

  test.each([
    ['ce-time', 'lunchtime', 'ce-time header "lunchtime" is not an RFC 3339 timestamp'],
    ['ce-time', '2018-04-05T18:31Z', 'ce-time header "2018-04-05T18:31Z" is not an RFC 3339 timestamp'],
    ['ce-time', '2018-04-05T18:31:00+05', 'is not an RFC 3339 timestamp'],
    ['ce-source', 'not%20a%20uri', 'ce-source header "not a uri" is not a valid URI-reference'],
    ['ce-dataschema', '/relative', 'ce-dataschema header "/relative" is not an absolute URI'],
    ['ce-subject', '', 'ce-subject header must not be empty'],
    ['ce-subject', 'a%0D%0Ab', 'ce-subject header contains the forbidden character U+000D at index 1'],
    ['ce-myext', '%00', 'ce-myext header contains the forbidden character U+0000'],
    ['ce-my-ext', 'v', 'header "ce-my-ext" names the attribute "my-ext", which is invalid'],
    ['ce-my.ext', 'v', 'header "ce-my.ext" names the attribute "my.ext", which is invalid'],
    ['ce-my_ext', 'v', 'names the attribute "my_ext", which is invalid'],
    ['ce-', 'v', 'header "ce-" names the attribute "", which is invalid'],
    ['ce-datacontenttype', 'text/plain', 'ce-datacontenttype header must not be sent'],
    ['ce-data', 'x', 'ce-data header is not allowed'],
    ['ce-subject', '%C0%A0', 'ce-subject header: the percent-decoded bytes are not valid UTF-8'],
    ['ce-subject', '50%off', 'ce-subject header: invalid percent-encoding at index 2'],
    ['ce-subject', '"bad"quote"', 'ce-subject header: malformed quoted-string'],
  ])('%s: %j → 400', (header, value, message) => {
    const err = parseError({ ...BINARY_BASE, [header]: value });
    expect(err.status).toBe(400);
    expect(err.errors).toHaveLength(1);
    expect(err.errors[0]).toContain(message);
  });

  test('an undecodable required header is reported once, not also as missing', () => {
    expect(parseError({ ...BINARY_BASE, 'ce-id': '%zz' }).errors).toEqual([
      expect.stringMatching(/^ce-id header: invalid percent-encoding/),
    ]);
  });

  test('Content-Type must be a media type', () => {
    for (const contentType of ['xyz', '', 'text/plain; charset']) {
      const err = parseError({ ...BINARY_BASE, 'content-type': contentType }, 'x');
      expect(err.status).toBe(400);
      expect(err.errors).toEqual([expect.stringMatching(/^Content-Type header /)]);
    }
  });

  test('repeated attribute headers → 400', () => {
    expect(parseError({ ...BINARY_BASE, 'ce-id': ['a', 'b'] }).errors).toEqual([
      'ce-id header is repeated: each attribute must be sent exactly once',
    ]);
    expect(parseError({ ...BINARY_BASE, 'ce-myext': ['a', 'b'] }).errors).toEqual([
      'ce-myext header is repeated: each attribute must be sent exactly once',
    ]);
    // the same header in two spellings, from a caller that did not lower-case names
    expect(parseError({ ...BINARY_BASE, 'CE-ID': 'other' }).errors).toEqual([
      'ce-id header is repeated: each attribute must be sent exactly once',
    ]);
  });

  test('every problem in one answer', () => {
    const err = parseError(
      {
        'ce-specversion': '1.0',
        'ce-id': '1',
        'ce-time': 'lunchtime',
        'ce-my-ext': 'x',
        'content-type': 'application/json',
      },
      '{not json',
    );
    expect(err.errors).toEqual([
      expect.stringContaining('"ce-my-ext"'),
      'ce-source header is missing',
      'ce-type header is missing',
      expect.stringContaining('ce-time header "lunchtime"'),
      expect.stringMatching(/^data is not valid JSON: /),
    ]);
  });

  describe('header values', () => {
    test('percent-decoding: the spec example, lower-case hex, needless escapes', () => {
      const { events } = parse({
        ...BINARY_BASE,
        'ce-subject': 'Euro%20%E2%82%AC%20%F0%9F%98%80',
        'ce-id': 'id%2dwith%2Dhex',
        'ce-myext': '%e2%82%ac%41',
      });
      expect(events[0].subject).toBe('Euro € 😀');
      expect(events[0].id).toBe('id-with-hex');
      expect(events[0].extensions.myext).toBe('€A');
    });

    test('RFC 7230 quoted-string values are unquoted first', () => {
      const { events } = parse({ ...BINARY_BASE, 'ce-subject': '"hello world"', 'ce-myext': '"say \\"hi\\""' });
      expect(events[0].subject).toBe('hello world');
      expect(events[0].extensions.myext).toBe('say "hi"');
    });

    test('exactly one round of percent-decoding', () => {
      expect(parse({ ...BINARY_BASE, 'ce-subject': '%2520' }).events[0].subject).toBe('%20');
    });

    test('raw space and quotes inside a value are kept (lax senders)', () => {
      expect(parse({ ...BINARY_BASE, 'ce-myext': '{"othervalue": 5}' }).events[0].extensions.myext).toBe(
        '{"othervalue": 5}',
      );
    });
  });

  describe('data', () => {
    test.each([
      ['application/json', '{"a":1}', { a: 1 }],
      ['application/json; charset=utf-8', '[1,2]', [1, 2]],
      ['application/json;charset=UTF-8', '"a string"', 'a string'],
      ['APPLICATION/JSON', 'null', null],
      ['application/vnd.virtwake+json ;  v=1', '{"n":1}', { n: 1 }],
      ['text/json', '42', 42],
      ['application/json', '\ufeff{"bom":true}', { bom: true }],
      ['text/plain', 'hello 🌎', 'hello 🌎'],
      ['text/plain; charset=us-ascii', 'Hello, World!\n', 'Hello, World!\n'],
      ['Text/XML', '<a/>', '<a/>'],
      ['application/xml; charset=utf-8', '<msg>Hello, 🌎!</msg>', '<msg>Hello, 🌎!</msg>'],
      ['text/plain', '{"a":1}', '{"a":1}'], // never parsed as JSON
    ])('%s body %j → %j', (contentType, body, data) => {
      const [event] = parse({ ...BINARY_BASE, 'content-type': contentType }, body).events;
      expect(event.datacontenttype).toBe(contentType);
      expect(event.data).toEqual(data);
    });

    test('other media types, or no Content-Type: the body bytes as they are', () => {
      const bytes = Buffer.from([0, 1, 2, 255]);
      for (const headers of [
        { 'content-type': 'application/octet-stream' },
        { 'content-type': 'image/png' },
        { 'content-type': 'text/plain; charset=iso-8859-1' },
        {},
      ]) {
        const [event] = parse({ ...BINARY_BASE, ...headers }, bytes).events;
        expect(Buffer.isBuffer(event.data)).toBe(true);
        expect(event.data).toBe(bytes); // not copied
      }
    });

    test('empty body: no data, but datacontenttype is kept', () => {
      const [event] = parse({ ...BINARY_BASE, 'content-type': 'application/json' }, '').events;
      expect('data' in event).toBe(false);
      expect(event.datacontenttype).toBe('application/json');
    });

    test.each([
      ['application/json', '{not json'],
      ['application/json', 'hello'],
      ['application/json', '   '],
      ['application/problem+json', '{'],
      ['application/vnd.x+json', '{"a":1,}'],
    ])('malformed JSON (%s %j) → 400, never a SyntaxError', (contentType, body) => {
      const err = parseError({ ...BINARY_BASE, 'content-type': contentType }, body);
      expect(err.status).toBe(400);
      expect(err.errors).toEqual([expect.stringMatching(/^data is not valid JSON: .+/)]);
    });

    test('invalid UTF-8 in a JSON or text body → 400', () => {
      const bad = Buffer.from([0x22, 0xc0, 0xa0, 0x22]);
      expect(parseError({ ...BINARY_BASE, 'content-type': 'application/json' }, bad).errors).toEqual([
        'data is not valid UTF-8, which JSON requires',
      ]);
      expect(parseError({ ...BINARY_BASE, 'content-type': 'text/plain' }, bad).errors).toEqual([
        'data is not valid UTF-8 text, as Content-Type "text/plain" declares',
      ]);
    });
  });

  describe('through a real Node HTTP server', () => {
    test('mixed-case header names, quoted and percent-encoded values, raw UTF-8 bytes', async () => {
      const { headers, body } = await sendOverLoopback(
        {
          'CE-SpecVersion': '1.0',
          'CE-ID': 'abc',
          'Ce-Source': '/s',
          'ce-type': 't',
          'Ce-MyExt': '"quoted value"',
          'ce-subject': 'Euro%20%E2%82%AC',
          // a lax sender's raw UTF-8: Node reads the bytes as latin-1
          'ce-rawext': Buffer.from('café €', 'utf8').toString('latin1'),
          'Content-Type': 'application/json; charset=utf-8',
        },
        '{"x":1}',
      );
      const [event] = parseHttpMessage(headers, body).events;
      expect(event).toMatchObject({
        id: 'abc',
        subject: 'Euro €',
        extensions: { myext: 'quoted value', rawext: 'café €' },
        data: { x: 1 },
      });
    });

    test('a repeated ce- header: Node joins it in req.headers, req.headersDistinct shows it', async () => {
      const captured = await sendOverLoopback([
        ...Object.entries(BINARY_BASE),
        ['ce-myext', 'a'],
        ['ce-myext', 'b'],
      ] as Array<[string, string]>);
      expect(captured.headers['ce-myext']).toBe('a, b'); // indistinguishable from one value "a, b"
      const err = parseError(captured.headersDistinct, captured.body);
      expect(err.errors).toEqual(['ce-myext header is repeated: each attribute must be sent exactly once']);
    });
  });
});

describe('structured mode', () => {
  test('the Gherkin conformance scenario', () => {
    for (const contentType of ['application/cloudevents+json', 'application/cloudevents+json; charset=utf-8']) {
      const event = {
        specversion: '1.0',
        type: 'com.example.someevent',
        time: '2018-04-05T03:56:24Z',
        id: '1234-1234-1234',
        source: '/mycontext/subcontext',
        datacontenttype: 'application/json',
        data: { message: 'Hello World!' },
      };
      const { mode, events } = structured(event, contentType);
      expect(mode).toBe('structured');
      const { data, ...attributes } = event;
      expect(events).toEqual([{ ...attributes, data, extensions: {} }]);
    }
  });

  test('data: the JSON value as it is; a string is never parsed again', () => {
    expect(structured({ ...MINIMAL, data: '{"a":1}' }).events[0].data).toBe('{"a":1}');
    expect(structured({ ...MINIMAL, data: "I'm just a string" }).events[0].data).toBe("I'm just a string");
    expect(structured({ ...MINIMAL, datacontenttype: 'text/plain', data: 'text' }).events[0].data).toBe('text');
    expect(structured({ ...MINIMAL, data: null }).events[0].data).toBeNull(); // explicit null payload
    expect('data' in structured({ ...MINIMAL }).events[0]).toBe(false);
  });

  test('data_base64 → Buffer', () => {
    const [event] = structured({ ...MINIMAL, datacontenttype: 'application/octet-stream', data_base64: 'TWE=' }).events;
    expect(event.data).toEqual(Buffer.from([0x4d, 0x61]));
    expect(event.extensions).toEqual({});
  });

  test('extensions keep their JSON type', () => {
    const [event] = structured({ ...MINIMAL, extinteger: 10, extboolean: true, extstring: 'text' }).events;
    expect(event.extensions).toEqual({ extinteger: 10, extboolean: true, extstring: 'text' });
  });

  test('ce- headers next to a structured body are ignored: the body is authoritative', () => {
    const { events } = parse(
      { 'content-type': 'application/cloudevents+json', 'ce-id': 'from-header' },
      JSON.stringify(MINIMAL),
    );
    expect(events[0].id).toBe('minimal');
  });

  test.each([
    ['', 'the body is empty: a structured CloudEvent is one JSON object'],
    ['{"id": ', expect.stringMatching(/^the body is not valid JSON: /)],
    ['[]', 'the body must be a JSON object (one CloudEvent), got an array'],
    ['"string"', 'the body must be a JSON object (one CloudEvent), got a string'],
    ['null', 'the body must be a JSON object (one CloudEvent), got null'],
  ])('body %j → 400', (body, message) => {
    const err = parseError({ 'content-type': 'application/cloudevents+json' }, body);
    expect(err.status).toBe(400);
    expect(err.errors).toEqual([message]);
  });

  test('invalid UTF-8 body → 400', () => {
    const err = parseError({ 'content-type': 'application/cloudevents+json' }, Buffer.from([0x7b, 0xff, 0x7d]));
    expect(err.errors).toEqual(['the body is not valid UTF-8 (JSON must be UTF-8)']);
  });

  test('no defaults are invented', () => {
    expect(structuredError({ type: 't', source: '/s' }).errors).toEqual(['id is missing', 'specversion is missing']);
  });

  test('v0.3 → 400 unsupported specversion', () => {
    const err = structuredError({ specversion: '0.3', id: '1', source: '/s', type: 't' });
    expect(err.status).toBe(400);
    expect(err.errors).toEqual(['specversion "0.3": unsupported specversion, only "1.0" is supported']);
  });
});

describe('batch mode', () => {
  const BATCH = { 'content-type': 'application/cloudevents-batch+json' };

  test('[] is a valid, empty batch', () => {
    expect(parse(BATCH, '[]')).toEqual({ mode: 'batch', events: [] });
  });

  test('events keep their order; each has its own datacontenttype', () => {
    const { events } = parse(
      BATCH,
      JSON.stringify([
        { ...MINIMAL, id: 'a', data: { n: 1 } },
        { ...MINIMAL, id: 'b', datacontenttype: 'text/plain', data: 'x' },
      ]),
    );
    expect(events.map((e) => [e.id, e.data])).toEqual([
      ['a', { n: 1 }],
      ['b', 'x'],
    ]);
  });

  test('every element is validated, messages carry the index', () => {
    const err = parseError(
      BATCH,
      JSON.stringify([
        MINIMAL,
        MINIMAL,
        { ...MINIMAL, id: undefined, MyExt: 'x' },
        'not an object',
        { ...MINIMAL, time: 'noon' },
      ]),
    );
    expect(err.status).toBe(400);
    expect(err.errors).toEqual([
      'events[2]: id is missing',
      expect.stringMatching(/^events\[2\]: attribute name "MyExt" is invalid/),
      'events[3]: an event must be a JSON object, got a string',
      expect.stringMatching(/^events\[4\]: time "noon" is not an RFC 3339 timestamp/),
    ]);
  });

  test('all events must share one specversion', () => {
    const err = parseError(BATCH, JSON.stringify([MINIMAL, { ...MINIMAL, specversion: '0.9' }]));
    expect(err.errors).toEqual([
      'events[1]: specversion "0.9": unsupported specversion, only "1.0" is supported',
      'events[1]: specversion "0.9" differs from "1.0": all events in a batch must have the same specversion',
    ]);
  });

  test.each([
    ['', 'the body is empty: a batch is a JSON array of CloudEvents, [] when empty'],
    ['{}', 'the body must be a JSON array of CloudEvents, got an object'],
    ['[', expect.stringMatching(/^the body is not valid JSON: /)],
  ])('body %j → 400', (body, message) => {
    expect(parseError(BATCH, body).errors).toEqual([message]);
  });
});
