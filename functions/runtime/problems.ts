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
