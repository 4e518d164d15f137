// kube-apiserver's RBAC refusal, for grants a test takes away: a request whose verb on a resource
// is denied is answered 403 with the Status the real apiserver writes, before any handler runs
// (k8s.io/apiserver pkg/endpoints/filters/authorization.go: the authorization filter answers
// with responsewriters.Forbidden). The simulator authenticates no user names, so each denial
// names the user the real apiserver would have authenticated.

import { ApiError } from './errors';

/** virtwake's ServiceAccount as knative/rbac.yaml ships it (namespace `default` until kustomize rewrites it). */
export const DEFAULT_USER = 'system:serviceaccount:default:virtwake';

export interface Denial {
  /** The RBAC verb: get, list, watch, create, update, patch, delete, deletecollection. */
  verb: string;
  /** API group, '' for the core group. */
  group: string;
  /** Resource, with its subresource after a slash (virtualmachines/start). */
  resource: string;
  /** Only in this namespace; every namespace when absent. */
  namespace?: string;
  user?: string;
}

/** What the authorizer sees of a request (k8s.io/apiserver pkg/endpoints/request/requestinfo.go). */
export interface Attributes {
  verb: string;
  group: string;
  resource: string;
  subresource?: string;
  namespace?: string;
  name?: string;
}

export class Authorizer {
  private denials: (Denial & { id: number })[] = [];
  private nextId = 1;

  deny(d: Denial): number {
    const id = this.nextId++;
    this.denials.push({ ...d, id });
    return id;
  }

  clear(): void {
    this.denials = [];
  }

  list(): (Denial & { id: number })[] {
    return this.denials.map((d) => ({ ...d }));
  }

  /** The 403 for a request a denial matches, else undefined (allowed). */
  check(a: Attributes): ApiError | undefined {
    const resource = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
    const d = this.denials.find(
      (x) =>
        x.verb === a.verb &&
        x.group === a.group &&
        x.resource === resource &&
        (x.namespace === undefined || x.namespace === a.namespace),
    );
    return d ? forbidden(a, d.user ?? DEFAULT_USER) : undefined;
  }
}

/**
 * responsewriters/errors.go forbiddenMessage + apimachinery pkg/api/errors/errors.go NewForbidden. RBAC
 * gives no reason when simply no rule allows the request (plugin/pkg/auth/authorizer/rbac/rbac.go), so the
 * message ends with the "cannot" sentence. The group-resource is the resource without its subresource, and
 * the name is the object's, which for a list or watch comes from a `metadata.name=` field selector
 * (requestinfo.go).
 */
function forbidden(a: Attributes, user: string): ApiError {
  const resource = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  const cannot = a.namespace
    ? `User "${user}" cannot ${a.verb} resource "${resource}" in API group "${a.group}" in the namespace "${a.namespace}"`
    : `User "${user}" cannot ${a.verb} resource "${resource}" in API group "${a.group}" at the cluster scope`;
  const qualified = a.group ? `${a.resource}.${a.group}` : a.resource;
  const message = a.name ? `${qualified} "${a.name}" is forbidden: ${cannot}` : `${qualified} is forbidden: ${cannot}`;
  return new ApiError({
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason: 'Forbidden',
    details: { ...(a.name ? { name: a.name } : {}), ...(a.group ? { group: a.group } : {}), kind: a.resource },
    code: 403,
  });
}

/** Parse a denial posted over HTTP. */
export function denialFromJson(body: unknown): Denial {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new Error('denial must be a JSON object');
  const b = body as Record<string, unknown>;
  for (const k of ['verb', 'resource'] as const)
    if (typeof b[k] !== 'string' || b[k] === '') throw new Error(`${k} must be a non-empty string`);
  for (const k of ['group', 'namespace', 'user'] as const)
    if (b[k] !== undefined && typeof b[k] !== 'string') throw new Error(`${k} must be a string`);
  return {
    verb: b.verb as string,
    group: (b.group as string | undefined) ?? '',
    resource: b.resource as string,
    ...(b.namespace !== undefined ? { namespace: b.namespace as string } : {}),
    ...(b.user !== undefined ? { user: b.user as string } : {}),
  };
}
