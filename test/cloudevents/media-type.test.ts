import {
  essenceOf,
  isJson,
  isText,
  isUtf8Charset,
  parseMediaType,
} from '../../functions/runtime/cloudevents/media-type';

describe('parseMediaType', () => {
  test.each([
    ['application/json', 'application/json', {}],
    ['Application/JSON', 'application/json', {}],
    ['application/json; charset=utf-8', 'application/json', { charset: 'utf-8' }],
    ['application/json;charset=UTF-8', 'application/json', { charset: 'UTF-8' }],
    ['application/json ;  CharSet = utf-8 ', 'application/json', { charset: 'utf-8' }],
    ['text/plain;', 'text/plain', {}],
    ['text/plain; ; format=flowed', 'text/plain', { format: 'flowed' }],
    ['text/plain; title="a \\"b\\" ; c"', 'text/plain', { title: 'a "b" ; c' }],
    ['application/vnd.example+json; v=1; charset=utf-8', 'application/vnd.example+json', { v: '1', charset: 'utf-8' }],
    ['application/cloudevents+json; charset=UTF-8', 'application/cloudevents+json', { charset: 'UTF-8' }],
  ])('%j → %s %j', (input, essence, params) => {
    const mediaType = parseMediaType(input);
    expect(mediaType).toBeDefined();
    expect(essenceOf(mediaType!)).toBe(essence);
    expect(Object.fromEntries(mediaType!.params)).toEqual(params);
  });

  test.each([
    ['xyz'],
    [''],
    ['text/'],
    ['/plain'],
    ['text / plain'],
    ['text/plain; charset'],
    ['text/plain; charset='],
    ['text/plain; charset="unterminated'],
    ['text/plain; a=1; A=2'],
    ['text/plain x'],
    ['text/pl@in'],
    ['text/plain\r\nx: y'],
    [`text/plain; a="${'x'.repeat(5000)}"`],
  ])('rejects %j', (input) => {
    expect(parseMediaType(input)).toBeUndefined();
  });

  test('isJson: */json and */*+json, case-insensitively', () => {
    for (const json of [
      'application/json',
      'APPLICATION/JSON;charset=utf-8',
      'text/json',
      'application/vnd.foo+json',
      'application/cloudevents+JSON',
    ]) {
      expect(isJson(parseMediaType(json)!)).toBe(true);
    }
    for (const other of [
      'text/plain',
      'application/jsonx',
      'application/json-seq',
      'application/octet-stream',
      'application/xml',
    ]) {
      expect(isJson(parseMediaType(other)!)).toBe(false);
    }
  });

  test('isText: text/* or a charset parameter', () => {
    expect(isText(parseMediaType('text/plain')!)).toBe(true);
    expect(isText(parseMediaType('TEXT/csv')!)).toBe(true);
    expect(isText(parseMediaType('application/xml; charset=utf-8')!)).toBe(true);
    expect(isText(parseMediaType('application/xml')!)).toBe(false);
    expect(isText(parseMediaType('application/octet-stream')!)).toBe(false);
  });

  test('isUtf8Charset: absent, utf-8 or us-ascii in any case', () => {
    expect(isUtf8Charset(parseMediaType('text/plain')!)).toBe(true);
    expect(isUtf8Charset(parseMediaType('text/plain; charset=UTF-8')!)).toBe(true);
    expect(isUtf8Charset(parseMediaType('text/plain; charset="us-ascii"')!)).toBe(true);
    expect(isUtf8Charset(parseMediaType('text/plain; charset=iso-8859-1')!)).toBe(false);
  });
});
