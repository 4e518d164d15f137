/**
 * withRetries on its own: which errors are tried again, what ends the retries,
 * and what the caller is handed when they run out.
 */
import { RetriesExhausted } from '../../functions/runtime/errors';
import { KubeApiError } from '../../functions/runtime/kube/errors';
import { RetryPolicy, Transient, withRetries } from '../../functions/runtime/retry';

const FAST: RetryPolicy = { attempts: 4, baseDelayMs: 1, maxDelayMs: 2, budgetMs: 3000 };
const transient = (status = 503, retryAfter?: number) =>
  new Transient(new KubeApiError(status, 'ServiceUnavailable', 'try later', retryAfter));

async function failure(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
}

test('a Transient is tried again until the operation succeeds', async () => {
  const attempts: number[] = [];
  const out = await withRetries(FAST, 'read VM', async (attempt) => {
    attempts.push(attempt);
    if (attempt < 3) throw transient();
    return 'ok';
  });
  expect(out).toBe('ok');
  expect(attempts).toEqual([1, 2, 3]);
});

test('any other error is thrown at once, untried', async () => {
  let calls = 0;
  const e = await failure(
    withRetries(FAST, 'read VM', async () => {
      calls++;
      throw new Error('a bug');
    }),
  );
  expect(e).toEqual(new Error('a bug'));
  expect(calls).toBe(1);
});

test('after the last attempt: RetriesExhausted, saying what and why, Retry-After from the budget', async () => {
  let calls = 0;
  const e = await failure(
    withRetries(FAST, 'start VM default/a', async () => {
      calls++;
      throw transient();
    }),
  );
  expect(calls).toBe(FAST.attempts);
  expect(e).toBeInstanceOf(RetriesExhausted);
  expect((e as RetriesExhausted).message).toBe(
    'start VM default/a: KubeVirt API unavailable after retries (try later)',
  );
  expect((e as RetriesExhausted).retryAfterSeconds).toBe(3);
});

test('a Retry-After longer than the budget ends the retries and is passed on', async () => {
  let calls = 0;
  const e = await failure(
    withRetries({ ...FAST, budgetMs: 500 }, 'read VM', async () => {
      calls++;
      throw transient(429, 30);
    }),
  );
  expect(calls).toBe(1);
  expect((e as RetriesExhausted).retryAfterSeconds).toBe(30);
});

test('one attempt in all means no retry', async () => {
  let calls = 0;
  await failure(
    withRetries({ ...FAST, attempts: 1 }, 'read VM', async () => {
      calls++;
      throw transient();
    }),
  );
  expect(calls).toBe(1);
});
