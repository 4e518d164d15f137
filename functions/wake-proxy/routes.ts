import type { ErrorObject, ValidateFunction } from 'ajv/dist/2020';
import { ConfigError } from '../runtime/config';
import { ConfigFileError, jsonPath, readConfigFile } from '../runtime/config-file';
import { compileValidator } from '../runtime/validate-compile';
import routesSchema from '../../schemas/config/routes.json';

// Which VM and which of its Services a proxied request or TCP connection is
// for (VIRTWAKE_PROXY_ROUTES). The file is YAML or JSON (JSON is YAML); its
// shape is schemas/config/routes.json:
//
//   routes:
//     - host: legacy-app.example.com        # optional; exact, case-insensitive, port and trailing dot ignored
//       pathPrefix: /app                    # optional; longest prefix wins
//       stripPrefix: false                  # optional; forward without the prefix
//       vm: {namespace: vms, name: legacy-app}
//       service: {name: legacy-app, port: 8080}   # port: number or port name
//     - listen: {tcp: 3389}                 # a TCP route: every connection to this port
//       vm: {name: win-erp}
//       service: {name: win-erp, port: 3389}
//
// An HTTP route with neither host nor pathPrefix catches everything else.

/** What a route leads to: the VM to wake and the Service port to reach it on. */
export interface Target {
  vm: { namespace: string; name: string };
  service: { name: string; port: number | string };
}

export interface Route extends Target {
  host?: string;
  pathPrefix?: string;
  stripPrefix?: boolean;
}

export interface TcpRoute extends Target {
  listen: { tcp: number };
  /** "routes[i] (listen tcp N → VM ns/name)", for messages. */
  label: string;
}

export interface RouteTable {
  routes: Route[];
  tcp: TcpRoute[];
  /**
   * The route for a request: `hosts` are the candidate hosts in order of trust
   * (see target.ts), `path` the normalised path. The first candidate that has
   * a host route wins; otherwise path and catch-all routes decide.
   */
  match(hosts: string | undefined | (string | undefined)[], path: string): Route | undefined;
}

export interface RouteOptions {
  /** The proxy's own HTTP port: a TCP route cannot take it. */
  httpPort?: number;
}

export function loadRoutes(file: string, defaultNamespace: string, opts: RouteOptions = {}): RouteTable {
  let doc: unknown;
  try {
    doc = readConfigFile(file);
  } catch (e) {
    if (e instanceof ConfigFileError) throw new ConfigError(`VIRTWAKE_PROXY_ROUTES: ${e.message}`);
    throw e;
  }
  const { http, tcp } = parseAllRoutes(doc, defaultNamespace, file, opts);
  return routeTable(http, tcp);
}

/** The HTTP routes of a routes document (tests and callers that need no TCP). */
export function parseRoutes(doc: unknown, defaultNamespace: string, where = 'routes'): Route[] {
  return parseAllRoutes(doc, defaultNamespace, where).http;
}

let validator: ValidateFunction | undefined;

/** A route as the file has it, once it matched the schema. */
interface RawRoute {
  host?: string;
  pathPrefix?: string;
  stripPrefix?: boolean;
  listen?: { tcp: number };
  vm: { namespace?: string; name: string };
  service: { name: string; port: number | string };
}

export function parseAllRoutes(
  doc: unknown,
  defaultNamespace: string,
  where = 'routes',
  opts: RouteOptions = {},
): { http: Route[]; tcp: TcpRoute[] } {
  const fail = (msg: string): never => {
    throw new ConfigError(`VIRTWAKE_PROXY_ROUTES: ${where}: ${msg}`);
  };
  // An empty file is no routes.
  if (doc === undefined || doc === null) return { http: [], tcp: [] };
  validator ??= compileValidator(routesSchema);
  if (!validator(doc)) fail(describe(validator.errors ?? [], doc).join('; '));
  // The schema has checked the shape.
  const list = (doc as { routes?: RawRoute[] | null }).routes ?? [];
  const http: Route[] = [];
  const tcp: TcpRoute[] = [];
  const seenHttp = new Set<string>();
  const seenPorts = new Map<number, string>();
  list.forEach((r, i) => {
    const at = `routes[${i}]`;
    const vm = { namespace: r.vm.namespace ?? defaultNamespace, name: r.vm.name };
    const service = { name: r.service.name, port: r.service.port };
    if (r.listen) {
      const port = r.listen.tcp;
      const label = `${at} (listen tcp ${port} → VM ${vm.namespace}/${vm.name})`;
      const other = seenPorts.get(port);
      if (other) fail(`${label}: port ${port} is already taken by ${other}`);
      if (port === opts.httpPort) fail(`${label}: port ${port} is the proxy's own HTTP port (PORT)`);
      seenPorts.set(port, at);
      tcp.push({ listen: { tcp: port }, vm, service, label });
      return;
    }
    const route: Route = {
      host: r.host === undefined ? undefined : normaliseHost(r.host),
      pathPrefix: r.pathPrefix,
      stripPrefix: r.stripPrefix,
      vm,
      service,
    };
    const key = `${route.host ?? '*'} ${route.pathPrefix ?? ''}`;
    if (seenHttp.has(key))
      fail(
        `${at}: another route already has host ${route.host ?? '(any)'} and pathPrefix ${route.pathPrefix ?? '(none)'}`,
      );
    seenHttp.add(key);
    http.push(route);
  });
  return { http, tcp };
}

const FIELD_HINTS: Record<string, string> = {
  host: 'must be a host name',
  pathPrefix: 'must start with /',
  stripPrefix: 'must be true or false',
  namespace: 'must be a namespace name (a lowercase DNS-1123 label)',
  name: 'must be a lowercase DNS-1123 name',
  port: 'must be a port number (1-65535) or a port name',
  tcp: 'must be a port number from 1 to 65535',
  routes: '"routes" must be a list',
};

/** ajv's errors as `routes[1].service.port: …`, one per field. */
function describe(errors: ErrorObject[], doc: unknown): string[] {
  const out = new Map<string, string>();
  for (const e of errors) {
    // The if/then/else and oneOf wrappers repeat what their branches say.
    if (e.keyword === 'if' || (e.keyword === 'oneOf' && !e.instancePath.endsWith('/port'))) continue;
    const parts = e.instancePath.split('/').slice(1);
    const field = jsonPath(e.instancePath);
    const which = routeLabel(parts, doc);
    if (e.keyword === 'additionalProperties') {
      const extra = (e.params as { additionalProperty: string }).additionalProperty;
      out.set(`${field}.${extra}`, `${field ? `${field}.` : ''}${extra}: unknown field${which}`);
    } else if (e.keyword === 'required') {
      const missing = (e.params as { missingProperty: string }).missingProperty;
      out.set(`${field}.${missing}`, `${field ? `${field}.` : ''}${missing}: required${which}`);
    } else if (!out.has(field)) {
      const last = parts.at(-1) ?? '';
      const hint = FIELD_HINTS[last] ?? e.message ?? e.keyword;
      const value = e.data === undefined || typeof e.data === 'object' ? '' : ` (got ${JSON.stringify(e.data)})`;
      out.set(field, last === 'routes' ? hint : `${field}: ${hint}${value}${which}`);
    }
  }
  return [...out.values()];
}

/** A TCP route is named by its port too, so the operator finds it. */
function routeLabel(parts: string[], doc: unknown): string {
  if (parts[0] !== 'routes' || parts[1] === undefined) return '';
  const r = (doc as { routes: Partial<RawRoute>[] }).routes[Number(parts[1])];
  const port = r?.listen?.tcp;
  return typeof port === 'number' ? ` (the TCP route listening on ${port})` : '';
}

/** Lower case, no port, no trailing dot: "ERP.example.com.:443" is "erp.example.com". */
export function normaliseHost(host: string): string {
  let h = host.trim().toLowerCase();
  if (h.startsWith('[')) h = h.slice(0, h.indexOf(']') + 1);
  else h = h.replace(/:\d*$/, '');
  return h.endsWith('.') ? h.slice(0, -1) : h;
}

export function routeTable(routes: Route[], tcp: TcpRoute[] = []): RouteTable {
  // Most specific first: a host beats any host, then the longer prefix.
  const ordered = [...routes].sort(
    (a, b) => Number(!a.host) - Number(!b.host) || (b.pathPrefix?.length ?? 0) - (a.pathPrefix?.length ?? 0),
  );
  const hosted = new Set(routes.filter((r) => r.host).map((r) => r.host));
  const under = (r: Route, path: string) => !r.pathPrefix || underPrefix(path, r.pathPrefix);
  return {
    routes,
    tcp,
    match(hosts, path) {
      for (const raw of Array.isArray(hosts) ? hosts : [hosts]) {
        if (!raw) continue;
        const h = normaliseHost(raw);
        if (!hosted.has(h)) continue;
        const hit = ordered.find((r) => r.host === h && under(r, path));
        if (hit) return hit;
      }
      return ordered.find((r) => !r.host && under(r, path));
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
