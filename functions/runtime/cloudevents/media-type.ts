/**
 * Media types (RFC 9110 §8.3.1, RFC 2046): `type/subtype *( OWS ";" OWS [ name=value ] )`.
 *
 * Type, subtype and parameter names are case-insensitive and come back lower-cased.
 * Parameter values keep their case (a quoted-string value is unescaped). Spacing is
 * tolerated around `;` and `=`, and empty parameters (`text/plain;`) are allowed, as in
 * RFC 9110. Anything else (no subtype, a bad character, a parameter without a value, the
 * same parameter twice, more than 4096 characters) makes the value invalid.
 */

export interface MediaType {
  /** lower-cased, e.g. `application` */
  readonly type: string;
  /** lower-cased, e.g. `cloudevents+json` */
  readonly subtype: string;
  /** lower-cased parameter name → value as sent (unquoted) */
  readonly params: ReadonlyMap<string, string>;
}

// Sticky regexes: each call resets lastIndex before use, and JS runs one call at a time.
const TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]+";
const ESSENCE = new RegExp(`[ \\t]*(${TOKEN})/(${TOKEN})`, 'y');
const PARAMETER = new RegExp(
  `[ \\t]*;[ \\t]*(?:(${TOKEN})[ \\t]*=[ \\t]*(?:(${TOKEN})|"((?:[\\t \\x21\\x23-\\x5B\\x5D-\\x7E\\x80-\\xFF]|\\\\[\\t \\x21-\\x7E\\x80-\\xFF])*)"))?`,
  'y',
);
/** Far beyond any real media type (RFC 6838 caps names at 127 characters); bounds the regex work. */
const MAX_LENGTH = 4096;
const TRAILING_SPACE = /[ \t]*$/y;
const QUOTED_PAIR = /\\(.)/g;

/** Parse a media type; `undefined` when the value is not a valid media type. */
export function parseMediaType(value: string): MediaType | undefined {
  if (value.length > MAX_LENGTH) return undefined;
  ESSENCE.lastIndex = 0;
  const essence = ESSENCE.exec(value);
  if (essence === null) return undefined;
  const params = new Map<string, string>();
  let at = ESSENCE.lastIndex;
  while (at < value.length) {
    PARAMETER.lastIndex = at;
    const param = PARAMETER.exec(value);
    if (param === null) break;
    at = PARAMETER.lastIndex;
    if (param[1] === undefined) continue; // empty parameter, e.g. a trailing ";"
    const name = param[1].toLowerCase();
    if (params.has(name)) return undefined; // ambiguous
    params.set(name, param[2] ?? param[3].replace(QUOTED_PAIR, '$1'));
  }
  TRAILING_SPACE.lastIndex = at;
  TRAILING_SPACE.exec(value);
  if (TRAILING_SPACE.lastIndex !== value.length) return undefined;
  return { type: essence[1].toLowerCase(), subtype: essence[2].toLowerCase(), params };
}

/** `type/subtype`, lower-cased. */
export function essenceOf(mediaType: MediaType): string {
  return `${mediaType.type}/${mediaType.subtype}`;
}

/** JSON media types: any `…/json` or `…/…+json` (JSON event format §3.1). */
export function isJson(mediaType: MediaType): boolean {
  return mediaType.subtype === 'json' || mediaType.subtype.endsWith('+json');
}

/**
 * Text we turn into a string: every `text/*` type, and any type that declares a `charset`
 * (the parameter only makes sense for text, e.g. `application/xml; charset=utf-8`).
 */
export function isText(mediaType: MediaType): boolean {
  return mediaType.type === 'text' || mediaType.params.has('charset');
}

/**
 * Whether the body is UTF-8 (so JS can read it losslessly): no charset, or one of
 * UTF-8 and its subset US-ASCII, under any of their usual labels.
 */
export function isUtf8Charset(mediaType: MediaType): boolean {
  const charset = mediaType.params.get('charset');
  return charset === undefined || UTF8_LABELS.has(charset.toLowerCase());
}

const UTF8_LABELS: ReadonlySet<string> = new Set(['utf-8', 'utf8', 'us-ascii', 'ascii']);
