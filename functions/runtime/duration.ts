// Go-style durations ("90s", "30m", "1h30m", "250ms"), as KubeVirt and the
// virtwake.io/idle-timeout annotation write them.

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const DURATION = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h))+$/;
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;

export function parseDuration(text: string): number | undefined {
  const s = text.trim();
  if (s === '0') return 0;
  if (!DURATION.test(s)) return undefined;
  let total = 0;
  for (const m of s.matchAll(PART)) total += Number(m[1]) * UNIT_MS[m[2]];
  return total;
}
