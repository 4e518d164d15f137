// The HTTP(S) front door: read the request, serve /_sim/ control endpoints, authenticate,
// apply fault rules, dispatch to the REST or subresource handlers, write the reply, and
// record the call.

import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Authorizer } from './authorizer';
import { handleControl, type ControlDeps } from './control';
import { discovery, VERSION_INFO } from './discovery';
import { ApiError, errors } from './errors';
import type { FaultRule, Faults } from './faults';
import { rbacVerb, type RecordedCall, type Recorder } from './recorder';
import { findResource, SNAPSHOT_GROUP, SUBRESOURCE_GROUP } from './resources';
import type { Reply, Rest } from './rest';
import { route } from './router';
import type { ObjectStore } from './store';
import { handleSubresource } from './subresources';
import type { VmActions } from './vm-actions';
import type { SnapshotApi } from './context';
import { serveWatch } from './watch';

const MAX_BODY = 3 * 1024 * 1024;

export interface HttpDeps {
  store: ObjectStore;
  rest: Rest;
  actions: VmActions;
  /** Live simulator settings: virt-api's read-to-write window, whether snapshot.kubevirt.io is served. */
  settings: { virtApiWindowMs: number; snapshotApi: SnapshotApi };
  faults: Faults;
  authorizer: Authorizer;
  recorder: Recorder;
  control: ControlDeps;
  token?: string;
  clientCertAuth: boolean;
  bookmarkIntervalMs: number;
}

export interface TlsMaterial {
  key: string;
  cert: string;
  ca: string;
  requestCert: boolean;
}

export interface HttpServer {
  server: Server;
  url: string;
  close(): Promise<void>;
  /**
   * Serve a new certificate from now on and drop every open connection, as a kube-apiserver
   * restarted with a rotated serving certificate (or CA) does.
   */
  rotate(tls: TlsMaterial): void;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(
          new ApiError({
            kind: 'Status',
            apiVersion: 'v1',
            metadata: {},
            status: 'Failure',
            message: 'Request entity too large: limit is 3145728',
            reason: 'RequestEntityTooLarge',
            code: 413,
          }),
        );
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function writeJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  if (body === undefined) {
    res.writeHead(status, { 'Content-Length': '0', ...headers });
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': String(Buffer.byteLength(text)),
    'Cache-Control': 'no-cache, private',
    ...headers,
  });
  res.end(text);
}

function writeError(res: ServerResponse, e: unknown): number {
  const err = e instanceof ApiError ? e : errors.internal((e as Error)?.message ?? String(e));
  writeJson(res, err.code, err.status, err.headers);
  return err.code;
}

function faultError(f: FaultRule): ApiError {
  const code = f.status!;
  const retry = f.retryAfterSeconds ?? (code === 429 ? 1 : undefined);
  return errors.forCode(code, f.message, retry);
}

/** A list or watch of one object by `metadata.name=` names that object to the authorizer (requestinfo.go). */
function nameFromFieldSelector(query: URLSearchParams): string | undefined {
  for (const term of (query.get('fieldSelector') ?? '').split(',')) {
    const m = /^metadata\.name==?(.+)$/.exec(term.trim());
    if (m) return m[1];
  }
  return undefined;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function createApiHandler(deps: HttpDeps) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://sim.local');
    const method = (req.method ?? 'GET').toUpperCase();
    let rawBody: string;
    try {
      rawBody = await readBody(req);
    } catch (e) {
      writeError(res, e);
      return;
    }
    if (url.pathname.startsWith('/_sim/')) {
      await handleControl(deps.control, req, res, url, rawBody);
      return;
    }

    if (deps.token !== undefined || deps.clientCertAuth) {
      const bearer = req.headers.authorization === `Bearer ${deps.token}` && deps.token !== undefined;
      const cert = deps.clientCertAuth && (req.socket as TLSSocket).authorized === true;
      if (!bearer && !cert) {
        writeError(res, errors.unauthorized());
        return;
      }
    }

    const r = route(url.pathname);
    const query = url.searchParams;
    const contentType = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    let body: unknown;
    let bodyError: ApiError | undefined;
    if (rawBody.trim()) {
      try {
        body = JSON.parse(rawBody);
      } catch (e) {
        bodyError = errors.badRequest(`couldn't get version/kind; json parse error: ${(e as Error).message}`);
      }
    }
    const info = r.kind === 'resource' ? r.info : undefined;
    const watch =
      !!info && method === 'GET' && (info.legacyWatch || query.get('watch') === 'true' || query.get('watch') === '1');
    const subDryRun =
      Array.isArray((body as { dryRun?: unknown } | undefined)?.dryRun) &&
      (body as { dryRun: unknown[] }).dryRun.length > 0;
    const call: RecordedCall = {
      method,
      path: url.pathname,
      verb: rbacVerb(method, !!info?.name, watch),
      group: info?.group ?? '',
      version: info?.version ?? '',
      resource: info?.resource ?? (r.kind === 'version' ? 'version' : ''),
      ...(info?.subresource ? { subresource: info.subresource } : {}),
      ...(info?.namespace ? { namespace: info.namespace } : {}),
      ...(info?.name ? { name: info.name } : {}),
      status: 0,
      dryRun: query.getAll('dryRun').length > 0 || (info?.group === SUBRESOURCE_GROUP && subDryRun),
      query: Object.fromEntries(query.entries()),
      ...(contentType ? { contentType } : {}),
      ...(body !== undefined ? { body } : {}),
    };
    deps.recorder.record(call);

    const refusal = deps.authorizer.check({
      verb: call.verb,
      group: call.group,
      resource: call.resource,
      subresource: call.subresource,
      namespace: call.namespace,
      name: call.name ?? (watch || call.verb === 'list' ? nameFromFieldSelector(query) : undefined),
    });
    if (refusal) {
      call.status = writeError(res, refusal);
      return;
    }

    const fault = deps.faults.take(method, url.pathname + url.search);
    if (fault?.delayMs) await sleep(fault.delayMs);
    if (fault?.drop) {
      req.socket.destroy();
      return;
    }
    if (fault?.hang) return;
    if (fault?.status && fault.rawBody !== undefined) {
      res.writeHead(fault.status, {
        'Content-Type': fault.rawContentType ?? 'text/html; charset=utf-8',
        'Content-Length': String(Buffer.byteLength(fault.rawBody)),
      });
      res.end(fault.rawBody);
      call.status = fault.status;
      return;
    }
    if (fault?.status) {
      call.status = writeError(res, faultError(fault));
      return;
    }

    try {
      if (bodyError && !(info?.group === SUBRESOURCE_GROUP)) throw bodyError;
      let reply: Reply;
      if (r.kind === 'version') reply = { kind: 'json', status: 200, body: VERSION_INFO };
      else if (r.kind === 'discovery')
        reply = {
          kind: 'json',
          status: 200,
          body: discovery(r.legacy, r.group, r.version, deps.settings.snapshotApi !== 'absent'),
        };
      else if (r.kind === 'resource' && r.info.group === SUBRESOURCE_GROUP)
        reply = await handleSubresource(deps.actions, method, r.info, rawBody, deps.settings.virtApiWindowMs);
      else if (r.kind === 'resource') {
        const resource = findResource(r.info.group, r.info.version, r.info.resource);
        if (!resource) throw errors.pathNotFound();
        // Before KubeVirt 1.3 there is no snapshot.kubevirt.io/v1beta1 (components/crds.go).
        if (resource.group === SNAPSHOT_GROUP && deps.settings.snapshotApi === 'absent') throw errors.pathNotFound();
        reply = deps.rest.handle({
          method,
          resource,
          version: r.info.version,
          namespace: r.info.namespace,
          name: r.info.name,
          subresource: r.info.subresource,
          query,
          contentType,
          body,
          rawBody,
          watch,
          bookmarkIntervalMs: deps.bookmarkIntervalMs,
        });
      } else throw errors.pathNotFound();

      if (reply.kind === 'watch') {
        call.status = 200;
        serveWatch(deps.store, res, { ...reply.params, endAfterEvents: fault?.watchEndAfterEvents }, () => undefined);
        return;
      }
      writeJson(res, reply.status, reply.body, reply.headers);
      call.status = reply.status;
    } catch (e) {
      call.status = writeError(res, e);
    }
  };
}

export async function listen(deps: HttpDeps, port: number, tls?: TlsMaterial): Promise<HttpServer> {
  const handler = createApiHandler(deps);
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    handler(req, res).catch((e) => {
      if (!res.headersSent) writeError(res, e);
      else res.destroy();
    });
  };
  const server: Server = tls
    ? createHttpsServer(
        { key: tls.key, cert: tls.cert, ca: tls.ca, requestCert: tls.requestCert, rejectUnauthorized: false },
        onRequest,
      )
    : createHttpServer(onRequest);
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('secureConnection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const addr = server.address();
  const actualPort = typeof addr === 'object' && addr ? addr.port : port;
  return {
    server,
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${actualPort}`,
    rotate(next: TlsMaterial) {
      if (!tls) throw new Error('the simulator serves plain http: nothing to rotate');
      (server as import('node:https').Server).setSecureContext({ key: next.key, cert: next.cert, ca: next.ca });
      for (const s of sockets) s.destroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
        server.closeAllConnections?.();
      }),
  };
}
