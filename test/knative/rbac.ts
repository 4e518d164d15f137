// Compares the Role shipped in knative/rbac.yaml with the Kubernetes API calls
// virtwake really makes (recorded by the KubeVirt simulator in integration
// tests): `missing` = calls the Role would refuse, `unused` = grants no call needed.
// Matching follows Kubernetes RBAC: `*` in apiGroups, resources or verbs matches
// anything; `res/*` matches every subresource of `res`; `*/sub` matches the
// subresource `sub` of any resource; resourceNames limit a rule to named requests.
import { CORE_SCHEMA, loadAll } from 'js-yaml';
import { readFileSync } from 'node:fs';

/** One API request in RBAC terms, as the simulator records it (simulator/recorder.ts). */
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
  /**
   * The request's namespace; absent for a request across all namespaces
   * (GET /apis/kubevirt.io/v1/virtualmachines), which only a ClusterRole (bound
   * by a ClusterRoleBinding) can allow. Calls that do not say are taken as namespaced.
   */
  namespace?: string;
  /** Set by the simulator's recorder: tells a cluster-wide call from a call that does not say. */
  path?: string;
}

export interface RoleComparison {
  /** `<verb> <group>/<resource>[/<subresource>]` the Role does not allow, sorted. */
  missing: string[];
  /** `<verb> <group>/<resource>` granted by the Role and used by no call, sorted. */
  unused: string[];
}

interface PolicyRule {
  /** From a ClusterRole: may allow requests across all namespaces. */
  cluster: boolean;
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
      cluster: r.kind === 'ClusterRole',
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

/** A recorded request without a namespace in its path spans all namespaces. */
export function clusterWide(call: ApiCall): boolean {
  return call.path !== undefined && call.namespace === undefined;
}

/** Does one (group, resource, verb) grant of a rule cover the call? */
function grantCovers(rule: PolicyRule, group: string, resource: string, verb: string, call: ApiCall): boolean {
  return (
    (rule.cluster || !clusterWide(call)) &&
    groupMatches(group, call.group) &&
    resourceMatches(resource, call) &&
    verbMatches(verb, call.verb) &&
    namesMatch(rule, call)
  );
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
  const unused = new Set(
    grants.filter((g) => !used.has(g)).map((g) => `${g.verb} ${groupLabel(g.group)}/${g.resource}`),
  );
  return { missing: [...missing].sort(), unused: [...unused].sort() };
}
