import type { ErrorObject, ValidateFunction } from 'ajv/dist/2020';
import { explainMismatch, format, matches, parseSelector, Requirement } from './labels';
import { ConfigFileError, jsonPath, parseConfigText, readConfigFile } from './config-file';
import { compileValidator } from './validate-compile';
import { Denied } from './errors';
import policySchema from '../../schemas/config/policy.json';

// Per-source policy (docs/policy.md): which CloudEvent sources may do which
// actions, in which namespaces, on VMs with which labels. A YAML or JSON file,
// usually a ConfigMap mounted in the Service (VIRTWAKE_POLICY_FILE), read and
// checked once at start-up: its shape against schemas/config/policy.json, then
// what a schema cannot say (unique rule names, selectors that parse). Rules
// only grant: a request is allowed when some rule allows it, and a source no
// rule names may do nothing. The environment's limits (VIRTWAKE_NAMESPACES,
// VIRTWAKE_VM_SELECTOR) still apply on top.

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

/** Read and check a policy file; every problem is a PolicyFileError that says where. */
export function loadSourcePolicy(file: string): SourcePolicy {
  try {
    return checkSourcePolicy(readConfigFile(file), file);
  } catch (e) {
    if (e instanceof ConfigFileError) throw new PolicyFileError(e.message);
    throw e;
  }
}

/** A policy file's text (YAML or JSON), checked. */
export function parseSourcePolicy(text: string, file = '(policy)'): SourcePolicy {
  let doc: unknown;
  try {
    doc = parseConfigText(text, file);
  } catch (e) {
    if (e instanceof ConfigFileError) throw new PolicyFileError(e.message);
    throw e;
  }
  return checkSourcePolicy(doc, file);
}

let validator: ValidateFunction | undefined;

function checkSourcePolicy(doc: unknown, file: string): SourcePolicy {
  const fail = (problems: string[]): never => {
    throw new PolicyFileError(`${file}: ${problems.join('; ')}`);
  };
  validator ??= compileValidator(policySchema);
  if (!validator(doc)) fail(describe(validator.errors ?? [], doc));
  // The schema has checked the shape; what is left is what a schema cannot say.
  const raw = (doc as { rules: PolicyRule[] }).rules;
  const problems: string[] = [];
  const seen = new Set<string>();
  const rules = raw.map((r, i): CompiledRule => {
    const where = `rules[${i}] (${JSON.stringify(r.name)})`;
    if (seen.has(r.name)) problems.push(`${where}: another rule has the same name`);
    seen.add(r.name);
    let requirements: Requirement[] = [];
    if (r.selector !== undefined) {
      try {
        requirements = parseSelector(r.selector);
      } catch (e) {
        problems.push(`${where}.selector: ${(e as Error).message}`);
      }
    }
    return {
      name: r.name,
      ...(r.description !== undefined && { description: r.description }),
      sources: r.sources,
      actions: r.actions,
      namespaces: r.namespaces,
      ...(r.selector !== undefined && { selector: r.selector }),
      sourceMatchers: r.sources.map(globMatcher),
      requirements,
    };
  });
  if (problems.length) fail(problems);
  return { file, rules };
}

const TOP_FIELDS = Object.keys(policySchema.properties);
const RULE_FIELDS = Object.keys(policySchema.$defs.rule.properties);
const MAX_SOURCE = policySchema.$defs.rule.properties.sources.items.maxLength;

/** What each field must be, said the way the person fixing the file needs it. */
const FIELD_HINTS: Record<string, string> = {
  '': 'must be an object such as {"rules": [...]}',
  rules: 'must be an array of rules',
  rule: 'must be an object',
  name: 'needs a "name" (a non-empty string up to 253 characters)',
  description: 'must be a string',
  sources: 'must be a non-empty array of strings',
  actions: 'must be a non-empty array of strings',
  namespaces: 'must be a non-empty array of strings',
  selector: 'must be a label selector string such as "ci=true"',
};

/**
 * ajv's errors, one per place: `rules[1] ("ci").actions[0]: unknown action "delete" (known: …)`.
 * A rule is named by its index and, once it has a usable one, its name.
 */
function describe(errors: ErrorObject[], doc: unknown): string[] {
  const out = new Map<string, string>();
  const add = (key: string, message: string) => {
    if (!out.has(key)) out.set(key, message);
  };
  for (const e of errors) {
    const parts = e.instancePath.split('/').slice(1);
    const at = place(parts, doc);
    if (e.keyword === 'additionalProperties') {
      const extra = (e.params as { additionalProperty: string }).additionalProperty;
      const allowed = parts.length === 0 ? TOP_FIELDS : RULE_FIELDS;
      add(
        `${e.instancePath}/${extra}`,
        `${at}: unknown field ${JSON.stringify(extra)} (allowed: ${allowed.join(', ')})`,
      );
      continue;
    }
    if (e.keyword === 'required') {
      const missing = (e.params as { missingProperty: string }).missingProperty;
      if (missing === 'name') add(`${e.instancePath}/name`, `${at}: ${FIELD_HINTS.name}`);
      else add(`${e.instancePath}/${missing}`, `${place([...parts, missing], doc)}: ${FIELD_HINTS[missing]}`);
      continue;
    }
    const last = parts.at(-1) ?? '';
    const field = /^\d+$/.test(last) ? parts.at(-2) : last;
    const item = /^\d+$/.test(last) && parts.length > 2;
    let message: string;
    if (item && field === 'actions')
      message = `unknown action ${shown(e.data)} (known: ${POLICY_ACTIONS.join(', ')}, or "*")`;
    else if (item && field === 'namespaces') message = `${shown(e.data)} is not a namespace name (or "*")`;
    else if (item) message = `${shown(e.data)} is not a non-empty string up to ${MAX_SOURCE} characters`;
    else if (field === 'name') {
      // A rule without a usable name is named by its index only.
      add(e.instancePath, `${place(parts.slice(0, -1), doc)}: ${FIELD_HINTS.name}`);
      continue;
    } else message = FIELD_HINTS[parts.length === 2 ? 'rule' : (field ?? '')] ?? e.message ?? e.keyword;
    add(e.instancePath, `${at}: ${message}`);
  }
  return [...out.values()];
}

/** A value as the message quotes it: JSON, cut short. */
function shown(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** rules/1/sources/0 → `rules[1] ("ci").sources[0]`; the document itself → `top level`. */
function place(parts: string[], doc: unknown): string {
  if (parts.length === 0) return 'top level';
  const path = jsonPath(`/${parts.join('/')}`);
  if (parts[0] !== 'rules' || parts[1] === undefined) return path;
  const name = (doc as { rules: { name?: unknown }[] }).rules[Number(parts[1])]?.name;
  if (typeof name !== 'string' || name.trim() === '' || name.length > 253) return path;
  const rule = `rules[${parts[1]}]`;
  return `${rule} (${JSON.stringify(name)})${path.slice(rule.length)}`;
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
