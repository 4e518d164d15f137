import { CloudEventError } from '../../functions/runtime/cloudevents/errors';
import { parseHttpMessage, type HttpHeaders } from '../../functions/runtime/cloudevents/http-parse';

/** The four required binary-mode headers of a valid event. */
export const BINARY_BASE: Readonly<Record<string, string>> = {
  'ce-specversion': '1.0',
  'ce-id': 'id-1',
  'ce-source': '/virtwake/test',
  'ce-type': 'io.virtwake.vm.start',
};

/** Run fn and return the CloudEventError it throws; fails the test on anything else. */
export function errorOf(fn: () => unknown): CloudEventError {
  try {
    fn();
  } catch (err) {
    if (err instanceof CloudEventError) return err;
    throw err;
  }
  throw new Error('expected a CloudEventError, but nothing was thrown');
}

export function parse(headers: HttpHeaders, body: string | Buffer = '') {
  return parseHttpMessage(headers, typeof body === 'string' ? Buffer.from(body, 'utf8') : body);
}

export function parseError(headers: HttpHeaders, body: string | Buffer = ''): CloudEventError {
  return errorOf(() => parse(headers, body));
}

export function structured(event: unknown, contentType = 'application/cloudevents+json') {
  return parse({ 'content-type': contentType }, JSON.stringify(event));
}

export function structuredError(event: unknown, contentType = 'application/cloudevents+json'): CloudEventError {
  return errorOf(() => structured(event, contentType));
}

export const MINIMAL = Object.freeze({
  specversion: '1.0',
  id: 'minimal',
  type: 'io.cloudevents.test',
  source: 'https://cloudevents.io',
});
