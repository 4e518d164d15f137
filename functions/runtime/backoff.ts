// The one backoff: exponential from `baseMs`, capped at `maxMs`. With jitter,
// a uniform draw below that ("full jitter"), so replicas that failed together
// do not come back together.

export interface Backoff {
  baseMs: number;
  maxMs: number;
  jitter?: boolean;
}

/** The pause before try number `attempt + 1`, after `attempt` failures (0 = the first pause). */
export function backoffMs(attempt: number, b: Backoff, random: () => number = Math.random): number {
  const ceiling = Math.min(b.maxMs, b.baseMs * 2 ** Math.min(Math.max(0, attempt), 30));
  return b.jitter ? random() * ceiling : ceiling;
}
