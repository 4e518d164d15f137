import { Denied, HandBack, InvalidCommand, InvalidName } from './errors';

// Every way a request can fail before or instead of a result event, with its
// HTTP status. The event server turns these into application/problem+json; this
// file is the single table of status codes (contract §3) and the one place where
// the runtime's errors (errors.ts) become answers.

export type ProblemKind =
  | 'not-a-cloudevent' // 415
  | 'invalid-event' // 400: malformed CloudEvent
  | 'invalid-data' // 400: schema-invalid data
  | 'unknown-type' // 400
  | 'forbidden' // 403: policy denial
  | 'too-large' // 413
  | 'unavailable' // 503: transient, Knative redelivers
  | 'request-timeout' // 408: body did not arrive in time
  | 'method-not-allowed' // 405
  | 'internal'; // 500: a bug of ours; Knative retries it

export const PROBLEM_STATUS: Record<ProblemKind, number> = {
  'not-a-cloudevent': 415,
  'invalid-event': 400,
  'invalid-data': 400,
  'unknown-type': 400,
  forbidden: 403,
  'too-large': 413,
  unavailable: 503,
  'request-timeout': 408,
  'method-not-allowed': 405,
  internal: 500,
};

const TITLES: Record<ProblemKind, string> = {
  'not-a-cloudevent': 'Not a CloudEvent',
  'invalid-event': 'Malformed CloudEvent',
  'invalid-data': 'Event data does not match its schema',
  'unknown-type': 'Unknown event type',
  forbidden: 'Denied by policy',
  'too-large': 'Request body too large',
  unavailable: 'Temporarily unavailable, retry later',
  'request-timeout': 'Request body not received in time',
  'method-not-allowed': 'Method not allowed',
  internal: 'Internal error',
};

export class Problem extends Error {
  readonly status: number;
  constructor(
    readonly kind: ProblemKind,
    readonly detail: string,
    readonly errors: string[] = [],
    readonly retryAfterSeconds?: number,
  ) {
    super(detail);
    this.name = 'Problem';
    this.status = PROBLEM_STATUS[kind];
  }

  toJSON(): Record<string, unknown> {
    const body: Record<string, unknown> = {
      type: `https://virtwake.io/problems/${this.kind}`,
      title: TITLES[this.kind],
      status: this.status,
      detail: this.detail,
    };
    if (this.errors.length) body.errors = this.errors;
    return body;
  }
}

/**
 * The largest body virtwake answers a non-2xx with. Knative's dispatcher copies
 * the body of a failed delivery into the dead letter's `knativeerrordata`
 * through a 1024-character base64 buffer and crashes (index out of range) on a
 * body over 768 bytes, taking every in-memory channel of the cluster with it.
 * 700 leaves room; the full detail goes to the log instead.
 */
export const MAX_ERROR_BODY_BYTES = 700;

/** A longer detail is cut when errors are listed too, so that some of them fit. */
const DETAIL_SHARE_BYTES = 300;
/** A longer single error is cut, so that one long path or value does not hide the rest. */
const ERROR_BYTES = 160;
const ELLIPSIS = '…';

/**
 * The application/problem+json body for `p`, never over MAX_ERROR_BODY_BYTES:
 * `detail` shortened, `errors` cut with a last entry "… N more".
 */
export function problemBody(p: Problem): Buffer {
  const json = p.toJSON();
  const full = JSON.stringify(json);
  if (Buffer.byteLength(full) <= MAX_ERROR_BODY_BYTES) return Buffer.from(full);
  const head = { type: json.type, title: json.title, status: json.status };
  const sizeOf = (detail: string, errors: string[]) =>
    Buffer.byteLength(JSON.stringify(errors.length ? { ...head, detail, errors } : { ...head, detail }));
  const withRest = (kept: string[]) =>
    kept.length < p.errors.length ? [...kept, `${ELLIPSIS} ${p.errors.length - kept.length} more`] : kept;

  let detail = p.errors.length ? shorten(p.detail, DETAIL_SHARE_BYTES) : p.detail;
  const kept: string[] = [];
  for (const e of p.errors) {
    const next = [...kept, shorten(e, ERROR_BYTES)];
    if (sizeOf(detail, withRest(next)) > MAX_ERROR_BODY_BYTES) break;
    kept.push(next[next.length - 1]);
  }
  const errors = withRest(kept);
  const over = sizeOf(detail, errors) - MAX_ERROR_BODY_BYTES;
  if (over > 0) detail = shorten(detail, jsonBytes(detail) - over);
  return Buffer.from(JSON.stringify(errors.length ? { ...head, detail, errors } : { ...head, detail }));
}

/** `text` cut to at most `maxBytes` of UTF-8 (an ellipsis marks the cut), for plain-text error bodies. */
export function capText(text: string, maxBytes = MAX_ERROR_BODY_BYTES): string {
  if (Buffer.byteLength(text) <= maxBytes) return text;
  return cut(text, maxBytes, (ch) => Buffer.byteLength(ch));
}

/** Bytes `s` takes inside a JSON string (escapes counted). */
const jsonBytes = (s: string) => Buffer.byteLength(JSON.stringify(s)) - 2;

function shorten(s: string, maxBytes: number): string {
  return jsonBytes(s) <= maxBytes ? s : cut(s, maxBytes, jsonBytes);
}

/** Whole code points of `s` while they fit in `maxBytes` with the ellipsis after them. */
function cut(s: string, maxBytes: number, bytes: (ch: string) => number): string {
  let budget = maxBytes - bytes(ELLIPSIS);
  let out = '';
  for (const ch of s) {
    budget -= bytes(ch);
    if (budget < 0) break;
    out += ch;
  }
  return out + ELLIPSIS;
}

/** The event server's answer to an error, or undefined for one that is a bug of ours (500). */
export function problemOf(e: unknown): Problem | undefined {
  if (e instanceof Problem) return e;
  if (e instanceof InvalidCommand) return new Problem(e.why, e.message, e.errors);
  if (e instanceof Denied) return new Problem('forbidden', e.message, e.errors);
  if (e instanceof InvalidName) return new Problem('invalid-data', e.message);
  // Includes RetriesExhausted: Knative redelivers, after Retry-After.
  if (e instanceof HandBack) return new Problem('unavailable', e.message, [], e.retryAfterSeconds);
  return undefined;
}
