/**
 * The context attribute rules of CloudEvents 1.0, shared by both ways an event arrives:
 * typed JSON values (json-format.ts) and strings (binary-mode headers, checked here by
 * validateAttributeStrings). No I/O, no HTTP.
 */
import { quote } from './errors';
import { parseMediaType } from './media-type';
import { SPEC_VERSION, type CloudEvent } from './event';

export type AttributeKind = 'specversion' | 'string' | 'uri-reference' | 'uri' | 'timestamp' | 'media-type';
export type ContextAttributeName =
  'id' | 'source' | 'specversion' | 'type' | 'datacontenttype' | 'dataschema' | 'subject' | 'time';

/** The context attributes of CloudEvents 1.0 (core spec §3.1), in spec order. */
export const CONTEXT_ATTRIBUTES: ReadonlyMap<string, { readonly kind: AttributeKind; readonly required: boolean }> =
  new Map<ContextAttributeName, { kind: AttributeKind; required: boolean }>([
    ['id', { kind: 'string', required: true }],
    ['source', { kind: 'uri-reference', required: true }],
    ['specversion', { kind: 'specversion', required: true }],
    ['type', { kind: 'string', required: true }],
    ['datacontenttype', { kind: 'media-type', required: false }],
    ['dataschema', { kind: 'uri', required: false }],
    ['subject', { kind: 'string', required: false }],
    ['time', { kind: 'timestamp', required: false }],
  ]);

export const REQUIRED_ATTRIBUTES: readonly ContextAttributeName[] = ['id', 'source', 'specversion', 'type'];
export const OPTIONAL_ATTRIBUTES: readonly ContextAttributeName[] = [
  'datacontenttype',
  'dataschema',
  'subject',
  'time',
];

export const NAME = /^[a-z0-9]+$/;
/**
 * Core spec "Type System" String: no control characters (U+0000–001F, U+007F–009F), no
 * non-characters (U+FDD0–FDEF and U+xFFFE/xFFFF of every plane, the latter as surrogate
 * pairs), no unpaired surrogates. Spelled out rather than `\p{…}/u`, which costs ~0.1 ms to
 * compile on first use (cold start).
 */
const FORBIDDEN_CHAR =
  // eslint-disable-next-line no-control-regex -- control characters are what it finds
  /[\u0000-\u001F\u007F-\u009F\uFDD0-\uFDEF\uFFFE\uFFFF]|[\uD83F\uD87F\uD8BF\uD8FF\uD93F\uD97F\uD9BF\uD9FF\uDA3F\uDA7F\uDABF\uDAFF\uDB3F\uDB7F\uDBBF\uDBFF][\uDFFE\uDFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(?:[Zz]|([+-])(\d{2}):(\d{2}))$/;
const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:/;
const ALPHANUMERIC = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
/** 1 for each character of the base64 alphabet (RFC 4648 §4), by char code. */
export const BASE64_ALPHABET = asciiTable(`${ALPHANUMERIC}+/`);
/** 1 for each character a URI may hold literally (RFC 3986 unreserved, gen-delims, sub-delims); `%` is handled apart. */
const URI_ALPHABET = asciiTable(`${ALPHANUMERIC}-._~:/?#[]@!$&'()*+,;=`);

function asciiTable(characters: string): Uint8Array {
  const table = new Uint8Array(128);
  for (let i = 0; i < characters.length; i++) table[characters.charCodeAt(i)] = 1;
  return table;
}
export const INT32_MIN = -2147483648;
export const INT32_MAX = 2147483647;

export const NAME_RULE = 'names must be lower-case letters a-z and digits 0-9 only';

/** Attribute and extension names: `^[a-z0-9]+$`, and not `data` (reserved). */
export function isValidAttributeName(name: string): boolean {
  return NAME.test(name) && name !== 'data';
}

/** Labels an attribute in error messages: `id` in JSON, `ce-id header` in binary mode. */
export type Labeler = (attribute: string) => string;

// ---------------------------------------------------------------------------------------
// Single values

/** RFC 3339 date-time: the shape by regex, then the ranges (days per month, offsets, leap second). */
export function isRfc3339(value: string): boolean {
  const m = RFC3339.exec(value);
  if (m === null) return false;
  const year = +m[1],
    month = +m[2],
    day = +m[3],
    hour = +m[4],
    minute = +m[5],
    second = +m[6];
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return false;
  if (hour > 23 || minute > 59 || second > 60) return false;
  let offsetMinutes = 0;
  if (m[7] !== undefined) {
    const offsetHour = +m[8],
      offsetMinute = +m[9];
    if (offsetHour > 23 || offsetMinute > 59) return false;
    offsetMinutes = (m[7] === '+' ? 1 : -1) * (offsetHour * 60 + offsetMinute);
  }
  // A leap second can only be the last second of a UTC day.
  return second < 60 || (((hour * 60 + minute - offsetMinutes) % 1440) + 1440) % 1440 === 1439;
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/**
 * RFC 3986 URI-reference, checked by characters: only URI characters and well-formed
 * `%XX`, at most one `#`, and a `:` before the first `/ ? #` must end a valid scheme.
 * A loop rather than one regex: a regex would overflow its stack on megabyte values.
 */
export function isUriReference(value: string): boolean {
  let hashes = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0x25) {
      if (!isHexDigit(value.charCodeAt(i + 1)) || !isHexDigit(value.charCodeAt(i + 2))) return false;
      i += 2;
    } else if (c > 127 || URI_ALPHABET[c] === 0 || (c === 0x23 && ++hashes > 1)) {
      return false;
    }
  }
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0x3a) return SCHEME.test(value); // a colon before any / ? # ends the scheme
    if (c === 0x2f || c === 0x3f || c === 0x23) return true;
  }
  return true;
}

function isHexDigit(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x66);
}

/** RFC 3986 URI with a scheme (a fragment is tolerated, as the spec's JSON schema does). */
export function isAbsoluteUri(value: string): boolean {
  return SCHEME.test(value) && isUriReference(value);
}

/**
 * What is wrong with one attribute value, or undefined. The result completes a sentence
 * that starts with the attribute's label.
 */
export function checkAttributeValue(kind: AttributeKind | 'extension', value: string): string | undefined {
  const bad = FORBIDDEN_CHAR.exec(value);
  if (bad !== null) {
    const code = bad[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0');
    return `contains the forbidden character U+${code} at index ${bad.index} (no control characters, surrogates or non-characters)`;
  }
  if (kind === 'extension') return undefined; // an extension string may be empty
  if (value.length === 0) return 'must not be empty';
  switch (kind) {
    case 'specversion':
      return value === SPEC_VERSION ? undefined : `${quote(value)}: unsupported specversion, only "1.0" is supported`;
    case 'string':
      return undefined;
    case 'uri-reference':
      return isUriReference(value) ? undefined : `${quote(value)} is not a valid URI-reference (RFC 3986)`;
    case 'uri':
      return isAbsoluteUri(value)
        ? undefined
        : `${quote(value)} is not an absolute URI (RFC 3986, with a scheme such as https:)`;
    case 'timestamp':
      return isRfc3339(value)
        ? undefined
        : `${quote(value)} is not an RFC 3339 timestamp (expected e.g. 2018-04-05T17:31:00Z or 2018-04-05T18:31:00.5+01:00)`;
    case 'media-type':
      return parseMediaType(value) !== undefined
        ? undefined
        : `${quote(value)} is not a valid RFC 2046 media type (expected type/subtype, e.g. application/json)`;
  }
}

// ---------------------------------------------------------------------------------------
// Attributes received as strings (binary mode)

/**
 * Checks string attributes (extensions included) and appends a message per problem.
 * `attributes` holds what was received and read; `unreadable` names attributes that were
 * received but could not be read (already reported), so they are not called missing.
 * An unsupported specversion stops the checks: the other rules belong to 1.0.
 */
export function validateAttributeStrings(
  attributes: ReadonlyMap<string, string>,
  label: Labeler,
  errors: string[],
  unreadable: readonly string[] = [],
): void {
  const specversion = attributes.get('specversion');
  if (specversion !== undefined && specversion !== '' && specversion !== SPEC_VERSION) {
    errors.push(`${label('specversion')} ${checkAttributeValue('specversion', specversion)}`);
    return;
  }
  for (const name of REQUIRED_ATTRIBUTES) {
    if (!attributes.has(name) && !unreadable.includes(name)) errors.push(`${label(name)} is missing`);
  }
  for (const [name, value] of attributes) {
    const problem = checkAttributeValue(CONTEXT_ATTRIBUTES.get(name)?.kind ?? 'extension', value);
    if (problem !== undefined) errors.push(`${label(name)} ${problem}`);
  }
}

/** Builds the event from checked string attributes; every name not in the core set is an extension. */
export function eventFromAttributeStrings(attributes: ReadonlyMap<string, string>, data: unknown): CloudEvent {
  const event: CloudEvent = {
    specversion: SPEC_VERSION,
    id: attributes.get('id')!,
    source: attributes.get('source')!,
    type: attributes.get('type')!,
    extensions: {},
  };
  for (const [name, value] of attributes) {
    const core = CONTEXT_ATTRIBUTES.get(name);
    if (core === undefined) event.extensions[name] = value;
    else if (!core.required) event[name as OptionalName] = value;
  }
  if (data !== undefined) event.data = data;
  return event;
}

export type OptionalName = 'datacontenttype' | 'dataschema' | 'subject' | 'time';
