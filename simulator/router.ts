// Turn a kube-apiserver URL into request attributes (group, version, resource, namespace,
// name, subresource), the same decomposition RBAC and the recorder use.

export type Route =
  | { kind: 'resource'; info: ResourceRequestInfo }
  | { kind: 'version' }
  | { kind: 'discovery'; group?: string; version?: string; legacy: boolean }
  | { kind: 'unknown' };

export interface ResourceRequestInfo {
  group: string;
  version: string;
  resource: string;
  namespace?: string;
  name?: string;
  subresource?: string;
  /** Watch requested through the legacy /watch/ path segment. */
  legacyWatch: boolean;
}

export function route(pathname: string): Route {
  const parts = pathname
    .split('/')
    .filter((p) => p.length > 0)
    .map(decodeURIComponent);
  if (parts.length === 1 && parts[0] === 'version') return { kind: 'version' };
  let group: string;
  let version: string;
  let rest: string[];
  if (parts[0] === 'api') {
    if (parts.length === 1) return { kind: 'discovery', legacy: true };
    group = '';
    version = parts[1];
    if (parts.length === 2) return { kind: 'discovery', legacy: true, version };
    rest = parts.slice(2);
  } else if (parts[0] === 'apis') {
    if (parts.length === 1) return { kind: 'discovery', legacy: false };
    if (parts.length === 2) return { kind: 'discovery', legacy: false, group: parts[1] };
    group = parts[1];
    version = parts[2];
    if (parts.length === 3) return { kind: 'discovery', legacy: false, group, version };
    rest = parts.slice(3);
  } else {
    return { kind: 'unknown' };
  }
  let legacyWatch = false;
  if (rest[0] === 'watch') {
    legacyWatch = true;
    rest = rest.slice(1);
  }
  let namespace: string | undefined;
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  if (rest.length === 0) return { kind: 'unknown' };
  const [resource, name, ...sub] = rest;
  return {
    kind: 'resource',
    info: {
      group,
      version,
      resource,
      namespace,
      name,
      subresource: sub.length ? sub.join('/') : undefined,
      legacyWatch,
    },
  };
}
