import { AsyncLocalStorage } from 'node:async_hooks';

// The time by which the work in progress must be answered (a retry budget, a
// `wait`), carried along the async call chain so that every API call made for
// that work is cut off by it: one hanging call can no longer outlast the budget
// it was made under. Scopes nest: the nearest deadline of them all counts.

const current = new AsyncLocalStorage<number>();

/**
 * A call made at or past its deadline still gets this long: the read that
 * reports a wait's outcome must be able to run, and each such call adds at most this.
 */
export const LATE_CALL_MS = 250;

/** Run `work` with every API call inside it bounded by `deadline` (epoch ms). */
export function withDeadline<T>(deadline: number, work: () => Promise<T>): Promise<T> {
  const outer = current.getStore();
  return current.run(outer === undefined ? deadline : Math.min(outer, deadline), work);
}

/** The timeout for a call starting now: the client's own, or less when the deadline in scope is nearer. */
export function callTimeout(defaultMs: number): number {
  const deadline = current.getStore();
  if (deadline === undefined) return defaultMs;
  return Math.min(defaultMs, Math.max(LATE_CALL_MS, deadline - Date.now()));
}
