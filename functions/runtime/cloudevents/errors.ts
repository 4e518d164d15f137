/**
 * The one error type of the CloudEvents layer. `status` is the HTTP answer the
 * transport should give (contract §3): 415 when the message is not a CloudEvent or
 * uses a format we do not support, 400 when it is a CloudEvent that breaks a rule.
 * `errors` lists every problem found, each naming the attribute or header at fault.
 */
export class CloudEventError extends Error {
  readonly status: 400 | 415;
  readonly errors: string[];

  constructor(status: 400 | 415, errors: string[]) {
    super(errors.join('; '));
    this.name = 'CloudEventError';
    this.status = status;
    this.errors = errors;
  }
}

/** A message that is a CloudEvent but breaks a rule (HTTP 400). */
export function invalidEvent(errors: string[]): CloudEventError {
  return new CloudEventError(400, errors);
}

/** A message that is not a CloudEvent, or in a format we cannot read (HTTP 415). */
export function unsupportedMessage(reason: string): CloudEventError {
  return new CloudEventError(415, [reason]);
}

/** Quote a received value for an error message: JSON-escaped, and cut short if long. */
export function quote(value: string, max = 64): string {
  return JSON.stringify(value.length > max ? `${value.slice(0, max)}…` : value);
}
