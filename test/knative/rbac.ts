// Compares the Role shipped in knative/rbac.yaml with the Kubernetes API calls
// virtwake really makes (recorded by the KubeVirt simulator in integration
// tests): `missing` = calls the Role would refuse, `unused` = grants no call needed.
// Matching follows Kubernetes RBAC: `*` in apiGroups, resources or verbs matches
// anything; `res/*` matches every subresource of `res`; `*/sub` matches the
// subresource `sub` of any resource; resourceNames limit a rule to named requests.
import { CORE_SCHEMA, loadAll } from 'js-yaml';
import { readFileSync } from 'node:fs';

/** One API request in RBAC terms. `verb` is the RBAC verb (see rbacVerb). */
export interface ApiCall {
  verb: string;
  /** API group; "" for the core group (/api/v1). */
  group: string;
  /** Plural resource, e.g. `virtualmachines`. */
  resource: string;
  /** e.g. `start`, or `vnc/screenshot` for nested subresources. */
  subresource?: string;
  /** Object name, when the request names one (needed to match resourceNames). */
  name?: string;
}

export interface RoleComparison {
  /** `<verb> <group>/<resource>[/<subresource>]` the Role does not allow, sorted. */
  missing: string[];
  /** `<verb> <group>/<resource>` granted by the Role and used by no call, sorted. */
  unused: string[];
}

interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames: string[];
}

const groupLabel = (g: string) => (g === '' ? 'core' : g);
const resourcePath = (c: ApiCall) => (c.subresource ? `${c.resource}/${c.subresource}` : c.resource);

/** The key a call is reported under in `missing`. */
export function callKey(c: ApiCall): string {
  return `${c.verb} ${groupLabel(c.group)}/${resourcePath(c)}`;
}

const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);

/** The rules of every Role and ClusterRole in a YAML file. */
export function loadRoleRules(roleYamlPath: string): PolicyRule[] {
  const docs = loadAll(readFileSync(roleYamlPath, 'utf8'), { schema: CORE_SCHEMA });
  const roles = docs.filter(
    (d): d is { kind: string; rules?: unknown } =>
      typeof d === 'object' && d !== null && ['Role', 'ClusterRole'].includes((d as { kind?: unknown }).kind as string),
  );
  if (roles.length === 0) throw new Error(`${roleYamlPath}: no Role or ClusterRole`);
  return roles.flatMap((r) =>
    (Array.isArray(r.rules) ? r.rules : []).map((rule: Record<string, unknown>) => ({
      apiGroups: strings(rule.apiGroups),
      resources: strings(rule.resources),
      verbs: strings(rule.verbs),
      resourceNames: strings(rule.resourceNames),
    })),
  );
}

function groupMatches(ruleGroup: string, group: string): boolean {
  return ruleGroup === '*' || ruleGroup === group;
}

function resourceMatches(ruleResource: string, call: ApiCall): boolean {
  if (ruleResource === '*' || ruleResource === resourcePath(call)) return true;
  if (!call.subresource) return false;
  return ruleResource === `${call.resource}/*` || ruleResource === `*/${call.subresource}`;
}

function verbMatches(ruleVerb: string, verb: string): boolean {
  return ruleVerb === '*' || ruleVerb === verb;
}

function namesMatch(rule: PolicyRule, call: ApiCall): boolean {
  return rule.resourceNames.length === 0 || (call.name !== undefined && rule.resourceNames.includes(call.name));
}

/** Does one (group, resource, verb) grant of a rule cover the call? */
function grantCovers(rule: PolicyRule, group: string, resource: string, verb: string, call: ApiCall): boolean {
  return groupMatches(group, call.group) && resourceMatches(resource, call) && verbMatches(verb, call.verb) && namesMatch(rule, call);
}

export function compareRoleWithCalls(roleYamlPath: string, calls: readonly ApiCall[]): RoleComparison {
  const rules = loadRoleRules(roleYamlPath);
  const grants = rules.flatMap((rule) =>
    rule.apiGroups.flatMap((group) =>
      rule.resources.flatMap((resource) => rule.verbs.map((verb) => ({ rule, group, resource, verb }))),
    ),
  );
  const missing = new Set<string>();
  const used = new Set<(typeof grants)[number]>();
  for (const call of calls) {
    const covering = grants.filter((g) => grantCovers(g.rule, g.group, g.resource, g.verb, call));
    if (covering.length === 0) missing.add(callKey(call));
    for (const g of covering) used.add(g);
  }
  const unused = new Set(grants.filter((g) => !used.has(g)).map((g) => `${g.verb} ${groupLabel(g.group)}/${g.resource}`));
  return { missing: [...missing].sort(), unused: [...unused].sort() };
}

/**
 * RBAC verb of an HTTP request, as the API server (and virt-api for
 * subresources) authorises it: GET is get (named), list or watch; POST create;
 * PUT update; PATCH patch; DELETE delete (named) or deletecollection.
 */
export function rbacVerb(method: string, opts: { named: boolean; watch?: boolean }): string {
  switch (method.toUpperCase()) {
    case 'GET':
    case 'HEAD':
      if (opts.watch) return 'watch';
      return opts.named ? 'get' : 'list';
    case 'POST':
      return 'create';
    case 'PUT':
      return 'update';
    case 'PATCH':
      return 'patch';
    case 'DELETE':
      return opts.named ? 'delete' : 'deletecollection';
    default:
      throw new Error(`no RBAC verb for HTTP ${method}`);
  }
}

/**
 * An ApiCall from a request line, e.g. ('PUT',
 * '/apis/subresources.kubevirt.io/v1/namespaces/ns/virtualmachines/vm/start').
 * Handles /api/v1 (core), /apis/<group>/<version>, namespaced and cluster-scoped
 * paths, `?watch=true` and the legacy /watch/ prefix.
 */
export function callFromRequest(method: string, url: string): ApiCall & { namespace?: string } {
  const u = new URL(url, 'http://localhost');
  let parts = u.pathname.split('/').filter(Boolean).map(decodeURIComponent);
  let group: string;
  if (parts[0] === 'api') {
    group = '';
    parts = parts.slice(2);
  } else if (parts[0] === 'apis') {
    group = parts[1] ?? '';
    parts = parts.slice(3);
  } else {
    throw new Error(`not a Kubernetes API path: ${url}`);
  }
  let watch = ['true', '1'].includes(u.searchParams.get('watch') ?? '');
  if (parts[0] === 'watch') {
    watch = true;
    parts = parts.slice(1);
  }
  let namespace: string | undefined;
  if (parts[0] === 'namespaces' && parts.length >= 3) {
    namespace = parts[1];
    parts = parts.slice(2);
  }
  const [resource, name, ...sub] = parts;
  if (!resource) throw new Error(`no resource in ${url}`);
  const call: ApiCall & { namespace?: string } = {
    verb: rbacVerb(method, { named: name !== undefined, watch }),
    group,
    resource,
  };
  if (name !== undefined) call.name = name;
  if (sub.length > 0) call.subresource = sub.join('/');
  if (namespace !== undefined) call.namespace = namespace;
  return call;
}
