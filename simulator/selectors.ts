// Label and field selectors as kube-apiserver parses them. The label grammar and its error
// texts are in label-selector.ts; field selectors follow k8s.io/apimachinery
// pkg/fields/selector.go (parseSelector, UnescapeValue) and, for custom resources,
// k8s.io/apiextensions-apiserver pkg/apiserver/conversion/converter.go (ConvertFieldLabel).

import { errors } from './errors';
import { matchesLabels, type LabelSelector } from './label-selector';
import type { KubeObject } from './types';

export { matchesLabels, parseLabelSelector, type LabelSelector } from './label-selector';

export interface FieldRequirement {
  field: string;
  value: string;
  negate: boolean;
}

export type FieldSelector = FieldRequirement[];

const SUPPORTED_FIELDS = ['metadata.name', 'metadata.namespace'];
/** Checked in this order, so `a!=b` is not read as `a!` `=b`. */
const FIELD_OPERATORS = ['!=', '==', '='];

function splitTerms(text: string): string[] {
  const terms: string[] = [];
  let start = 0;
  let escaped = false;
  for (let i = 0; i < text.length; i++) {
    if (escaped) escaped = false;
    else if (text[i] === '\\') escaped = true;
    else if (text[i] === ',') {
      terms.push(text.slice(start, i));
      start = i + 1;
    }
  }
  terms.push(text.slice(start));
  return terms;
}

/** `\\`, `\,` and `\=` are escapes; a bare `,` or `=` in a value is refused (the rune's code point is printed). */
function unescapeValue(v: string): string {
  let out = '';
  let escaped = false;
  for (const c of v) {
    if (escaped) {
      if (c !== '\\' && c !== ',' && c !== '=')
        throw errors.badRequest(`invalid field selector: invalid escape sequence: \\${c}`);
      out += c;
      escaped = false;
    } else if (c === '\\') escaped = true;
    else if (c === ',' || c === '=')
      throw errors.badRequest(`invalid field selector: unescaped character in value: ${c.codePointAt(0)}`);
    else out += c;
  }
  if (escaped) throw errors.badRequest('invalid field selector: invalid escape sequence: \\');
  return out;
}

/**
 * Terms are sorted before parsing; every term must parse before any field name is checked, and a
 * custom resource supports only metadata.name and metadata.namespace (no selectableFields here).
 */
export function parseFieldSelector(text: string | undefined | null): FieldSelector {
  if (!text) return [];
  const parsed: FieldRequirement[] = [];
  for (const term of splitTerms(text).sort()) {
    if (term === '') continue;
    let found: FieldRequirement | undefined;
    for (let i = 0; i < term.length && !found; i++) {
      const op = FIELD_OPERATORS.find((o) => term.startsWith(o, i));
      if (op) found = { field: term.slice(0, i), value: term.slice(i + op.length), negate: op === '!=' };
    }
    if (!found) throw errors.badRequest(`invalid selector: '${text}'; can't understand '${term}'`);
    parsed.push({ ...found, value: unescapeValue(found.value) });
  }
  for (const r of parsed)
    if (!SUPPORTED_FIELDS.includes(r.field)) throw errors.badRequest(`field label not supported: ${r.field}`);
  return parsed;
}

export function matchesFields(sel: FieldSelector, o: KubeObject): boolean {
  for (const r of sel) {
    const actual = r.field === 'metadata.name' ? o.metadata.name : o.metadata.namespace;
    if ((actual === r.value) === r.negate) return false;
  }
  return true;
}

export interface ObjectFilter {
  labels: LabelSelector;
  fields: FieldSelector;
}

export function matches(f: ObjectFilter, o: KubeObject): boolean {
  return matchesFields(f.fields, o) && matchesLabels(f.labels, o.metadata.labels);
}
