// Label and field selectors with kube-apiserver's grammar: equality (=, ==, !=),
// existence (a, !a), sets (in, notin), numeric (>, <); comma means AND.

import { errors } from './errors';
import type { KubeObject } from './types';

export type LabelOp = 'eq' | 'neq' | 'in' | 'notin' | 'exists' | 'notexists' | 'gt' | 'lt';

export interface LabelRequirement {
  key: string;
  op: LabelOp;
  values: string[];
}

export type LabelSelector = LabelRequirement[];

const KEY_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const KEY_PREFIX = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

type Token = { kind: 'ident' | 'op' | 'lparen' | 'rparen' | 'comma'; text: string };

function tokenize(s: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < s.length) {
    const c = s[i];
    if (c === ' ' || c === '\t') {
      i++;
    } else if (c === ',') {
      out.push({ kind: 'comma', text: c });
      i++;
    } else if (c === '(') {
      out.push({ kind: 'lparen', text: c });
      i++;
    } else if (c === ')') {
      out.push({ kind: 'rparen', text: c });
      i++;
    } else if (c === '=' || c === '!' || c === '<' || c === '>') {
      const two = s.slice(i, i + 2);
      if (two === '==' || two === '!=') {
        out.push({ kind: 'op', text: two });
        i += 2;
      } else {
        out.push({ kind: 'op', text: c });
        i++;
      }
    } else {
      let j = i;
      while (j < s.length && !' \t,()=!<>'.includes(s[j])) j++;
      out.push({ kind: 'ident', text: s.slice(i, j) });
      i = j;
    }
  }
  return out;
}

function parseError(detail: string): never {
  throw errors.badRequest(`unable to parse requirement: ${detail}`);
}

function validateKey(key: string): void {
  const slash = key.indexOf('/');
  const [prefix, name] = slash >= 0 ? [key.slice(0, slash), key.slice(slash + 1)] : ['', key];
  if ((slash >= 0 && (!KEY_PREFIX.test(prefix) || prefix.length > 253)) || !KEY_NAME.test(name) || name.length > 63) {
    parseError(
      `invalid label key "${key}": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character`,
    );
  }
}

function validateValue(v: string): void {
  if (v.length > 63 || !VALUE.test(v)) {
    parseError(
      `invalid label value: "${v}": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character`,
    );
  }
}

export function parseLabelSelector(text: string | undefined | null): LabelSelector {
  if (!text || !text.trim()) return [];
  const toks = tokenize(text);
  const reqs: LabelRequirement[] = [];
  let i = 0;
  const peek = () => toks[i];
  const describe = (t: Token | undefined) => (t ? `'${t.text}'` : 'end of string');
  while (i < toks.length) {
    let negated = false;
    if (peek()?.kind === 'op' && peek().text === '!') {
      negated = true;
      i++;
    }
    const keyTok = toks[i++];
    if (!keyTok || keyTok.kind !== 'ident')
      parseError(`found ${describe(keyTok)}, expected: !, identifier, or 'end of string'`);
    const key = keyTok.text;
    validateKey(key);
    if (negated) {
      const after = peek();
      if (after && after.kind !== 'comma') parseError(`found ${describe(after)}, expected: ',' or 'end of string'`);
      reqs.push({ key, op: 'notexists', values: [] });
    } else {
      const opTok = peek();
      if (!opTok || opTok.kind === 'comma') {
        reqs.push({ key, op: 'exists', values: [] });
      } else if (opTok.kind === 'op' && ['=', '==', '!=', '<', '>'].includes(opTok.text)) {
        i++;
        const valTok = peek();
        let value = '';
        if (valTok && valTok.kind === 'ident') {
          value = valTok.text;
          i++;
        } else if (valTok && valTok.kind !== 'comma') {
          parseError(`found ${describe(valTok)}, expected: identifier`);
        }
        if (opTok.text === '<' || opTok.text === '>') {
          if (!/^-?\d+$/.test(value)) parseError(`for 'Gt', 'Lt' operators, the value must be an integer`);
          reqs.push({ key, op: opTok.text === '>' ? 'gt' : 'lt', values: [value] });
        } else {
          validateValue(value);
          reqs.push({ key, op: opTok.text === '!=' ? 'neq' : 'eq', values: [value] });
        }
      } else if (opTok.kind === 'ident' && (opTok.text === 'in' || opTok.text === 'notin')) {
        i++;
        if (peek()?.kind !== 'lparen') parseError(`found ${describe(peek())}, expected: '('`);
        i++;
        const values: string[] = [];
        for (;;) {
          const t = toks[i++];
          if (!t) parseError(`found 'end of string', expected: ')'`);
          if (t.kind === 'rparen') break;
          if (t.kind === 'comma') continue;
          if (t.kind !== 'ident') parseError(`found ${describe(t)}, expected: ',', ')' or identifier`);
          validateValue(t.text);
          values.push(t.text);
        }
        if (values.length === 0) parseError(`for 'in', 'notin' operators, values set can't be empty`);
        reqs.push({ key, op: opTok.text === 'in' ? 'in' : 'notin', values });
      } else {
        parseError(`found ${describe(opTok)}, expected: in, notin, =, ==, !=, gt, lt`);
      }
    }
    const sep = toks[i];
    if (sep) {
      if (sep.kind !== 'comma') parseError(`found ${describe(sep)}, expected: ',' or 'end of string'`);
      i++;
      if (i >= toks.length) parseError(`found 'end of string', expected: identifier`);
    }
  }
  return reqs;
}

export function matchesLabels(sel: LabelSelector, labels: Record<string, string> | undefined): boolean {
  for (const r of sel) {
    const has = labels !== undefined && Object.prototype.hasOwnProperty.call(labels, r.key);
    const v = has ? labels![r.key] : undefined;
    switch (r.op) {
      case 'eq':
      case 'in':
        if (!has || !r.values.includes(v!)) return false;
        break;
      case 'neq':
      case 'notin':
        if (has && r.values.includes(v!)) return false;
        break;
      case 'exists':
        if (!has) return false;
        break;
      case 'notexists':
        if (has) return false;
        break;
      case 'gt':
      case 'lt': {
        if (!has || !/^-?\d+$/.test(v!)) return false;
        const n = parseInt(v!, 10);
        const bound = parseInt(r.values[0], 10);
        if (r.op === 'gt' ? !(n > bound) : !(n < bound)) return false;
        break;
      }
    }
  }
  return true;
}

export interface FieldRequirement {
  field: string;
  value: string;
  negate: boolean;
}

export type FieldSelector = FieldRequirement[];

const SUPPORTED_FIELDS = ['metadata.name', 'metadata.namespace'];

export function parseFieldSelector(text: string | undefined | null): FieldSelector {
  if (!text || !text.trim()) return [];
  return text.split(',').map((part) => {
    const m = /^\s*([^=!\s]+)\s*(==|=|!=)\s*(.*?)\s*$/.exec(part);
    if (!m) throw errors.badRequest(`invalid selector: '${text}'; can't understand '${part}'`);
    const [, field, op, value] = m;
    if (!SUPPORTED_FIELDS.includes(field)) {
      throw errors.badRequest(`"${field}" is not a known field selector: only "metadata.name", "metadata.namespace"`);
    }
    return { field, value, negate: op === '!=' };
  });
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
