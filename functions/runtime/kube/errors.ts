// Every failure of a Kubernetes API call becomes one of these two, so the
// retry policy and the outcome table each look at one shape.

/** The API server answered with a non-2xx status (its Status body decoded). */
export class KubeApiError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = 'KubeApiError';
  }
}

/** No answer: connection refused or dropped, TLS failure, timeout. */
export class KubeTransportError extends Error {
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
    this.name = 'KubeTransportError';
  }
}

export function apiErrorFrom(status: number, body: Buffer, retryAfterHeader?: string | string[]): KubeApiError {
  let reason = '';
  const text = body.toString('utf8');
  let message = text;
  try {
    // Parsed whole: a Status with a long message cut first would no longer be JSON.
    const parsed = JSON.parse(text) as { reason?: unknown; message?: unknown };
    if (typeof parsed.reason === 'string') reason = parsed.reason;
    if (typeof parsed.message === 'string') message = parsed.message;
  } catch {
    // Not a Status object (a proxy or load balancer answered); keep the raw text.
  }
  return new KubeApiError(
    status,
    reason,
    message.slice(0, 2000) || `HTTP ${status}`,
    parseRetryAfter(retryAfterHeader),
  );
}

export function parseRetryAfter(header: string | string[] | undefined): number | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds;
  const date = Date.parse(value);
  if (!Number.isNaN(date)) return Math.max(0, Math.ceil((date - Date.now()) / 1000));
  return undefined;
}
