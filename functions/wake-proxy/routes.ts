import fs from 'node:fs';
import { loadYaml } from '@kubernetes/client-node';
import { ConfigError } from '../runtime/config';
import { isName, isNamespace } from '../runtime/names';

// Which VM and which of its Services a proxied request is for
// (VIRTWAKE_PROXY_ROUTES). The file is YAML or JSON (JSON is YAML):
//
//   routes:
//     - host: legacy-app.example.com        # optional; exact, case-insensitive, port ignored
//       pathPrefix: /app                    # optional; longest prefix wins
//       stripPrefix: false                  # optional; forward without the prefix
//       unpause: false                      # optional; wake it even if someone else paused it
//       vm: {namespace: vms, name: legacy-app}
//       service: {name: legacy-app, port: 8080}   # port: number or port name
//
// A route with neither host nor pathPrefix catches everything else.

export interface Route {
  host?: string;
  pathPrefix?: string;
  stripPrefix?: boolean;
  /** Wake the VM even when someone other than virtwake paused it. */
  unpause?: boolean;
  vm: { namespace: string; name: string };
  service: { name: string; port: number | string };
}

export interface RouteTable {
  routes: Route[];
  match(host: string | undefined, path: string): Route | undefined;
}

export function loadRoutes(file: string, defaultNamespace: string): RouteTable {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`VIRTWAKE_PROXY_ROUTES: cannot read ${file}: ${(e as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = loadYaml(text);
  } catch (e) {
    throw new ConfigError(
      `VIRTWAKE_PROXY_ROUTES: ${file} is neither YAML nor JSON: ${(e as Error).message.split('\n')[0]}`,
    );
  }
  return routeTable(parseRoutes(doc, defaultNamespace, file));
}

export function parseRoutes(doc: unknown, defaultNamespace: string, where = 'routes'): Route[] {
  const fail = (msg: string): never => {
    throw new ConfigError(`VIRTWAKE_PROXY_ROUTES: ${where}: ${msg}`);
  };
  const list = (doc as { routes?: unknown } | null)?.routes;
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) return fail('"routes" must be a list');
  const seen = new Set<string>();
  return list.map((raw, i): Route => {
    const at = `routes[${i}]`;
    const r = (raw ?? {}) as Record<string, any>;
    const known = new Set(['host', 'pathPrefix', 'stripPrefix', 'unpause', 'vm', 'service']);
    for (const k of Object.keys(r)) if (!known.has(k)) fail(`${at}.${k}: unknown field`);
    if (r.host !== undefined && (typeof r.host !== 'string' || !/^[a-z0-9.-]+$/i.test(r.host)))
      fail(`${at}.host: must be a host name`);
    if (r.pathPrefix !== undefined && (typeof r.pathPrefix !== 'string' || !r.pathPrefix.startsWith('/')))
      fail(`${at}.pathPrefix: must start with /`);
    if (r.stripPrefix !== undefined && typeof r.stripPrefix !== 'boolean')
      fail(`${at}.stripPrefix: must be true or false`);
    if (r.unpause !== undefined && typeof r.unpause !== 'boolean') fail(`${at}.unpause: must be true or false`);
    const namespace = r.vm?.namespace ?? defaultNamespace;
    if (!isNamespace(namespace)) fail(`${at}.vm.namespace: ${JSON.stringify(namespace)} is not a namespace name`);
    if (!isName(r.vm?.name)) fail(`${at}.vm.name: required, a VM name`);
    if (!isName(r.service?.name)) fail(`${at}.service.name: required, a Service name`);
    const port = r.service?.port;
    const portOk =
      (typeof port === 'number' && Number.isInteger(port) && port > 0 && port < 65536) ||
      (typeof port === 'string' && /^[a-z0-9-]{1,15}$/.test(port));
    if (!portOk) fail(`${at}.service.port: required, a port number or port name`);
    const route: Route = {
      host: r.host?.toLowerCase(),
      pathPrefix: r.pathPrefix,
      stripPrefix: r.stripPrefix,
      ...(r.unpause ? { unpause: true } : {}),
      vm: { namespace, name: r.vm.name },
      service: { name: r.service.name, port },
    };
    const key = `${route.host ?? '*'} ${route.pathPrefix ?? ''}`;
    if (seen.has(key))
      fail(
        `${at}: another route already has host ${route.host ?? '(any)'} and pathPrefix ${route.pathPrefix ?? '(none)'}`,
      );
    seen.add(key);
    return route;
  });
}

export function routeTable(routes: Route[]): RouteTable {
  // Most specific first: a host beats any host, then the longer prefix.
  const ordered = [...routes].sort(
    (a, b) => Number(!a.host) - Number(!b.host) || (b.pathPrefix?.length ?? 0) - (a.pathPrefix?.length ?? 0),
  );
  return {
    routes,
    match(host, path) {
      const h = host?.toLowerCase().replace(/:\d+$/, '');
      return ordered.find((r) => (!r.host || r.host === h) && (!r.pathPrefix || underPrefix(path, r.pathPrefix)));
    },
  };
}

/** /app matches /app, /app/ and /app/x, not /apple. */
function underPrefix(path: string, prefix: string): boolean {
  if (!path.startsWith(prefix)) return false;
  return (
    prefix.endsWith('/') || path.length === prefix.length || path[prefix.length] === '/' || path[prefix.length] === '?'
  );
}

/** The path the upstream sees. */
export function upstreamPath(route: Route, url: string): string {
  if (!route.stripPrefix || !route.pathPrefix) return url;
  const rest = url.slice(route.pathPrefix.replace(/\/$/, '').length);
  return rest.startsWith('/') ? rest : `/${rest}`;
}
