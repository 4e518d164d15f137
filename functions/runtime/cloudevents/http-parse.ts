/**
 * HTTP request (headers + body bytes) → CloudEvents, following the HTTP protocol binding
 * strictly. The mode comes from Content-Type alone (binding §3), matched case-insensitively:
 *   application/cloudevents-batch…  → batch      (only +json; any other format → 415)
 *   application/cloudevents…        → structured (only +json; any other format → 415)
 *   anything else, or none          → binary     (no required ce- header at all → 415)
 * A message that is a CloudEvent but breaks a rule → 400 listing every problem.
 */
import { CloudEventError, invalidEvent, quote, unsupportedMessage } from './errors';
import {
  CONTEXT_ATTRIBUTES,
  eventFromAttributeStrings,
  isValidAttributeName,
  validateAttributeStrings,
} from './attributes';
import { collectEventErrors, eventFromJson, isJsonObject, jsonTypeOf } from './json-format';
import { SPEC_VERSION, type CloudEvent } from './event';
import { CONTENT_TYPE, binaryLabel } from './http-headers';
import { essenceOf, isJson, isText, isUtf8Charset, parseMediaType, type MediaType } from './media-type';
import { decodeHeaderValue, HeaderValueError } from './percent';
import { decodeUtf8Body } from './utf8';

export { CloudEventError };

/** Node's IncomingHttpHeaders (names lower-cased), or `req.headersDistinct` (every value an array). */
export type HttpHeaders = Record<string, string | string[] | undefined>;

export interface ParsedMessage {
  mode: 'binary' | 'structured' | 'batch';
  events: CloudEvent[];
}

const BATCH_PREFIX = /^application\/cloudevents-batch/i;
const STRUCTURED_PREFIX = /^application\/cloudevents/i;
const STRUCTURED_FORMAT = 'application/cloudevents+json';
const BATCH_FORMAT = 'application/cloudevents-batch+json';
const MAX_PARSER_MESSAGE = 200;

/** Parse one HTTP request into its events. Throws CloudEventError (400 or 415). */
export function parseHttpMessage(headers: HttpHeaders, body: Buffer): ParsedMessage {
  const contentType = contentTypeOf(headers);
  if (contentType !== undefined) {
    if (BATCH_PREFIX.test(contentType)) return { mode: 'batch', events: parseBatch(contentType, body) };
    if (STRUCTURED_PREFIX.test(contentType))
      return { mode: 'structured', events: [parseStructured(contentType, body)] };
  }
  return { mode: 'binary', events: [parseBinary(headers, contentType, body)] };
}

// ---------------------------------------------------------------------------------------
// Structured and batch: the JSON event format

function parseStructured(contentType: string, body: Buffer): CloudEvent {
  requireFormat(contentType, STRUCTURED_FORMAT);
  const value = parseJsonBody(body, 'a structured CloudEvent is one JSON object');
  if (!isJsonObject(value)) {
    throw invalidEvent([`the body must be a JSON object (one CloudEvent), got ${jsonTypeOf(value)}`]);
  }
  const errors: string[] = [];
  collectEventErrors(value, '', errors);
  if (errors.length > 0) throw invalidEvent(errors);
  return eventFromJson(value);
}

function parseBatch(contentType: string, body: Buffer): CloudEvent[] {
  requireFormat(contentType, BATCH_FORMAT);
  const value = parseJsonBody(body, 'a batch is a JSON array of CloudEvents, [] when empty');
  if (!Array.isArray(value))
    throw invalidEvent([`the body must be a JSON array of CloudEvents, got ${jsonTypeOf(value)}`]);
  const errors: string[] = [];
  let batchVersion: string | undefined;
  for (let i = 0; i < value.length; i++) {
    const element: unknown = value[i];
    const prefix = `events[${i}]: `;
    collectEventErrors(element, prefix, errors);
    const version = isJsonObject(element) ? element.specversion : undefined;
    if (typeof version !== 'string') continue;
    if (batchVersion === undefined) batchVersion = version;
    else if (version !== batchVersion) {
      errors.push(
        `${prefix}specversion ${quote(version)} differs from ${quote(batchVersion)}: all events in a batch must have the same specversion`,
      );
    }
  }
  if (errors.length > 0) throw invalidEvent(errors);
  return value.map((element: Record<string, unknown>) => eventFromJson(element));
}

/** Structured and batch media types: exactly the JSON format, in UTF-8; anything else is 415. */
function requireFormat(contentType: string, format: string): void {
  const mediaType = parseMediaType(contentType);
  if (mediaType === undefined) {
    throw unsupportedMessage(`Content-Type ${quote(contentType)} is not a valid media type`);
  }
  const essence = essenceOf(mediaType);
  if (essence !== format) {
    throw unsupportedMessage(
      `unsupported CloudEvents format ${quote(essence)}: only ${STRUCTURED_FORMAT} (structured) and ${BATCH_FORMAT} (batch) are accepted`,
    );
  }
  if (!isUtf8Charset(mediaType)) {
    throw unsupportedMessage(
      `unsupported charset ${quote(mediaType.params.get('charset')!)} in Content-Type: send JSON as UTF-8`,
    );
  }
}

function parseJsonBody(body: Buffer, expected: string): unknown {
  if (body.length === 0) throw invalidEvent([`the body is empty: ${expected}`]);
  const text = decodeUtf8Body(body);
  if (text === undefined) throw invalidEvent(['the body is not valid UTF-8 (JSON must be UTF-8)']);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw invalidEvent([`the body is not valid JSON: ${parserMessage(err)}`]);
  }
}

// ---------------------------------------------------------------------------------------
// Binary: attributes in headers, data in the body

function parseBinary(headers: HttpHeaders, contentType: string | undefined, body: Buffer): CloudEvent {
  const errors: string[] = [];
  const { attributes, unreadable, requiredSeen } = readCeHeaders(headers, errors);
  if (!requiredSeen) {
    throw unsupportedMessage(
      `not a CloudEvent: Content-Type is ${contentType === undefined ? 'absent' : quote(contentType)} and there is no ` +
        `ce-specversion, ce-id, ce-source or ce-type header (binary mode needs all four; structured mode needs ` +
        `Content-Type ${STRUCTURED_FORMAT})`,
    );
  }
  if (contentType !== undefined) attributes.set('datacontenttype', contentType);
  validateAttributeStrings(attributes, binaryLabel, errors, unreadable);

  // Data is read unless that is meaningless: an unknown specversion or an unreadable Content-Type.
  const specversion = attributes.get('specversion');
  const mediaType = contentType === undefined ? undefined : parseMediaType(contentType);
  let data: unknown;
  if (
    (specversion === undefined || specversion === SPEC_VERSION) &&
    (contentType === undefined || mediaType !== undefined)
  ) {
    data = decodeBinaryData(mediaType, body, errors);
  }
  if (errors.length > 0) throw invalidEvent(errors);
  return eventFromAttributeStrings(attributes, data);
}

interface CeHeaders {
  /** attribute name → decoded value */
  attributes: Map<string, string>;
  /** attributes received but repeated or undecodable (already reported in errors) */
  unreadable: string[];
  /** whether any of ce-id, ce-source, ce-specversion, ce-type was sent: "is it a CloudEvent at all" */
  requiredSeen: boolean;
}

/** Collect the ce- headers: names checked, repeats refused, values decoded (binding §3.1.3). */
function readCeHeaders(headers: HttpHeaders, errors: string[]): CeHeaders {
  const attributes = new Map<string, string>();
  const unreadable: string[] = [];
  let requiredSeen = false;
  for (const name of Object.keys(headers)) {
    if (!isCeHeader(name)) continue;
    const value = headers[name];
    if (value === undefined || (Array.isArray(value) && value.length === 0)) continue;
    const attribute = name.slice(3).toLowerCase();
    if (CONTEXT_ATTRIBUTES.get(attribute)?.required) requiredSeen = true;
    const nameProblem = headerNameProblem(name, attribute);
    if (nameProblem !== undefined) {
      errors.push(nameProblem);
    } else if (
      (Array.isArray(value) && value.length > 1) ||
      attributes.has(attribute) ||
      unreadable.includes(attribute)
    ) {
      // Repeated: several values (headersDistinct), or the same name in two spellings.
      if (!unreadable.includes(attribute)) {
        errors.push(`${binaryLabel(attribute)} is repeated: each attribute must be sent exactly once`);
        unreadable.push(attribute);
      }
      attributes.delete(attribute);
    } else {
      try {
        attributes.set(attribute, decodeHeaderValue(Array.isArray(value) ? value[0] : value));
      } catch (err) {
        if (!(err instanceof HeaderValueError)) throw err;
        errors.push(`${binaryLabel(attribute)}: ${err.message}`);
        unreadable.push(attribute);
      }
    }
  }
  return { attributes, unreadable, requiredSeen };
}

/** `ce-` in any case, without a regex or a copy: this runs for every request header. */
function isCeHeader(name: string): boolean {
  return (
    name.length > 2 &&
    (name.charCodeAt(0) | 0x20) === 0x63 &&
    (name.charCodeAt(1) | 0x20) === 0x65 &&
    name.charCodeAt(2) === 0x2d
  );
}

function headerNameProblem(header: string, attribute: string): string | undefined {
  if (attribute === 'datacontenttype') {
    return 'ce-datacontenttype header must not be sent: in binary mode datacontenttype is the Content-Type header';
  }
  if (attribute === 'data')
    return 'ce-data header is not allowed: "data" is not an attribute name, the body carries the data';
  if (!isValidAttributeName(attribute)) {
    return (
      `header ${quote(header)} names the attribute ${quote(attribute)}, which is invalid: ` +
      'attribute names must be letters a-z and digits 0-9 only (header names are case-insensitive)'
    );
  }
  return undefined;
}

/**
 * The body as `data`: none when empty; parsed JSON for a JSON media type; a string for
 * text in UTF-8 (or US-ASCII); otherwise the bytes (the same Buffer, not a copy).
 */
function decodeBinaryData(mediaType: MediaType | undefined, body: Buffer, errors: string[]): unknown {
  if (body.length === 0) return undefined;
  if (mediaType === undefined) return body;
  if (isJson(mediaType)) {
    const text = decodeUtf8Body(body);
    if (text === undefined) {
      errors.push('data is not valid UTF-8, which JSON requires');
      return undefined;
    }
    try {
      return JSON.parse(text);
    } catch (err) {
      errors.push(`data is not valid JSON: ${parserMessage(err)}`);
      return undefined;
    }
  }
  if (isText(mediaType) && isUtf8Charset(mediaType)) {
    const text = decodeUtf8Body(body);
    if (text === undefined)
      errors.push(`data is not valid UTF-8 text, as Content-Type ${quote(essenceOf(mediaType))} declares`);
    return text;
  }
  return body;
}

// ---------------------------------------------------------------------------------------

function contentTypeOf(headers: HttpHeaders): string | undefined {
  let value = headers[CONTENT_TYPE];
  if (value === undefined) {
    for (const name of Object.keys(headers)) {
      if (name.length === CONTENT_TYPE.length && name.toLowerCase() === CONTENT_TYPE) {
        value = headers[name];
        break;
      }
    }
  }
  if (value === undefined || typeof value === 'string') return value;
  if (value.length === 0) return undefined;
  if (value.length === 1) return value[0];
  throw invalidEvent([`Content-Type header is repeated (${value.length} times): send it exactly once`]);
}

function parserMessage(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.length > MAX_PARSER_MESSAGE ? `${text.slice(0, MAX_PARSER_MESSAGE)}…` : text;
}
