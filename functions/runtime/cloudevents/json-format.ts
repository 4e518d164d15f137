/**
 * The JSON event format (structured mode and batch elements): strict checks of one
 * JSON-format event and the value it becomes.
 */
import { quote } from './errors';
import { isJson, parseMediaType } from './media-type';
import { SPEC_VERSION, type CloudEvent, type ExtensionValue } from './event';
import {
  BASE64_ALPHABET,
  checkAttributeValue,
  CONTEXT_ATTRIBUTES,
  INT32_MAX,
  INT32_MIN,
  NAME,
  NAME_RULE,
  OPTIONAL_ATTRIBUTES,
  REQUIRED_ATTRIBUTES,
  type AttributeKind,
  type OptionalName,
} from './attributes';
// ---------------------------------------------------------------------------------------
// JSON event format (structured mode and batch elements)

/**
 * Strict checks of one JSON-format event (JSON event format §2–3 plus the core rules).
 * Returns every problem, or [] when valid. JSON `null` means "unset" for attributes.
 */
export function validateEvent(e: unknown): string[] {
  const errors: string[] = [];
  collectEventErrors(e, '', errors);
  return errors;
}

/** As validateEvent, with each message prefixed (e.g. `events[2]: `). */
export function collectEventErrors(e: unknown, prefix: string, errors: string[]): void {
  if (!isJsonObject(e)) {
    errors.push(`${prefix}an event must be a JSON object, got ${jsonTypeOf(e)}`);
    return;
  }
  const specversion = e.specversion;
  if (typeof specversion === 'string' && specversion !== '' && specversion !== SPEC_VERSION) {
    errors.push(`${prefix}specversion ${checkAttributeValue('specversion', specversion)}`);
    return;
  }
  for (const name of REQUIRED_ATTRIBUTES) {
    if (e[name] === undefined || e[name] === null) errors.push(`${prefix}${name} is missing`);
  }
  for (const name of Object.keys(e)) {
    const value = e[name];
    if (name === 'data') continue;
    if (name === 'data_base64') {
      if (value !== null) checkDataBase64(value, prefix, errors);
      continue;
    }
    if (!NAME.test(name)) {
      errors.push(`${prefix}attribute name ${quote(name)} is invalid: ${NAME_RULE}`);
      continue;
    }
    if (value === null) continue;
    const core = CONTEXT_ATTRIBUTES.get(name);
    const problem = core !== undefined ? checkCoreJsonValue(core.kind, value) : checkExtensionJsonValue(value);
    if (problem !== undefined) errors.push(`${prefix}${core !== undefined ? '' : 'extension '}${name} ${problem}`);
  }
  checkData(e, prefix, errors);
}

function checkCoreJsonValue(kind: AttributeKind, value: unknown): string | undefined {
  if (typeof value !== 'string') return `must be a JSON string, got ${jsonTypeOf(value)}`;
  return checkAttributeValue(kind, value);
}

function checkExtensionJsonValue(value: unknown): string | undefined {
  switch (typeof value) {
    case 'string':
      return checkAttributeValue('extension', value);
    case 'boolean':
      return undefined;
    case 'number':
      return Number.isInteger(value) && value >= INT32_MIN && value <= INT32_MAX
        ? undefined
        : `must be an integer from -2147483648 to 2147483647, got ${value}`;
    default:
      return `must be a string, boolean or integer, got ${jsonTypeOf(value)}`;
  }
}

function checkDataBase64(value: unknown, prefix: string, errors: string[]): void {
  if (typeof value !== 'string') errors.push(`${prefix}data_base64 must be a JSON string, got ${jsonTypeOf(value)}`);
  else if (!isBase64(value)) errors.push(`${prefix}data_base64 is not valid base64 (RFC 4648, padded, no whitespace)`);
}

/** RFC 4648 base64, padded, nothing else (a loop: a regex would overflow its stack on megabytes). */
export function isBase64(value: string): boolean {
  const length = value.length;
  if (length % 4 !== 0) return false;
  let end = length;
  if (end > 0 && value.charCodeAt(end - 1) === 0x3d) end--;
  if (end > 0 && value.charCodeAt(end - 1) === 0x3d && end === length - 1) end--;
  for (let i = 0; i < end; i++) {
    const c = value.charCodeAt(i);
    if (c > 127 || BASE64_ALPHABET[c] === 0) return false;
  }
  return true;
}

function checkData(e: Record<string, unknown>, prefix: string, errors: string[]): void {
  const hasBase64 = e.data_base64 !== undefined && e.data_base64 !== null;
  if (e.data === undefined) return;
  if (hasBase64) {
    errors.push(`${prefix}data and data_base64 are both present: send exactly one of them`);
    return;
  }
  const contentType = e.datacontenttype;
  if (typeof contentType !== 'string' || typeof e.data === 'string') return; // absent means JSON; a string is always fine
  const mediaType = parseMediaType(contentType);
  if (mediaType !== undefined && !isJson(mediaType)) {
    errors.push(
      `${prefix}data must be a JSON string when datacontenttype ${quote(contentType)} is not JSON (or use data_base64), got ${jsonTypeOf(e.data)}`,
    );
  }
}

/**
 * Builds the event from a JSON object that validateEvent accepted. `data` is taken as the
 * JSON value (a string is never parsed again; `null` is an explicit null payload);
 * `data_base64` becomes a Buffer.
 */
export function eventFromJson(e: Record<string, unknown>): CloudEvent {
  const event: CloudEvent = {
    specversion: SPEC_VERSION,
    id: e.id as string,
    source: e.source as string,
    type: e.type as string,
    extensions: {},
  };
  for (const name of OPTIONAL_ATTRIBUTES) {
    const value = e[name];
    if (value !== undefined && value !== null) event[name as OptionalName] = value as string;
  }
  for (const name of Object.keys(e)) {
    const value = e[name];
    if (
      value === null ||
      value === undefined ||
      CONTEXT_ATTRIBUTES.has(name) ||
      name === 'data' ||
      name === 'data_base64'
    )
      continue;
    event.extensions[name] = value as ExtensionValue;
  }
  if (typeof e.data_base64 === 'string') event.data = Buffer.from(e.data_base64, 'base64');
  else if (e.data !== undefined) event.data = e.data;
  return event;
}

export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** JSON type name for messages. */
export function jsonTypeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  switch (typeof value) {
    case 'object':
      return 'an object';
    case 'string':
      return 'a string';
    case 'number':
      return `the number ${value}`;
    case 'boolean':
      return `the boolean ${value}`;
    default:
      return typeof value;
  }
}
