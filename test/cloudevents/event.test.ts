import {
  isAbsoluteUri,
  isRfc3339,
  isUriReference,
  isValidAttributeName,
} from '../../functions/runtime/cloudevents/attributes';
import { isBase64, validateEvent } from '../../functions/runtime/cloudevents/json-format';
import { MINIMAL } from './helpers';

describe('isRfc3339', () => {
  test.each([
    '2018-04-05T17:31:00Z',
    '2018-04-05T17:31:00.000000000Z',
    '2018-04-05T18:31:00+01:00',
    '2018-04-05T16:31:00-01:00',
    '2018-04-05t17:31:00z',
    '2024-02-29T00:00:00Z',
    '2000-02-29T23:59:59.5+23:59',
    '2016-12-31T23:59:60Z', // leap second
    '2017-01-01T00:59:60+01:00', // the same leap second with an offset
  ])('accepts %s', (value) => expect(isRfc3339(value)).toBe(true));

  test.each([
    'lunchtime',
    '',
    '2018-04-05T18:31Z', // no seconds
    '2018-04-05T18:31:00X',
    '2018-04-05T18:31:00+25:00',
    '2018-04-05T18:31:00+xx:00',
    '2018-04-05T18:31:00+05',
    '2018-04-05T18:31:00+05:60',
    '2018-04-05T18:31:00', // no offset
    '2018-04-05 18:31:00Z', // space instead of T
    '2018-13-05T18:31:00Z',
    '2018-00-05T18:31:00Z',
    '2018-02-29T00:00:00Z', // not a leap year
    '1900-02-29T00:00:00Z',
    '2018-04-31T00:00:00Z',
    '2018-04-05T24:00:00Z',
    '2018-04-05T23:60:00Z',
    '2018-04-05T12:00:60Z', // leap second not at the end of a UTC day
    '2018-04-05T12:00:00.Z',
    '2018-4-05T12:00:00Z',
    '２018-04-05T12:00:00Z', // non-ASCII digit
  ])('rejects %j', (value) => expect(isRfc3339(value)).toBe(false));
});

describe('URI checks', () => {
  test.each([
    'https://cloudevents.io',
    '/mycontext/subcontext',
    '#fragment',
    '//authority/path',
    'urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66',
    '/apis/v1/namespaces/default/pingsources/x',
    'https://10.96.0.1:443',
    'relative/path?q=a%20b',
    'a/b:c', // colon after the first slash
  ])('URI-reference %s', (value) => expect(isUriReference(value)).toBe(true));

  test.each([
    'a b',
    'bad%zz',
    'bad%4',
    'end%',
    'x#y#z',
    '1abc:def',
    ':nothing',
    'é',
    'a\\b',
    'a<b>',
    'tab\t',
    'a"b',
    'a{b}',
    'a|b',
    'a^b',
  ])('not a URI-reference %j', (value) => expect(isUriReference(value)).toBe(false));

  test('megabyte values without a stack overflow', () => {
    expect(isUriReference(`https://example.com/${'a%41'.repeat(4_000_000)}`)).toBe(true);
    expect(isUriReference(`${'a'.repeat(16_000_000)} `)).toBe(false);
  });

  test('absolute URI needs a scheme', () => {
    expect(isAbsoluteUri('https://cloudevents.io/dataschema')).toBe(true);
    expect(isAbsoluteUri('urn:example:schema')).toBe(true);
    expect(isAbsoluteUri('/relative')).toBe(false);
    expect(isAbsoluteUri('//authority/path')).toBe(false);
    expect(isAbsoluteUri('')).toBe(false);
  });
});

describe('isBase64', () => {
  test.each(['', 'TWE=', 'TWFu', 'TQ==', 'eyAieHl6IjogMTIzIH0=', 'ab+/'])('accepts %j', (value) =>
    expect(isBase64(value)).toBe(true),
  );
  test.each(['TWE', 'TQ=', 'T===', '=TWE', 'TW=E', 'TWE=TWE=', 'TW E', 'TWE=\n', 'ab-_', 'ÄÄÄÄ'])(
    'rejects %j',
    (value) => expect(isBase64(value)).toBe(false),
  );
  // A regex over megabytes overflows its stack; the loop must not. (Speed is not a test's business.)
  test('megabytes without a stack overflow', () => {
    const big = Buffer.alloc(8 * 1024 * 1024, 7).toString('base64');
    expect(isBase64(big)).toBe(true);
    expect(isBase64(big.slice(0, -4) + 'A=A=')).toBe(false);
  });
});

describe('isValidAttributeName', () => {
  test.each(['id', 'myext', 'ext1', '1ext', 'averyveryverylongextensionnamepastthirty'])('%s is valid', (name) =>
    expect(isValidAttributeName(name)).toBe(true),
  );
  test.each(['', 'MyExt', 'my.ext', 'my-ext', 'my_ext', 'data', 'ümlaut'])('%j is invalid', (name) =>
    expect(isValidAttributeName(name)).toBe(false),
  );
});

describe('validateEvent (JSON format)', () => {
  test('minimal event is valid', () => {
    expect(validateEvent({ ...MINIMAL })).toEqual([]);
  });

  test('not an object', () => {
    expect(validateEvent([])).toEqual(['an event must be a JSON object, got an array']);
    expect(validateEvent('x')).toEqual(['an event must be a JSON object, got a string']);
    expect(validateEvent(null)).toEqual(['an event must be a JSON object, got null']);
  });

  test('every missing required attribute is listed; null means unset; no defaults', () => {
    expect(validateEvent({})).toEqual([
      'id is missing',
      'source is missing',
      'specversion is missing',
      'type is missing',
    ]);
    expect(validateEvent({ ...MINIMAL, id: null })).toEqual(['id is missing']);
  });

  test('optional attributes set to null are unset', () => {
    expect(
      validateEvent({ ...MINIMAL, subject: null, time: null, dataschema: null, datacontenttype: null, myext: null }),
    ).toEqual([]);
  });

  test.each([
    [{ id: '' }, 'id must not be empty'],
    [{ type: '' }, 'type must not be empty'],
    [{ source: '' }, 'source must not be empty'],
    [{ specversion: '' }, 'specversion must not be empty'],
    [{ subject: '' }, 'subject must not be empty'],
    [{ dataschema: '' }, 'dataschema must not be empty'],
    [{ datacontenttype: '' }, 'datacontenttype must not be empty'],
    [{ id: 25 }, 'id must be a JSON string, got the number 25'],
    [{ id: { xyz: 'abc' } }, 'id must be a JSON string, got an object'],
    [{ specversion: 1.0 }, 'specversion must be a JSON string, got the number 1'],
    [{ time: 'lunchtime' }, 'time "lunchtime" is not an RFC 3339 timestamp'],
    [{ time: '2018-04-05T18:31:00+25:00' }, 'time "2018-04-05T18:31:00+25:00" is not an RFC 3339 timestamp'],
    [{ datacontenttype: 'xyz' }, 'datacontenttype "xyz" is not a valid RFC 2046 media type'],
    [{ dataschema: '/relative' }, 'dataschema "/relative" is not an absolute URI'],
    [{ source: 'not a uri' }, 'source "not a uri" is not a valid URI-reference'],
    [{ subject: 'line\nbreak' }, 'subject contains the forbidden character U+000A at index 4'],
    [{ type: 'a\u0085b' }, 'type contains the forbidden character U+0085'],
    [{ id: 'lone\ud800' }, 'id contains the forbidden character U+D800'],
    [{ id: 'non\ufffe' }, 'id contains the forbidden character U+FFFE'],
    [{ id: 'non\ufdd0' }, 'id contains the forbidden character U+FDD0'],
    [{ id: 'plane1 \u{1FFFE}' }, 'id contains the forbidden character U+1FFFE at index 7'],
    [{ id: 'plane16 \u{10FFFF}' }, 'id contains the forbidden character U+10FFFF'],
    [{ id: 'lone low \udc00 x' }, 'id contains the forbidden character U+DC00 at index 9'],
    [{ id: 'reversed \udc00\ud800' }, 'id contains the forbidden character U+DC00'],
    [
      { MyExtension: 'bad' },
      'attribute name "MyExtension" is invalid: names must be lower-case letters a-z and digits 0-9 only',
    ],
    [{ 'my.extension': 'bad' }, 'attribute name "my.extension" is invalid'],
    [{ '': 'bad' }, 'attribute name "" is invalid'],
    [{ ext: 1.5 }, 'extension ext must be an integer from -2147483648 to 2147483647, got 1.5'],
    [{ ext: 2147483648 }, 'extension ext must be an integer'],
    [{ ext: -2147483649 }, 'extension ext must be an integer'],
    [{ ext: { a: 1 } }, 'extension ext must be a string, boolean or integer, got an object'],
    [{ ext: [1] }, 'extension ext must be a string, boolean or integer, got an array'],
    [{ ext: 'bell\u0007' }, 'extension ext contains the forbidden character U+0007'],
    [{ data: 'text', data_base64: 'eA==' }, 'data and data_base64 are both present: send exactly one of them'],
    [{ data_base64: 'not base64!' }, 'data_base64 is not valid base64'],
    [{ data_base64: 'eA' }, 'data_base64 is not valid base64'],
    [{ data_base64: 5 }, 'data_base64 must be a JSON string, got the number 5'],
    [
      { datacontenttype: 'text/plain', data: { a: 1 } },
      'data must be a JSON string when datacontenttype "text/plain" is not JSON',
    ],
  ])('%j → %s', (patch, message) => {
    const errors = validateEvent({ ...MINIMAL, ...patch });
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain(message);
  });

  test('non-ASCII text, emoji and other supplementary characters are fine', () => {
    expect(validateEvent({ ...MINIMAL, subject: 'Euro € 😀 \u{1FFFD} \u{10FFFD} ünï\u00A0' })).toEqual([]);
  });

  test('valid extension values and names', () => {
    expect(
      validateEvent({
        ...MINIMAL,
        extstring: 'text',
        extempty: '',
        extboolean: false,
        extinteger: -2147483648,
        extmax: 2147483647,
        extfloatinteger: 10.0,
        averyveryverylongextensionnamepastthirty: 'names over 20 characters are only a SHOULD NOT',
      }),
    ).toEqual([]);
  });

  test('data of any JSON type with a JSON or absent datacontenttype', () => {
    for (const data of [{ a: 1 }, [1], 1, 'string', true, null]) {
      expect(validateEvent({ ...MINIMAL, data })).toEqual([]);
      expect(validateEvent({ ...MINIMAL, datacontenttype: 'application/vnd.x+json', data })).toEqual([]);
    }
    expect(validateEvent({ ...MINIMAL, datacontenttype: 'text/xml', data: '<a/>' })).toEqual([]);
    expect(validateEvent({ ...MINIMAL, data_base64: null, data: 1 })).toEqual([]);
  });

  test('an unsupported specversion is reported alone: the other rules are 1.0 rules', () => {
    expect(validateEvent({ specversion: '0.3', id: 'x', schemaurl: 'u', datacontentencoding: 'base64' })).toEqual([
      'specversion "0.3": unsupported specversion, only "1.0" is supported',
    ]);
  });

  test('all problems are reported together', () => {
    expect(validateEvent({ specversion: '1.0', id: '', time: 'noon', MyExt: 1, ext: 1.5 })).toEqual([
      'source is missing',
      'type is missing',
      'id must not be empty',
      expect.stringContaining('time "noon"'),
      expect.stringContaining('attribute name "MyExt"'),
      expect.stringContaining('extension ext must be an integer'),
    ]);
  });
});
