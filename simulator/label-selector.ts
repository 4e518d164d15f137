// The labelSelector query parameter as kube-apiserver parses it, with its exact error texts
// (a client that shows the apiserver's message shows this one). Follows
// k8s.io/apimachinery pkg/labels/selector.go (Lexer, Parser, NewRequirement) and the key and
// value checks of pkg/api/validate/content/kube.go and dns.go; the errors are field errors
// formatted as pkg/util/validation/field/errors.go and aggregated as pkg/util/errors/errors.go.

import { errors } from './errors';

export type LabelOp = 'eq' | 'neq' | 'in' | 'notin' | 'exists' | 'notexists' | 'gt' | 'lt';

export interface LabelRequirement {
  key: string;
  op: LabelOp;
  values: string[];
}

export type LabelSelector = LabelRequirement[];

type Tok = 'end' | 'ident' | 'in' | 'notin' | '!' | '=' | '==' | '!=' | '>' | '<' | '(' | ')' | ',';

interface Token {
  tok: Tok;
  text: string;
}

const SPECIAL = '=!(),><';
const WHITESPACE = ' \t\r\n';
const SYMBOLS = new Set(['!', '=', '==', '!=', '>', '<', '(', ')', ',']);

/** Identifiers run to the next special symbol or blank; symbols are matched longest first. */
function lex(s: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  for (;;) {
    while (i < s.length && WHITESPACE.includes(s[i])) i++;
    if (i >= s.length) {
      out.push({ tok: 'end', text: '' });
      return out;
    }
    if (SPECIAL.includes(s[i])) {
      let j = i + 1;
      while (j < s.length && SPECIAL.includes(s[j]) && SYMBOLS.has(s.slice(i, j + 1))) j++;
      const text = s.slice(i, j);
      out.push({ tok: text as Tok, text });
      i = j;
    } else {
      let j = i;
      while (j < s.length && !SPECIAL.includes(s[j]) && !WHITESPACE.includes(s[j])) j++;
      const text = s.slice(i, j);
      out.push({ tok: text === 'in' || text === 'notin' ? text : 'ident', text });
      i = j;
    }
  }
}

const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function regexError(msg: string, re: string, examples: string[]): string {
  return `${msg} (e.g. ${examples.map((e) => `'${e}', `).join(' or ')}regex used for validation is '${re}')`;
}

const NAME_MSG = regexError(
  "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
  '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]',
  ['MyName', 'my.name', '123-abc'],
);
const VALUE_MSG = regexError(
  "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
  '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?',
  ['MyValue', 'my_value', '12345'],
);
const SUBDOMAIN_MSG = regexError(
  "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
  '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*',
  ['example.com'],
);

function labelKeyProblems(key: string): string[] {
  const parts = key.split('/');
  if (parts.length > 2)
    return [`a valid label key ${NAME_MSG} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')`];
  const out: string[] = [];
  const name = parts.length === 2 ? parts[1] : parts[0];
  if (parts.length === 2) {
    const prefix = parts[0];
    if (!prefix) out.push('prefix part must be non-empty');
    else {
      if (Buffer.byteLength(prefix) > 253) out.push('prefix part must be no more than 253 bytes');
      if (!DNS_SUBDOMAIN.test(prefix)) out.push(`prefix part ${SUBDOMAIN_MSG}`);
    }
  }
  if (!name) out.push('name part must be non-empty');
  else if (Buffer.byteLength(name) > 63) out.push('name part must be no more than 63 bytes');
  if (!LABEL_NAME.test(name)) out.push(`name part ${NAME_MSG}`);
  return out;
}

function labelValueProblems(v: string): string[] {
  const out: string[] = [];
  if (Buffer.byteLength(v) > 63) out.push('must be no more than 63 bytes');
  if (!LABEL_VALUE.test(v)) out.push(VALUE_MSG);
  return out;
}

/** A field.Invalid error's text; `<nil>` is how a nil field path prints. */
function invalid(path: string, value: string, detail: string): string {
  return `${path}: Invalid value: ${JSON.stringify(value)}: ${detail}`;
}

/** ErrorList.ToAggregate().Error(): duplicates dropped, one message bare, several in brackets. */
function aggregate(msgs: string[]): string | undefined {
  const unique = [...new Set(msgs)];
  if (unique.length === 0) return undefined;
  return unique.length === 1 ? unique[0] : `[${unique.join(', ')}]`;
}

const INT64 = /^[+-]?\d+$/;

function isInt64(v: string): boolean {
  if (!INT64.test(v)) return false;
  const n = BigInt(v);
  return n >= -(2n ** 63n) && n < 2n ** 63n;
}

class SyntaxProblem extends Error {}

class Parser {
  private pos = 0;
  constructor(private readonly toks: Token[]) {}

  /** In the value context `in` and `notin` are plain identifiers. */
  private peek(values = true): Token {
    const t = this.toks[this.pos];
    return values && (t.tok === 'in' || t.tok === 'notin') ? { tok: 'ident', text: t.text } : t;
  }

  private next(values = true): Token {
    const t = this.peek(values);
    this.pos++;
    return t;
  }

  parse(): LabelSelector {
    const reqs: LabelSelector = [];
    for (;;) {
      const t = this.peek();
      if (t.tok === 'end') return reqs;
      if (t.tok !== 'ident' && t.tok !== '!')
        throw new SyntaxProblem(`found '${t.text}', expected: !, identifier, or 'end of string'`);
      try {
        reqs.push(this.requirement());
      } catch (e) {
        if (e instanceof SyntaxProblem) throw new SyntaxProblem(`unable to parse requirement: ${e.message}`);
        throw e;
      }
      const sep = this.next();
      if (sep.tok === 'end') return reqs;
      if (sep.tok !== ',') throw new SyntaxProblem(`found '${sep.text}', expected: ',' or 'end of string'`);
      const after = this.peek();
      if (after.tok !== 'ident' && after.tok !== '!')
        throw new SyntaxProblem(`found '${after.text}', expected: identifier after ','`);
    }
  }

  private requirement(): LabelRequirement {
    let t = this.next();
    const negated = t.tok === '!';
    if (negated) t = this.next();
    if (t.tok !== 'ident') throw new SyntaxProblem(`found '${t.text}', expected: identifier`);
    const key = t.text;
    const keyProblems = labelKeyProblems(key);
    if (keyProblems.length) throw new SyntaxProblem(invalid('<nil>', key, keyProblems.join('; ')));
    const ahead = this.peek().tok;
    if (negated) return { key, op: 'notexists', values: [] };
    if (ahead === 'end' || ahead === ',') return { key, op: 'exists', values: [] };
    const opTok = this.next(false);
    const op = OPERATORS[opTok.tok];
    if (!op) throw new SyntaxProblem(`found '${opTok.text}', expected: in, notin, =, ==, !=, gt, lt`);
    const values = op === 'in' || op === 'notin' ? this.setValues() : this.exactValue();
    // sets.String.List(): sorted and unique, which is what the value indexes in messages count.
    const sorted = [...new Set(values)].sort();
    const problems: string[] = [];
    sorted.forEach((v, i) => {
      if ((op === 'gt' || op === 'lt') && !isInt64(v))
        problems.push(invalid(`values[${i}]`, v, "for 'Gt', 'Lt' operators, the value must be an integer"));
    });
    sorted.forEach((v, i) => {
      const p = labelValueProblems(v);
      if (p.length) problems.push(invalid(`values[${i}][${key}]`, v, p.join('; ')));
    });
    const message = aggregate(problems);
    if (message) throw new SyntaxProblem(message);
    return { key, op, values: sorted };
  }

  private setValues(): string[] {
    const open = this.next();
    if (open.tok !== '(') throw new SyntaxProblem(`found '${open.text}' expected: '('`);
    const first = this.peek();
    if (first.tok === ')') {
      this.next();
      return [''];
    }
    if (first.tok !== 'ident' && first.tok !== ',')
      throw new SyntaxProblem(`found '${first.text}', expected: ',', ')' or identifier`);
    const values = this.identifierList();
    if (this.next().tok !== ')') throw new SyntaxProblem(`found '${first.text}', expected: ')'`);
    return values;
  }

  /** A comma list where an empty element (`(,a)`, `(a,)`, `(a,,b)`) is the empty value. */
  private identifierList(): string[] {
    const values: string[] = [];
    for (;;) {
      const t = this.next();
      if (t.tok === 'ident') {
        values.push(t.text);
        const after = this.peek();
        if (after.tok === ',') continue;
        if (after.tok === ')') return values;
        throw new SyntaxProblem(`found '${after.text}', expected: ',' or ')'`);
      }
      if (t.tok !== ',') throw new SyntaxProblem(`found '${t.text}', expected: ',', or identifier`);
      if (values.length === 0) values.push('');
      const after = this.peek().tok;
      if (after === ')') {
        values.push('');
        return values;
      }
      if (after === ',') values.push('');
    }
  }

  private exactValue(): string[] {
    const ahead = this.peek().tok;
    if (ahead === 'end' || ahead === ',') return [''];
    const t = this.next();
    if (t.tok === 'ident') return [t.text];
    throw new SyntaxProblem(`found '${t.text}', expected: identifier`);
  }
}

const OPERATORS: Partial<Record<Tok, LabelOp>> = {
  in: 'in',
  notin: 'notin',
  '=': 'eq',
  '==': 'eq',
  '!=': 'neq',
  '>': 'gt',
  '<': 'lt',
};

/** A malformed selector is a 400 BadRequest whose message is the parser's error, unprefixed. */
export function parseLabelSelector(text: string | undefined | null): LabelSelector {
  if (!text) return [];
  try {
    return new Parser(lex(text)).parse();
  } catch (e) {
    if (e instanceof SyntaxProblem) throw errors.badRequest(e.message);
    throw e;
  }
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
        if (!has || !isInt64(v!)) return false;
        const n = BigInt(v!);
        const bound = BigInt(r.values[0]);
        if (r.op === 'gt' ? !(n > bound) : !(n < bound)) return false;
        break;
      }
    }
  }
  return true;
}
