import { KubeApiError, KubeTransportError } from './kube/errors';
import { RetriesExhausted } from './errors';
import { sleep } from './async';
import { backoffMs } from './backoff';
import { withDeadline } from './kube/deadline';

export interface RetryPolicy {
  /** Attempts in all, the first included. */
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** Wall time the retries may take before the event is handed back to Knative. */
  budgetMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 4, baseDelayMs: 100, maxDelayMs: 1000, budgetMs: 3000 };

/** Raised by operations to say "this may work if tried again". */
export class Transient extends Error {
  constructor(
    override readonly cause: unknown,
    message?: string,
  ) {
    super(message ?? (cause instanceof Error ? cause.message : String(cause)));
    this.name = 'Transient';
  }
  get retryAfterSeconds(): number | undefined {
    return this.cause instanceof KubeApiError ? this.cause.retryAfterSeconds : undefined;
  }
}

/**
 * Run `op` again from the start (re-reading whatever it reads) while it throws
 * Transient, with full-jitter exponential backoff inside a time budget. A
 * Retry-After from the API server is honoured when it fits the budget; when it
 * does not, the event goes back to Knative with that Retry-After.
 *
 * Every API call inside `op` is cut off at the end of the budget (or at `deadline`,
 * when the work has a later one of its own, a `wait`): one call that hangs does not
 * outlast it.
 */
export async function withRetries<T>(
  policy: RetryPolicy,
  what: string,
  op: (attempt: number) => Promise<T>,
  deadline?: number,
): Promise<T> {
  const started = Date.now();
  const until = Math.max(deadline ?? 0, started + policy.budgetMs);
  let last: Transient | undefined;
  for (let attempt = 1; attempt <= policy.attempts; attempt++) {
    try {
      return await withDeadline(until, () => op(attempt));
    } catch (err) {
      if (!(err instanceof Transient)) throw err;
      last = err;
      if (attempt === policy.attempts) break;
      const left = policy.budgetMs - (Date.now() - started);
      const backoff = backoffMs(attempt - 1, { baseMs: policy.baseDelayMs, maxMs: policy.maxDelayMs, jitter: true });
      const wait = err.retryAfterSeconds !== undefined ? Math.max(backoff, err.retryAfterSeconds * 1000) : backoff;
      if (wait > left) break;
      await sleep(wait);
    }
  }
  const retryAfter = Math.max(1, Math.ceil(last?.retryAfterSeconds ?? policy.budgetMs / 1000));
  throw new RetriesExhausted(`${what}: ${whatHappened(last)}`, retryAfter);
}

/** KubeVirt's words for a patch that lost to a concurrent change (kubevirt-answers.ts, the 500 row). */
const CONCURRENT_CHANGE = /the server rejected our request due to an error in our request/;

/**
 * What the retries ran into, in words that fit it, with the last answer: an API that answered (KubeVirt busy
 * with the VM, a conflicting change, a refusal) is reachable, not unavailable; only no answer, or an API that
 * says it is unavailable, is.
 */
function whatHappened(last: Transient | undefined): string {
  const cause = last?.cause;
  const detail = last?.message ?? 'unknown error';
  if (cause instanceof KubeApiError) {
    const answer = `(last answer ${cause.status}${cause.reason ? ` ${cause.reason}` : ''}: ${detail})`;
    return `${answeredWith(cause)} ${answer}`;
  }
  if (cause instanceof KubeTransportError) return `KubeVirt API unavailable after retries (no answer: ${detail})`;
  // Our own reading of what the API said (the VM not in a state to act on yet, another delivery acting).
  return `not possible yet, still so after retries (${detail})`;
}

function answeredWith(cause: KubeApiError): string {
  if (/already underway/.test(cause.message))
    return 'KubeVirt is still carrying out an earlier start/stop request on this VM, still so after retries';
  if (/in progress/.test(cause.message))
    return 'KubeVirt refuses the request while another operation on this VM is in progress, still so after retries';
  if (cause.status === 500 && CONCURRENT_CHANGE.test(cause.message))
    return "the VM kept being changed by someone else at the same moment (KubeVirt's concurrent-change 500), still so after retries";
  if (cause.status === 409)
    return 'the VM kept being changed by someone else at the same moment (conflict), still so after retries';
  if (cause.status === 401) return "the API server did not accept virtwake's credentials (401), still so after retries";
  if (cause.status === 429) return 'the API server kept throttling virtwake, still so after retries';
  if (cause.status === 503) return 'KubeVirt API unavailable after retries';
  if (cause.status < 500) return 'the API server kept refusing the request, still so after retries';
  return 'the API server kept failing the request, still so after retries';
}
