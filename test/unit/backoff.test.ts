/** The one backoff: doubling from the base, capped, and with jitter a draw below that. */
import { backoffMs } from '../../functions/runtime/backoff';

test('doubles from the base up to the cap', () => {
  const b = { baseMs: 100, maxMs: 1000 };
  expect([0, 1, 2, 3, 4, 5, 50].map((n) => backoffMs(n, b))).toEqual([100, 200, 400, 800, 1000, 1000, 1000]);
});

test('with jitter, a uniform draw below the same ceiling', () => {
  const b = { baseMs: 100, maxMs: 1000, jitter: true };
  expect(backoffMs(2, b, () => 0.5)).toBe(200);
  expect(backoffMs(2, b, () => 0)).toBe(0);
  expect(backoffMs(9, b, () => 0.999)).toBeCloseTo(999);
});

test('a negative attempt counts as the first', () => {
  expect(backoffMs(-3, { baseMs: 50, maxMs: 1000 })).toBe(50);
});
