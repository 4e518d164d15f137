// The continue token of a paged list, encoded and decoded as k8s.io/apiserver
// pkg/storage/continue.go does (base64url without padding around {"v","rv","start"}), with the
// apiserver's texts for a token it cannot read. Those texts embed Go's own errors (a
// base64.CorruptInputError, an encoding/json syntax or type error), reproduced here for the
// shapes a damaged token takes.

export interface ContinueToken {
  /** -1: go on at the latest resourceVersion (the token a 410 offers). */
  rv: number;
  /** Resume after this store key ("namespace/name"). */
  after: string;
}

/** A token the apiserver refuses; the message is what follows "invalid continue token: ". */
export class BadContinueToken extends Error {}

const INVALID = 'continue key is not valid';

export function encodeContinue(rv: number, lastKey: string): string {
  return Buffer.from(JSON.stringify({ v: 'meta.k8s.io/v1', rv, start: `${lastKey}\u0000` })).toString('base64url');
}

const B64URL = /[A-Za-z0-9_-]/;

/** base64.RawURLEncoding: the first byte it cannot use (CR and LF are skipped), or a lone last character. */
function base64Problem(s: string): string | undefined {
  let used = 0;
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\r' || s[i] === '\n') continue;
    if (!B64URL.test(s[i])) return `illegal base64 data at input byte ${i}`;
    used++;
  }
  if (used % 4 === 1) {
    let last = s.length - 1;
    while (s[last] === '\r' || s[last] === '\n') last--;
    return `illegal base64 data at input byte ${last}`;
  }
  return undefined;
}

const SHORT_ESCAPES: Record<number, string> = { 7: 'a', 8: 'b', 9: 't', 10: 'n', 11: 'v', 12: 'f', 13: 'r' };

/** The scanner reports one byte, quoted as strconv.Quote quotes that byte taken as a rune. */
function quoteChar(c: string): string {
  if (c === "'") return "'\\''";
  if (c === '"') return `'"'`;
  const code = c.charCodeAt(0);
  if (SHORT_ESCAPES[code]) return `'\\${SHORT_ESCAPES[code]}'`;
  if (code < 0x20 || code === 0x7f) return `'\\x${code.toString(16).padStart(2, '0')}'`;
  if ((code >= 0x80 && code <= 0xa0) || code === 0xad) return `'\\u${code.toString(16).padStart(4, '0')}'`;
  return `'${c}'`;
}

/** encoding/json's SyntaxError text for the first byte its scanner refuses, or undefined for valid JSON. */
export function jsonSyntaxProblem(text: string): string | undefined {
  let i = 0;
  const bad = (context: string) => `invalid character ${quoteChar(text[i])} ${context}`;
  // At the end of the input Go's scanner is fed a space: an unfinished number or literal reports that space.
  const needMore = (context: string) => {
    if (i >= text.length) fail(`invalid character ' ' ${context}`);
  };
  const ws = () => {
    while (i < text.length && ' \t\r\n'.includes(text[i])) i++;
  };
  class Stop extends Error {}
  const fail = (m: string): never => {
    throw Object.assign(new Stop(), { m });
  };
  const end = () => i >= text.length && fail('unexpected end of JSON input');
  const digits = (context: string) => {
    needMore(context);
    if (!/[0-9]/.test(text[i])) fail(bad(context));
    while (i < text.length && /[0-9]/.test(text[i])) i++;
  };
  const value = (): void => {
    ws();
    end();
    const c = text[i];
    if (c === '{') {
      i++;
      ws();
      end();
      if (text[i] === '}') return void i++;
      for (;;) {
        ws();
        end();
        if (text[i] !== '"') fail(bad('looking for beginning of object key string'));
        string();
        ws();
        end();
        if (text[i] !== ':') fail(bad('after object key'));
        i++;
        value();
        ws();
        end();
        if (text[i] === '}') return void i++;
        if (text[i] !== ',') fail(bad('after object key:value pair'));
        i++;
      }
    }
    if (c === '[') {
      i++;
      ws();
      end();
      if (text[i] === ']') return void i++;
      for (;;) {
        value();
        ws();
        end();
        if (text[i] === ']') return void i++;
        if (text[i] !== ',') fail(bad('after array element'));
        i++;
      }
    }
    if (c === '"') return string();
    if (c === '-' || /[0-9]/.test(c)) {
      if (c === '-') {
        i++;
        needMore('in numeric literal');
        if (!/[0-9]/.test(text[i])) fail(bad('in numeric literal'));
      }
      if (text[i] === '0') i++;
      else digits('in numeric literal');
      if (text[i] === '.') {
        i++;
        digits('after decimal point in numeric literal');
      }
      if (text[i] === 'e' || text[i] === 'E') {
        i++;
        if (text[i] === '+' || text[i] === '-') i++;
        digits('in exponent of numeric literal');
      }
      return;
    }
    for (const lit of ['true', 'false', 'null']) {
      if (c !== lit[0]) continue;
      i++;
      for (let k = 1; k < lit.length; k++, i++) {
        needMore(`in literal ${lit} (expecting ${quoteChar(lit[k])})`);
        if (text[i] !== lit[k]) fail(bad(`in literal ${lit} (expecting ${quoteChar(lit[k])})`));
      }
      return;
    }
    fail(bad('looking for beginning of value'));
  };
  const string = () => {
    i++;
    for (;;) {
      end();
      const c = text[i];
      if (c === '"') return void i++;
      if (c === '\\') {
        i++;
        end();
        if (text[i] === 'u') {
          for (let k = 0; k < 4; k++) {
            i++;
            end();
            if (!/[0-9a-fA-F]/.test(text[i])) fail(bad('in \\u hexadecimal character escape'));
          }
        } else if (!'"\\/bfnrt'.includes(text[i])) fail(bad('in string escape code'));
      } else if (c.charCodeAt(0) < 0x20) fail(bad('in string literal'));
      i++;
    }
  };
  try {
    value();
    ws();
    if (i < text.length) fail(bad('after top-level value'));
    return undefined;
  } catch (e) {
    if (e instanceof Stop) return (e as Stop & { m: string }).m;
    throw e;
  }
}

function jsonKind(v: unknown): string {
  if (Array.isArray(v)) return 'array';
  if (v === null) return 'null';
  if (typeof v === 'boolean') return 'bool';
  return typeof v;
}

/** encoding/json into struct{v string; rv int64; start string}: keys match case-insensitively, null is skipped. */
function typeProblem(parsed: unknown, raw: string): string | undefined {
  if (parsed === null) return undefined;
  if (typeof parsed !== 'object' || Array.isArray(parsed))
    return `json: cannot unmarshal ${jsonKind(parsed)} into Go value of type storage.continueToken`;
  for (const [k, v] of Object.entries(parsed as Record<string, unknown>)) {
    const field = ['v', 'rv', 'start'].find((f) => f === k.toLowerCase());
    if (!field || v === null) continue;
    const want = field === 'rv' ? 'int64' : 'string';
    const ok = field === 'rv' ? typeof v === 'number' && Number.isSafeInteger(v) : typeof v === 'string';
    if (ok) continue;
    // Go names the literal only for a number that does not fit the integer field.
    const kind = typeof v === 'number' && field === 'rv' ? `number ${numberText(raw, k)}` : jsonKind(v);
    return `json: cannot unmarshal ${kind} into Go struct field continueToken.${field} of type ${want}`;
  }
  return undefined;
}

/** The number as written in the token (Go quotes the literal, not a re-rendered value). */
function numberText(raw: string, key: string): string {
  const m = new RegExp(`"${key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}"\\s*:\\s*(-?[0-9.eE+-]+)`).exec(raw);
  return m ? m[1] : '';
}

function pick(o: Record<string, unknown> | null, field: string): unknown {
  if (!o) return undefined;
  let found: unknown;
  for (const [k, v] of Object.entries(o)) if (k.toLowerCase() === field && v !== null) found = v;
  return found;
}

/** storage.DecodeContinue: throws BadContinueToken with the apiserver's text. */
export function decodeContinue(token: string): ContinueToken {
  const b64 = base64Problem(token);
  if (b64) throw new BadContinueToken(`${INVALID}: ${b64}`);
  const bytes = Buffer.from(token.replace(/[\r\n]/g, ''), 'base64url');
  const text = bytes.toString('utf8');
  const syntax = jsonSyntaxProblem(bytes.toString('latin1'));
  if (syntax) throw new BadContinueToken(`${INVALID}: ${syntax}`);
  const parsed = JSON.parse(text) as unknown;
  const typed = typeProblem(parsed, text);
  if (typed) throw new BadContinueToken(`${INVALID}: ${typed}`);
  const o = parsed as Record<string, unknown> | null;
  const version = (pick(o, 'v') as string | undefined) ?? '';
  if (version !== 'meta.k8s.io/v1')
    throw new BadContinueToken(`${INVALID}: server does not recognize this encoded version ${version}`);
  const rv = (pick(o, 'rv') as number | undefined) ?? 0;
  if (rv === 0)
    throw new BadContinueToken(`${INVALID}: incorrect encoded start resourceVersion (version meta.k8s.io/v1)`);
  const start = (pick(o, 'start') as string | undefined) ?? '';
  if (!start) throw new BadContinueToken(`${INVALID}: encoded start key empty (version meta.k8s.io/v1)`);
  // The key must already be in path.Clean form ("a/../b", "a//b" are refused with the key itself).
  const key = start.startsWith('/') ? start : `/${start}`;
  if (!isCleanPath(key)) throw new BadContinueToken(`${INVALID}: ${start}`);
  return { rv, after: start.endsWith('\u0000') ? start.slice(0, -1) : start };
}

function isCleanPath(p: string): boolean {
  if (p === '/') return true;
  if (p.length > 1 && p.endsWith('/')) return false;
  return !p
    .slice(1)
    .split('/')
    .some((seg) => seg === '' || seg === '.' || seg === '..');
}
