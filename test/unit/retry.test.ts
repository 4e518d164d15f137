/**
 * withRetries on its own: which errors are tried again, what ends the retries,
 * and what the caller is handed when they run out.
 */
import { RetriesExhausted } from '../../functions/runtime/errors';
import { KubeApiError, KubeTransportError } from '../../functions/runtime/kube/errors';
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
    'start VM default/a: KubeVirt API unavailable after retries (last answer 503 ServiceUnavailable: try later)',
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

describe('the hand-back says what happened, not always "unavailable"', () => {
  const exhausted = async (status: number, reason: string, message: string) =>
    (
      (await failure(
        withRetries(FAST, 'start VM default/a', async () => {
          throw new Transient(new KubeApiError(status, reason, message));
        }),
      )) as RetriesExhausted
    ).message;

  test('"already underway" is KubeVirt busy with the VM, not an unavailable API', async () => {
    const m = await exhausted(
      500,
      'InternalError',
      'Internal error occurred: unable to complete request: stop/start already underway',
    );
    expect(m).toBe(
      'start VM default/a: KubeVirt is still carrying out an earlier start/stop request on this VM, still so after retries (last answer 500 InternalError: Internal error occurred: unable to complete request: stop/start already underway)',
    );
    expect(m).not.toMatch(/unavailable/);
  });
  test('"VM snapshot is in progress" says another operation is in progress', async () => {
    expect(await exhausted(409, 'Conflict', 'VM snapshot is in progress')).toMatch(
      /^start VM default\/a: KubeVirt refuses the request while another operation on this VM is in progress/,
    );
  });
  test('a conflict that never clears says so', async () => {
    expect(await exhausted(409, 'Conflict', 'the object has been modified')).toMatch(
      /kept being changed by someone else/,
    );
  });
  test('401 says the credentials were not accepted', async () => {
    expect(await exhausted(401, 'Unauthorized', 'Unauthorized')).toMatch(
      /did not accept virtwake's credentials \(401\)/,
    );
  });
  test("virt-api's concurrent-change 500 is a conflicting change, with the last answer", async () => {
    const m = await exhausted(
      500,
      'InternalError',
      'Internal error occurred: the server rejected our request due to an error in our request',
    );
    expect(m).toMatch(/concurrent-change 500.*\(last answer 500 InternalError: Internal error occurred/);
    expect(m).not.toMatch(/unavailable/);
  });
  test('no answer at all is an unavailable API', async () => {
    const m = (
      (await failure(
        withRetries(FAST, 'read VM', async () => {
          throw new Transient(new KubeTransportError('GET /x failed: connect ECONNREFUSED', 'ECONNREFUSED'));
        }),
      )) as RetriesExhausted
    ).message;
    expect(m).toBe('read VM: KubeVirt API unavailable after retries (no answer: GET /x failed: connect ECONNREFUSED)');
  });
  test('a 503 is still an unavailable API', async () => {
    expect(await exhausted(503, 'ServiceUnavailable', 'try later')).toMatch(/KubeVirt API unavailable after retries/);
  });
});
