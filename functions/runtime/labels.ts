// Equality- and existence-based label selectors, enough for the opt-in
// selector (VIRTWAKE_VM_SELECTOR) and matchLabels of selector commands.

export interface Requirement {
  key: string;
  op: '=' | '!=' | 'exists' | '!exists';
  value?: string;
}

const KEY =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$/;

export function isLabelKey(k: string): boolean {
  return k.length <= 317 && KEY.test(k);
}

export function isLabelValue(v: string): boolean {
  return v.length <= 63 && VALUE.test(v);
}

export function parseSelector(text: string): Requirement[] {
  const out: Requirement[] = [];
  for (const raw of text.split(',')) {
    const part = raw.trim();
    if (!part) continue;
    let req: Requirement;
    const m = /^([^=!]+?)\s*(==|=|!=)\s*(.*)$/.exec(part);
    if (m) {
      req = { key: m[1].trim(), op: m[2] === '!=' ? '!=' : '=', value: m[3].trim() };
    } else if (part.startsWith('!')) {
      req = { key: part.slice(1).trim(), op: '!exists' };
    } else {
      req = { key: part, op: 'exists' };
    }
    if (!isLabelKey(req.key))
      throw new Error(`invalid label key ${JSON.stringify(req.key)} in selector ${JSON.stringify(text)}`);
    if (req.value !== undefined && !isLabelValue(req.value)) {
      throw new Error(`invalid label value ${JSON.stringify(req.value)} in selector ${JSON.stringify(text)}`);
    }
    out.push(req);
  }
  return out;
}

export function fromMatchLabels(matchLabels: Record<string, string>): Requirement[] {
  return Object.entries(matchLabels).map(([key, value]) => ({ key, op: '=' as const, value }));
}

export function matches(reqs: readonly Requirement[], labels: Record<string, string> | undefined): boolean {
  const l = labels ?? {};
  return reqs.every((r) => {
    const has = Object.prototype.hasOwnProperty.call(l, r.key);
    switch (r.op) {
      case '=':
        return has && l[r.key] === r.value;
      case '!=':
        return !has || l[r.key] !== r.value;
      case 'exists':
        return has;
      case '!exists':
        return !has;
    }
  });
}

export function format(reqs: readonly Requirement[]): string {
  return reqs
    .map((r) => (r.op === 'exists' ? r.key : r.op === '!exists' ? `!${r.key}` : `${r.key}${r.op}${r.value}`))
    .join(',');
}

/** What a VM lacks to match, for a 403 that says which label is missing. */
export function explainMismatch(reqs: readonly Requirement[], labels: Record<string, string> | undefined): string[] {
  return reqs
    .filter((r) => !matches([r], labels))
    .map((r) => {
      switch (r.op) {
        case '=':
          return `label ${r.key}=${r.value} is missing`;
        case '!=':
          return `label ${r.key} must not be ${r.value}`;
        case 'exists':
          return `label ${r.key} is missing`;
        case '!exists':
          return `label ${r.key} must not be set`;
      }
    });
}
