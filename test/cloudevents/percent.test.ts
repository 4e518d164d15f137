import { decodeHeaderValue, encodeHeaderValue, HeaderValueError } from '../../functions/runtime/cloudevents/percent';

/** What Node's HTTP server hands over for raw bytes: each byte as one latin-1 character. */
const asNodeReadsIt = (text: string) => Buffer.from(text, 'utf8').toString('latin1');

describe('decodeHeaderValue', () => {
  test.each([
    ['plain', 'plain'],
    ['with space and "quotes" stays', 'with space and "quotes" stays'],
    ['Euro%20%E2%82%AC%20%F0%9F%98%80', 'Euro € 😀'],
    ['lower%20hex%e2%82%ac', 'lower hex€'],
    ['needless%41%42', 'needlessAB'],
    ['%25', '%'],
    ['%2541', '%41'], // exactly one round
    ['"hello world"', 'hello world'],
    ['"a \\"quoted\\" \\\\ value"', 'a "quoted" \\ value'],
    ['"%20"', ' '], // unquote first, then percent-decode
    ['""', ''],
    ['"', '"'], // a lone quote is not a quoted-string
    ['{"othervalue": 5}', '{"othervalue": 5}'],
    [asNodeReadsIt('raw €uro'), 'raw €uro'], // a sender that did not percent-encode
  ])('%j → %j', (input, expected) => {
    expect(decodeHeaderValue(input)).toBe(expected);
  });

  test.each([
    ['%C0%A0', /not valid UTF-8/], // overlong space: the spec's example
    ['%ED%A0%80', /not valid UTF-8/], // encoded surrogate
    ['%E2%82', /not valid UTF-8/], // truncated sequence
    ['%FF', /not valid UTF-8/],
    [Buffer.from([0xc0, 0xa0]).toString('latin1'), /not valid UTF-8/], // raw bad bytes
    ['100%', /two hex digits/],
    ['%4', /two hex digits/],
    ['%zz', /two hex digits/],
    ['"a"b"', /unescaped/],
    ['"ends with \\"', /lone backslash/],
    ['wide €', /U\+20AC/],
  ])('rejects %j', (input, message) => {
    expect(() => decodeHeaderValue(input)).toThrow(HeaderValueError);
    expect(() => decodeHeaderValue(input)).toThrow(message);
  });
});

describe('encodeHeaderValue', () => {
  test.each([
    ['plain-value_1.0:/?#', 'plain-value_1.0:/?#'],
    ['Euro € 😀', 'Euro%20%E2%82%AC%20%F0%9F%98%80'],
    ['say "hi" 100%', 'say%20%22hi%22%20100%25'],
    ['tab\there\nnewline\u007f', 'tab%09here%0Anewline%7F'],
    ['', ''],
  ])('%j → %j', (input, expected) => {
    expect(encodeHeaderValue(input)).toBe(expected);
  });

  test('output is printable ASCII without space, " or a bare %, and decodes back', () => {
    const samples = ['a b', '"', '%', '\u0000\u001f', 'ünïcödé', '🌎', 'x'.repeat(300), 'mixed %41 "q" €'];
    for (const sample of samples) {
      const encoded = encodeHeaderValue(sample);
      expect(encoded).toMatch(/^(?:[\x21\x23\x24\x26-\x7E]|%[0-9A-F]{2})*$/);
      expect(decodeHeaderValue(encoded)).toBe(sample);
    }
  });
});
