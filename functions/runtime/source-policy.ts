import fs from 'node:fs';
import { explainMismatch, format, matches, parseSelector, Requirement } from './labels';
import { isNamespace } from './names';
import { Denied } from './errors';

// Per-source policy (docs/policy.md): which CloudEvent sources may do which
// actions, in which namespaces, on VMs with which labels. A JSON file, usually
// a ConfigMap mounted in the Service (VIRTWAKE_POLICY_FILE), read and checked
// once at start-up. Rules only grant: a request is allowed when some rule
// allows it, and a source no rule names may do nothing. The environment's
// limits (VIRTWAKE_NAMESPACES, VIRTWAKE_VM_SELECTOR) still apply on top.

export const POLICY_ACTIONS = [
  'start',
  'stop',
  'restart',
  'pause',
  'unpause',
  'snapshot',
  'restore',
  'activity',
] as const;
export type PolicyAction = (typeof POLICY_ACTIONS)[number];

export interface PolicyRule {
  name: string;
  description?: string;
  /** Exact sources, or patterns where `*` stands for any run of characters ("*" alone: every source). */
  sources: string[];
  /** Action names, or "*" for all. */
  actions: Array<PolicyAction | '*'>;
  /** Namespace names, or "*" for any (the environment's allowlist still applies). */
  namespaces: string[];
  /** Label selector (VIRTWAKE_VM_SELECTOR syntax) the VM must match; absent or empty = any VM. */
  selector?: string;
}

export interface SourcePolicy {
  /** Where it was read from, for messages. */
  file: string;
  rules: CompiledRule[];
}

export interface CompiledRule extends PolicyRule {
  sourceMatchers: Array<(source: string) => boolean>;
  requirements: Requirement[];
}

/** What a command asks to do, as the policy sees it. */
export interface SourceRequest {
  source: string;
  actions: readonly PolicyAction[];
  namespace: string;
}

export class PolicyFileError extends Error {}

const TOP_FIELDS = new Set(['description', 'rules']);
const RULE_FIELDS = new Set(['name', 'description', 'sources', 'actions', 'namespaces', 'selector']);
const MAX_TEXT = 1024;

/** Read and check a policy file; every problem is a PolicyFileError that says where. */
export function loadSourcePolicy(file: string): SourcePolicy {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new PolicyFileError(`cannot read ${file}: ${(e as Error).message}`);
  }
  return parseSourcePolicy(text, file);
}

export function parseSourcePolicy(text: string, file = '(policy)'): SourcePolicy {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new PolicyFileError(`${file} is not JSON: ${(e as Error).message}`);
  }
  const fail = (where: string, what: string): never => {
    throw new PolicyFileError(`${file}: ${where}: ${what}`);
  };
  if (!isObject(doc)) return fail('top level', 'must be an object such as {"rules": [...]}');
  for (const k of Object.keys(doc))
    if (!TOP_FIELDS.has(k)) fail('top level', `unknown field ${JSON.stringify(k)} (allowed: rules, description)`);
  if (doc.description !== undefined && typeof doc.description !== 'string') fail('description', 'must be a string');
  if (!Array.isArray(doc.rules)) return fail('rules', 'must be an array of rules');

  const seen = new Set<string>();
  const rules = doc.rules.map((raw: unknown, i: number): CompiledRule => {
    let where = `rules[${i}]`;
    if (!isObject(raw)) return fail(where, 'must be an object');
    if (typeof raw.name !== 'string' || raw.name.trim() === '' || raw.name.length > 253)
      return fail(where, 'needs a "name" (a non-empty string up to 253 characters)');
    const name = raw.name;
    where = `rules[${i}] ("${name}")`;
    if (seen.has(name)) fail(where, 'another rule has the same name');
    seen.add(name);
    for (const k of Object.keys(raw))
      if (!RULE_FIELDS.has(k))
        fail(where, `unknown field ${JSON.stringify(k)} (allowed: ${[...RULE_FIELDS].join(', ')})`);
    if (raw.description !== undefined && typeof raw.description !== 'string')
      fail(where, '"description" must be a string');

    const sources = stringList(raw.sources, `${where}.sources`, fail);
    const actions = stringList(raw.actions, `${where}.actions`, fail);
    for (const a of actions) {
      if (a !== '*' && !(POLICY_ACTIONS as readonly string[]).includes(a))
        fail(`${where}.actions`, `unknown action ${JSON.stringify(a)} (known: ${POLICY_ACTIONS.join(', ')}, or "*")`);
    }
    const namespaces = stringList(raw.namespaces, `${where}.namespaces`, fail);
    for (const ns of namespaces) {
      if (ns !== '*' && !isNamespace(ns))
        fail(`${where}.namespaces`, `${JSON.stringify(ns)} is not a namespace name (or "*")`);
    }
    let requirements: Requirement[] = [];
    if (raw.selector !== undefined) {
      if (typeof raw.selector !== 'string')
        return fail(`${where}.selector`, 'must be a label selector string such as "ci=true"');
      try {
        requirements = parseSelector(raw.selector);
      } catch (e) {
        fail(`${where}.selector`, (e as Error).message);
      }
    }
    return {
      name,
      ...(raw.description !== undefined && { description: raw.description as string }),
      sources,
      actions: actions as PolicyRule['actions'],
      namespaces,
      ...(raw.selector !== undefined && { selector: raw.selector as string }),
      sourceMatchers: sources.map(globMatcher),
      requirements,
    };
  });
  return { file, rules };
}

function stringList(value: unknown, where: string, fail: (where: string, what: string) => never): string[] {
  if (!Array.isArray(value) || value.length === 0) return fail(where, 'must be a non-empty array of strings');
  for (const v of value) {
    if (typeof v !== 'string' || v === '' || v.length > MAX_TEXT)
      fail(where, `${JSON.stringify(v)} is not a non-empty string up to ${MAX_TEXT} characters`);
  }
  return value as string[];
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * `*` matches any run of characters (slashes included); everything else is
 * literal. No regular expression: the source is the sender's to choose, and a
 * pattern with several stars must not cost it more than a scan.
 */
export function globMatcher(glob: string): (source: string) => boolean {
  const parts = glob.split('*');
  if (parts.length === 1) return (s) => s === glob;
  const first = parts[0];
  const last = parts[parts.length - 1];
  const middle = parts.slice(1, -1).filter((p) => p !== '');
  return (s) => {
    if (s.length < first.length + last.length || !s.startsWith(first) || !s.endsWith(last)) return false;
    const end = s.length - last.length;
    let at = first.length;
    // Leftmost match of each literal in turn leaves the most room for the rest.
    for (const m of middle) {
      const i = s.indexOf(m, at);
      if (i < 0 || i + m.length > end) return false;
      at = i + m.length;
    }
    return true;
  };
}

/**
 * Every action a command may cause: its own, plus a start for `activity` with
 * `wake` and for `restore` with `startAfter`, a stop for `restore` with
 * `stopFirst`. A source that may not stop VMs cannot stop one by restoring it.
 */
export function requiredActions(fn: string, command: Record<string, unknown>): PolicyAction[] {
  if (!(POLICY_ACTIONS as readonly string[]).includes(fn)) return [];
  const out: PolicyAction[] = [fn as PolicyAction];
  if (fn === 'activity' && command.wake === true) out.push('start');
  if (fn === 'restore' && command.stopFirst === true) out.push('stop');
  if (fn === 'restore' && command.startAfter === true) out.push('start');
  return out;
}

const sourceMatches = (r: CompiledRule, source: string) => r.sourceMatchers.some((m) => m(source));
const namespaceMatches = (r: CompiledRule, ns: string) => r.namespaces.includes('*') || r.namespaces.includes(ns);
const actionMatches = (r: CompiledRule, a: PolicyAction) => r.actions.includes('*') || r.actions.includes(a);

/**
 * Before any API call: some rule must allow the source each action in the
 * namespace (labels are checked once the VM has been read). Throws 403.
 */
export function checkRequest(policy: SourcePolicy, req: SourceRequest): void {
  const forSource = policy.rules.filter((r) => sourceMatches(r, req.source));
  for (const action of req.actions) {
    if (forSource.some((r) => namespaceMatches(r, req.namespace) && actionMatches(r, action))) continue;
    const gaps = forSource.map((r): Gap => {
      const parts: string[] = [];
      if (!actionMatches(r, action)) parts.push(`it allows only ${r.actions.join(', ')}`);
      if (!namespaceMatches(r, req.namespace)) parts.push(`it covers only namespace(s) ${r.namespaces.join(', ')}`);
      return { rule: r.name, why: parts.join('; ') };
    });
    throw deny(
      policy,
      `source ${JSON.stringify(req.source)} to ${action} in namespace ${JSON.stringify(req.namespace)}`,
      gaps,
      `no rule names source ${JSON.stringify(req.source)}`,
    );
  }
}

/** After the VM was read: for each action, a rule that allows it must also select the VM's labels. Throws 403. */
export function checkVm(
  policy: SourcePolicy,
  req: SourceRequest,
  vm: { metadata: { name: string; labels?: Record<string, string> } },
): void {
  const labels = vm.metadata.labels;
  const candidates = policy.rules.filter((r) => sourceMatches(r, req.source) && namespaceMatches(r, req.namespace));
  for (const action of req.actions) {
    const allowing = candidates.filter((r) => actionMatches(r, action));
    if (allowing.some((r) => matches(r.requirements, labels))) continue;
    const gaps = allowing.map((r): Gap => ({
      rule: r.name,
      why: `it selects ${format(r.requirements)}: ${explainMismatch(r.requirements, labels).join('; ')}`,
    }));
    throw deny(
      policy,
      `source ${JSON.stringify(req.source)} to ${action} VM ${req.namespace}/${vm.metadata.name}`,
      gaps,
      `no rule allows ${action} in namespace ${JSON.stringify(req.namespace)}`,
    );
  }
}

interface Gap {
  rule: string;
  why: string;
}

/** A 403 that names the rule that denied (when one rule was in play) and says what each rule lacks. */
function deny(policy: SourcePolicy, what: string, gaps: Gap[], none: string): Denied {
  const detail =
    gaps.length === 1
      ? `policy rule ${JSON.stringify(gaps[0].rule)} does not allow ${what}: ${gaps[0].why}`
      : `no policy rule allows ${what}`;
  const errors = gaps.length ? gaps.map((g) => `rule ${JSON.stringify(g.rule)}: ${g.why}`) : [none];
  return new Denied(`${detail} (policy file ${policy.file})`, errors);
}
