// Small statistics for the bench: medians over runs, percentiles over samples.

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** Nearest-rank percentile (p in 0..100) of the first `n` samples; sorts them in place. */
export function percentile(samples: Float64Array, n: number, p: number): number {
  if (n === 0) return NaN;
  const s = samples.subarray(0, n).sort();
  return s[Math.min(n - 1, Math.max(0, Math.ceil((p / 100) * n) - 1))];
}

export function ms(x: number, digits = 1): string {
  return Number.isFinite(x) ? `${x.toFixed(digits)} ms` : 'n/a';
}

export function mb(bytes: number): string {
  return Number.isFinite(bytes) ? `${(bytes / 1024 / 1024).toFixed(1)} MB` : 'n/a';
}

export function perSecond(x: number): string {
  return Number.isFinite(x) ? `${Math.round(x).toLocaleString('en-US')}/s` : 'n/a';
}

export function ratio(x: number, base: number): string {
  return Number.isFinite(x) && Number.isFinite(base) && base !== 0 ? `${(x / base).toFixed(2)}×` : 'n/a';
}
