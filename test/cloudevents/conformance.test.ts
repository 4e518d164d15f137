/**
 * The public CloudEvents conformance data (test/fixtures/cloudevents-conformance, see test/fixtures/SOURCES.md and its
 * SOURCES.md) run through parseHttpMessage.
 *
 * format/json/*.json: every valid event is sent as a structured body, every valid batch as
 * a batch body, and compared with the "golden" sample the upstream format/README.md
 * describes in words (re-stated below in code, as that README asks). Timestamps are
 * compared as instants. Every invalid one must throw CloudEventError 400.
 *
 * Decisions:
 * - `sampleExtensionAttributes: true` tests are run, not skipped. We have no typed extension
 *   definitions, so the expected value is the untyped JSON view: `extbinary` stays the
 *   string "TWE=", `exttimestamp`/`exturi`/`exturiref` stay strings, `extinteger` and
 *   `extboolean` keep their JSON types. The test also checks the typed meaning is recoverable.
 * - `validSimpleTextData` uses id "simpleTextData" while the README says "simpleData"
 *   (upstream quirk): the golden here follows the test file.
 *
 * yaml/*.yaml: each document becomes an HTTP request the way the upstream `cloudevents invoke`
 * tool builds it (pkg/http: attribute values trimmed, empty ones left out; binary: ce-<name>
 * headers, datacontenttype as Content-Type, TransportExtensions as plain headers, Data raw as
 * the body; structured: attributes and extensions as top-level JSON strings, Data inserted as
 * raw JSON under "data", Content-Type application/cloudevents+json; charset=UTF-8).
 * Every document is also sent in the other mode; for structured mode with a non-JSON
 * datacontenttype (where the tool itself would fail to embed the text as raw JSON) the data
 * goes in as a JSON string, as the JSON format prescribes.
 */
import fs from 'node:fs';
import path from 'node:path';
import { FAILSAFE_SCHEMA, loadAll } from 'js-yaml';
import { CloudEventError } from '../../functions/runtime/cloudevents/errors';
import type { CloudEvent } from '../../functions/runtime/cloudevents/event';
import { encodeBinary } from '../../functions/runtime/cloudevents/http-encode';
import { parseHttpMessage } from '../../functions/runtime/cloudevents/http-parse';
import { errorOf } from './helpers';
import { sendOverLoopback } from './loopback';

const ROOT = path.resolve(__dirname, '../fixtures/cloudevents-conformance');
const STRUCTURED = { 'content-type': 'application/cloudevents+json; charset=utf-8' };
const BATCH = { 'content-type': 'application/cloudevents-batch+json' };

// ---------------------------------------------------------------------------------------
// Golden samples (format/README.md)

const minimal: CloudEvent = {
  specversion: '1.0',
  id: 'minimal',
  type: 'io.cloudevents.test',
  source: 'https://cloudevents.io',
  extensions: {},
};
const GOLDEN_EVENTS: Record<string, CloudEvent> = {
  minimal,
  minimalWithTime: { ...minimal, id: 'minimalWithTime', time: '2018-04-05T17:31:00Z' },
  minimalWithRelativeSource: { ...minimal, id: 'minimalWithRelativeSource', source: '#fragment' },
  allCore: {
    ...minimal,
    id: 'allCore',
    datacontenttype: 'text/plain',
    dataschema: 'https://cloudevents.io/dataschema',
    subject: 'tests',
    time: '2018-04-05T17:31:00Z',
  },
  simpleTextData: { ...minimal, id: 'simpleTextData', datacontenttype: 'text/plain', data: 'Simple text' },
  allExtensionTypes: {
    ...minimal,
    id: 'allExtensionTypes',
    extensions: {
      extinteger: 10,
      extboolean: true,
      extstring: 'text',
      extbinary: 'TWE=',
      exttimestamp: '2023-03-31T15:12:00Z',
      exturi: 'https://cloudevents.io',
      exturiref: '//authority/path',
    },
  },
};
const GOLDEN_BATCHES: Record<string, CloudEvent[]> = {
  empty: [],
  minimal: [minimal],
  minimal2: [minimal, minimal],
  minimalAndAllCore: [minimal, GOLDEN_EVENTS.allCore],
  minimalAndAllExtensionTypes: [minimal, GOLDEN_EVENTS.allExtensionTypes],
};

/** Compare timestamps as instants (README: offsets and precision are not relevant). */
function comparable(event: CloudEvent): unknown {
  return event.time === undefined ? event : { ...event, time: Date.parse(event.time) };
}

// ---------------------------------------------------------------------------------------
// format/json

interface FormatTest {
  id: string;
  testType?: string;
  sampleId?: string;
  event?: unknown;
  batch?: unknown[];
  sampleExtensionAttributes?: boolean;
  extensionConstraints?: boolean;
}

function loadFormatTests(file: string): Array<[string, FormatTest & { testType: string }]> {
  const suite = JSON.parse(fs.readFileSync(path.join(ROOT, 'format/json', file), 'utf8')) as {
    testType: string;
    tests: FormatTest[];
  };
  return suite.tests.map((t) => [t.id, { ...t, testType: t.testType ?? suite.testType }]);
}

const FORMAT_FILES = ['valid-events.json', 'invalid-events.json', 'valid-batches.json', 'invalid-batches.json'];
const ALL_FORMAT_TESTS = FORMAT_FILES.flatMap(loadFormatTests);

function send(t: FormatTest & { testType: string }) {
  const isBatch = t.testType.endsWith('Batch');
  return parseHttpMessage(
    isBatch ? BATCH : STRUCTURED,
    Buffer.from(JSON.stringify(isBatch ? t.batch : t.event), 'utf8'),
  );
}

describe('format/json conformance', () => {
  test('all four files are loaded (10 + 25 + 5 + 3 tests)', () => {
    expect(ALL_FORMAT_TESTS).toHaveLength(43);
    expect(ALL_FORMAT_TESTS.every(([, t]) => !t.extensionConstraints)).toBe(true); // none needs constraints
  });

  const valid = ALL_FORMAT_TESTS.filter(([, t]) => t.testType.startsWith('Valid'));
  const invalid = ALL_FORMAT_TESTS.filter(([, t]) => t.testType.startsWith('Invalid'));

  test.each(valid)('%s parses and equals its golden sample', (_id, t) => {
    const { mode, events } = send(t);
    if (t.testType === 'ValidBatch') {
      expect(mode).toBe('batch');
      expect(events.map(comparable)).toEqual(GOLDEN_BATCHES[t.sampleId!].map(comparable));
    } else {
      expect(mode).toBe('structured');
      expect(events.map(comparable)).toEqual([comparable(GOLDEN_EVENTS[t.sampleId!])]);
      // ...and survives re-encoding to binary mode.
      const { headers, body } = encodeBinary(events[0]);
      const back = parseHttpMessage(headers, body).events[0];
      expect(back.id).toBe(events[0].id);
      expect(back.time).toBe(events[0].time);
      expect(back.data).toEqual(events[0].data);
    }
  });

  test.each(invalid)('%s is rejected with 400', (_id, t) => {
    const err = errorOf(() => send(t));
    expect(err).toBeInstanceOf(CloudEventError);
    expect(err.status).toBe(400);
    expect(err.errors.length).toBeGreaterThan(0);
  });

  test('the untyped extension values still carry the typed sample values', () => {
    const t = ALL_FORMAT_TESTS.find(([id]) => id === 'validAllExtensionTypes')![1];
    const { extensions } = send(t).events[0];
    expect(Buffer.from(extensions.extbinary as string, 'base64')).toEqual(Buffer.from([77, 97]));
    expect(Date.parse(extensions.exttimestamp as string)).toBe(Date.UTC(2023, 2, 31, 15, 12));
  });

  test('invalid cases are rejected for the reason their id names', () => {
    const reasons: Record<string, RegExp> = {
      invalidNoSpecVersion: /^specversion is missing$/,
      invalidNoId: /^id is missing$/,
      invalidNoType: /^type is missing$/,
      invalidNoSource: /^source is missing$/,
      invalidTimeGarbage: /^time "lunchtime" is not an RFC 3339/,
      invalidTimeToMinute: /^time .* is not an RFC 3339/,
      invalidTimeOffsetX: /^time .* is not an RFC 3339/,
      invalidTimeOffsetOutOfRange: /^time .* is not an RFC 3339/,
      invalidTimeOffsetNonInteger: /^time .* is not an RFC 3339/,
      invalidTimeOffsetHourOnly: /^time .* is not an RFC 3339/,
      invalidEmptyId: /^id must not be empty$/,
      invalidEmptyType: /^type must not be empty$/,
      invalidEmptySource: /^source must not be empty$/,
      invalidEmptySpecVersion: /^specversion must not be empty$/,
      invalidUnknownSpecVersion: /^specversion "0.9": unsupported specversion/,
      invalidNonRfc2046DataContentType: /^datacontenttype "xyz" is not a valid RFC 2046 media type/,
      invalidEmptyDataContentType: /^datacontenttype must not be empty$/,
      invalidEmptyDataSchema: /^dataschema must not be empty$/,
      invalidEmptySubject: /^subject must not be empty$/,
      invalidNumericId: /^id must be a JSON string, got the number 25$/,
      invalidObjectId: /^id must be a JSON string, got an object$/,
      invalidCapitalizedExtension: /^attribute name "MyExtension" is invalid/,
      invalidPunctuatedExtension: /^attribute name "my.extension" is invalid/,
      invalidNonIntegerExtensionValue: /^attribute name "my.extension" is invalid/, // upstream also breaks the name rule
      invalidBothDataAndDataBase64: /^data and data_base64 are both present/,
      invalidBatchMixedSpecVersions: /^events\[1\]: specversion "0.9"/,
      invalidBatchContainingInvalidCloudEvent: /^events\[0\]: id is missing$/,
      invalidBatchContainingNonObject: /^events\[0\]: an event must be a JSON object, got a string$/,
    };
    for (const [id, t] of invalid) {
      expect([id, errorOf(() => send(t)).errors[0]]).toEqual([id, expect.stringMatching(reasons[id])]);
    }
    expect(Object.keys(reasons).sort()).toEqual(invalid.map(([id]) => id).sort());
  });
});

// ---------------------------------------------------------------------------------------
// yaml (the `cloudevents invoke` tool's HTTP cases)

interface YamlEvent {
  Mode?: string;
  ContextAttributes: Record<string, string> & { Extensions?: Record<string, string> };
  TransportExtensions?: Record<string, string>;
  Data?: string;
}

function loadYaml(file: string): YamlEvent[] {
  // FAILSAFE: every scalar stays a string, as in the Go tool (so `specversion: 1.0` is "1.0").
  return loadAll(fs.readFileSync(path.join(ROOT, 'yaml', file), 'utf8'), { schema: FAILSAFE_SCHEMA }) as YamlEvent[];
}

function attributesOf(doc: YamlEvent): Array<[string, string]> {
  const { Extensions = {}, ...core } = doc.ContextAttributes;
  return [...Object.entries(core), ...Object.entries(Extensions)]
    .map(([name, value]): [string, string] => [name, value.trim()])
    .filter(([, value]) => value !== '');
}

function toBinaryRequest(doc: YamlEvent): { headers: Record<string, string>; body: Buffer } {
  const headers: Record<string, string> = {};
  for (const [name, value] of attributesOf(doc))
    headers[name === 'datacontenttype' ? 'content-type' : `ce-${name}`] = value;
  for (const [name, value] of Object.entries(doc.TransportExtensions ?? {})) headers[name] = value.trim();
  return { headers, body: Buffer.from(doc.Data ?? '', 'utf8') };
}

function toStructuredRequest(doc: YamlEvent): { headers: Record<string, string>; body: Buffer } {
  const envelope: Record<string, unknown> = Object.fromEntries(attributesOf(doc));
  const contentType = doc.ContextAttributes.datacontenttype;
  if (doc.Data)
    envelope.data = contentType === undefined || /json/i.test(contentType) ? JSON.parse(doc.Data) : doc.Data;
  const headers: Record<string, string> = { 'content-type': 'application/cloudevents+json; charset=UTF-8' };
  for (const [name, value] of Object.entries(doc.TransportExtensions ?? {})) headers[name] = value.trim();
  return { headers, body: Buffer.from(JSON.stringify(envelope), 'utf8') };
}

const V1_MINIMUM_DATA: unknown[] = [
  'Hello, World!\n',
  'Hello, 🌎!\n',
  'Hello, 🌎!',
  { msg: 'Hello, 🌎!' },
  ['Hello', '🌎!'],
  '<msg>Hello, 🌎!</msg>\n',
];

describe('yaml/v1.0/v1_minimum.yaml', () => {
  const docs = loadYaml('v1.0/v1_minimum.yaml');

  test('six documents', () => expect(docs).toHaveLength(6));

  test.each(docs.map((doc, i) => [doc.ContextAttributes.id, doc, i] as const))(
    "%s: binary (the file's mode)",
    async (_id, doc, i) => {
      const { headers, body } = toBinaryRequest(doc);
      const expected: CloudEvent = {
        specversion: '1.0',
        type: 'io.cloudevents.minimum',
        id: doc.ContextAttributes.id,
        source: '//github.com/cloudevents/cloudeventsconformance/yaml/v1.yaml',
        datacontenttype: doc.ContextAttributes.datacontenttype,
        data: V1_MINIMUM_DATA[i],
        extensions: {},
      };
      expect(parseHttpMessage(headers, body)).toEqual({ mode: 'binary', events: [expected] });
      const captured = await sendOverLoopback(headers, body);
      expect(parseHttpMessage(captured.headers, captured.body).events).toEqual([expected]);
    },
  );

  test.each(docs.map((doc, i) => [doc.ContextAttributes.id, doc, i] as const))('%s: structured', (_id, doc, i) => {
    const { headers, body } = toStructuredRequest(doc);
    const [event] = parseHttpMessage(headers, body).events;
    // JSON data arrives without the trailing newline of the YAML block; text keeps it.
    expect(event.data).toEqual(V1_MINIMUM_DATA[i]);
    expect(event.datacontenttype).toBe(doc.ContextAttributes.datacontenttype);
  });
});

describe('yaml/v1.yaml', () => {
  const docs = loadYaml('v1.yaml');
  const attributes = {
    specversion: '1.0',
    type: 'com.example.someevent',
    time: '2018-04-05T03:56:24Z',
    id: '4321-4321-4321',
    source: '/mycontext/subcontext',
    extensions: { comexampleextension1: 'value', comexampleextension2: '{"othervalue": 5}' },
  } as const;

  test('one binary and one structured document', () => {
    expect(docs.map((d) => d.Mode)).toEqual(['binary', 'structured']);
  });

  test('binary: raw quotes and spaces in an extension header; no Content-Type, so data is the bytes', async () => {
    const { headers, body } = toBinaryRequest(docs[0]);
    expect(headers['ce-comexampleextension2']).toBe('{"othervalue": 5}');
    for (const message of [{ headers, body }, await sendOverLoopback(headers, body)]) {
      const { mode, events } = parseHttpMessage(message.headers, message.body);
      expect(mode).toBe('binary');
      expect(events).toEqual([
        { ...attributes, extensions: { ...attributes.extensions }, data: Buffer.from('{"world":"hello"}\n') },
      ]);
    }
  });

  test('structured: data is the JSON value (datacontenttype absent means JSON)', async () => {
    const { headers, body } = toStructuredRequest(docs[1]);
    for (const message of [{ headers, body }, await sendOverLoopback(headers, body)]) {
      const { mode, events } = parseHttpMessage(message.headers, message.body);
      expect(mode).toBe('structured');
      expect(events).toEqual([{ ...attributes, extensions: { ...attributes.extensions }, data: { world: 'hello' } }]);
    }
  });

  test('each document in the other mode too', () => {
    expect(
      parseHttpMessage(...(Object.values(toStructuredRequest(docs[0])) as [Record<string, string>, Buffer])).events[0]
        .data,
    ).toEqual({ world: 'hello' });
    expect(
      parseHttpMessage(...(Object.values(toBinaryRequest(docs[1])) as [Record<string, string>, Buffer])).events[0]
        .extensions,
    ).toEqual(attributes.extensions);
  });
});

describe('yaml v0.3 files: rejected with 400 unsupported specversion', () => {
  const docs = [...loadYaml('v0.3/v03_minimum.yaml'), ...loadYaml('v03.yaml')];

  test('seven v0.3 documents', () => {
    expect(docs).toHaveLength(7);
    expect(docs.every((doc) => doc.ContextAttributes.specversion === '0.3')).toBe(true);
  });

  test.each(docs.map((doc, i) => [i, doc] as const))('document %i, binary and structured', (_i, doc) => {
    for (const { headers, body } of [toBinaryRequest(doc), toStructuredRequest(doc)]) {
      const err = errorOf(() => parseHttpMessage(headers, body));
      expect(err.status).toBe(400);
      expect(err.errors).toEqual([
        expect.stringMatching(/specversion( header)? "0\.3": unsupported specversion, only "1\.0" is supported$/),
      ]);
    }
  });
});
