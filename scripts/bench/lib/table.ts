// The bench's one output: a plain-text table, every figure next to its baseline
// from the same run and the ratio between them.

export interface Row {
  /** A heading row when only this is set. */
  section?: string;
  measure?: string;
  value?: string;
  baseline?: string;
  ratio?: string;
  goal?: string;
  /** 'yes' | 'no' | '' (no goal) */
  met?: string;
}

const HEAD: Row = {
  measure: 'measure',
  value: 'virtwake',
  baseline: 'baseline (same run)',
  ratio: 'ratio',
  goal: 'goal',
  met: 'met',
};
const COLS = ['measure', 'value', 'baseline', 'ratio', 'goal', 'met'] as const;

export function renderTable(rows: Row[]): string {
  const body = rows.filter((r) => !r.section);
  const width = COLS.map((c) => Math.max(...[HEAD, ...body].map((r) => (r[c] ?? '').length)));
  const line = (r: Row) =>
    COLS.map((c, i) => (i === 0 ? (r[c] ?? '').padEnd(width[i]) : (r[c] ?? '').padStart(width[i])))
      .join(' | ')
      .trimEnd();
  const rule = width.map((w) => '-'.repeat(w)).join('-+-');
  const out = [line(HEAD), rule];
  for (const r of rows) out.push(r.section ? `${r.section}` : line(r));
  return out.join('\n');
}

export function verdict(ok: boolean | undefined): string {
  return ok === undefined ? '' : ok ? 'yes' : 'NO';
}
