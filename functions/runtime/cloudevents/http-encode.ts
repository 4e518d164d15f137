/**
 * CloudEvent → HTTP message bytes: binary mode (our replies), the JSON event format, and
 * batches. Encoding trusts the event (we build replies ourselves) except for what would
 * put a malformed header on the wire, which throws a TypeError: it is a programming error.
 */
import { CONTEXT_ATTRIBUTES, isValidAttributeName } from './attributes';
import type { CloudEvent } from './event';
import { ATTRIBUTE_HEADERS, CONTENT_TYPE, headerFor } from './http-headers';
import { isJson, parseMediaType } from './media-type';
import { encodeHeaderValue } from './percent';

export interface HttpMessage {
  headers: Record<string, string>;
  body: Buffer;
}

export const STRUCTURED_CONTENT_TYPE = 'application/cloudevents+json; charset=utf-8';
export const BATCH_CONTENT_TYPE = 'application/cloudevents-batch+json; charset=utf-8';
/** What a structured event without datacontenttype means (JSON format §3.1); binary mode must say it. */
const IMPLIED_CONTENT_TYPE = 'application/json';
const EMPTY = Buffer.alloc(0);

/**
 * Binary mode: one `ce-` header per attribute and extension (percent-encoded), Content-Type
 * from datacontenttype, data as the body. Data is JSON-serialized when the content type is
 * JSON, or when there is none and data is not bytes (Content-Type then says application/json).
 */
export function encodeBinary(event: CloudEvent): HttpMessage {
  const headers: Record<string, string> = {};
  for (const [attribute, { header, percentEncoded }] of ATTRIBUTE_HEADERS) {
    const value = event[attribute as keyof CloudEvent];
    if (typeof value === 'string') headers[header] = percentEncoded ? encodeHeaderValue(value) : value;
  }
  for (const name of Object.keys(event.extensions)) {
    checkExtensionName(name);
    headers[headerFor(name)] = encodeHeaderValue(String(event.extensions[name]));
  }
  const data = event.data;
  if (data === undefined) return { headers, body: EMPTY };
  if (isBytes(data)) return { headers, body: asBuffer(data) };
  const contentType = event.datacontenttype;
  if (contentType === undefined) {
    headers[CONTENT_TYPE] = IMPLIED_CONTENT_TYPE;
    return { headers, body: jsonBytes(data) };
  }
  if (isJsonContentType(contentType)) return { headers, body: jsonBytes(data) };
  if (typeof data === 'string') return { headers, body: Buffer.from(data, 'utf8') };
  throw new TypeError(
    `encodeBinary: data for datacontenttype ${contentType} must be a string or a Buffer, got ${typeof data}`,
  );
}

/** The JSON event format object of one event (structured mode, batch element). Bytes become data_base64. */
export function toJsonFormat(event: CloudEvent): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const attribute of CONTEXT_ATTRIBUTES.keys()) {
    const value = event[attribute as keyof CloudEvent];
    if (value !== undefined) out[attribute] = value;
  }
  for (const name of Object.keys(event.extensions)) {
    checkExtensionName(name);
    out[name] = event.extensions[name];
  }
  const data = event.data;
  if (data === undefined) return out;
  if (isBytes(data)) {
    out.data_base64 = asBuffer(data).toString('base64');
  } else if (
    typeof data === 'string' ||
    event.datacontenttype === undefined ||
    isJsonContentType(event.datacontenttype)
  ) {
    out.data = data;
  } else {
    throw new TypeError(`toJsonFormat: data for datacontenttype ${event.datacontenttype} must be a string or a Buffer`);
  }
  return out;
}

/** Structured mode: `application/cloudevents+json`. */
export function encodeStructured(event: CloudEvent): HttpMessage {
  return {
    headers: { [CONTENT_TYPE]: STRUCTURED_CONTENT_TYPE },
    body: Buffer.from(JSON.stringify(toJsonFormat(event)), 'utf8'),
  };
}

/** Batch mode: `application/cloudevents-batch+json`, a JSON array (`[]` for none). */
export function encodeBatch(events: CloudEvent[]): HttpMessage {
  return {
    headers: { [CONTENT_TYPE]: BATCH_CONTENT_TYPE },
    body: Buffer.from(JSON.stringify(events.map(toJsonFormat)), 'utf8'),
  };
}

function checkExtensionName(name: string): void {
  if (!isValidAttributeName(name) || CONTEXT_ATTRIBUTES.has(name)) {
    throw new TypeError(
      `invalid extension name ${JSON.stringify(name)}: use a-z and 0-9 only, not a core attribute name`,
    );
  }
}

function isJsonContentType(contentType: string): boolean {
  const mediaType = parseMediaType(contentType);
  return mediaType !== undefined && isJson(mediaType);
}

function isBytes(data: unknown): data is Uint8Array {
  return data instanceof Uint8Array;
}

function asBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

function jsonBytes(data: unknown): Buffer {
  const text = JSON.stringify(data);
  if (text === undefined) throw new TypeError(`cannot serialize data of type ${typeof data} as JSON`);
  return Buffer.from(text, 'utf8');
}
