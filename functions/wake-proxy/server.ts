import http from 'node:http';
import type { Duplex } from 'node:stream';
import type { KubeConnection } from '../runtime/kube/connection';
import type { Runtime } from '../runtime/runtime';
import type { VirtwakeServer } from '../runtime/server';
import { endpointSlices } from './endpoints';
import { forwardHttp, forwardUpgrade, ForwardResult, upstreamAgent } from './forward';
import { wakeQueue, WakeQueue } from './queue';
import { Route, RouteTable, upstreamPath } from './routes';
import { Resolved, waker, WakeError, Waker } from './wake';
import { serveOperations } from '../runtime/operations';
import { drain } from '../runtime/drain';

// The wake proxy (contract §5): an HTTP reverse proxy in front of VMs' Services.
// A request is routed to its VM by host or path prefix; if the VM is up it is
// forwarded at once, otherwise it takes a place in the VM's bounded queue
// while the VM is started, and is forwarded once the VM's Service has a ready
// endpoint. A full queue or a wake past its timeout is answered 503 with
// Retry-After. Every request counts as activity on its VM (throttled).
//
// The proxy forwards every path, so its own endpoints (/health/readiness,
// /health/liveness, /metrics) answer only probes (kubelet, Knative's
// queue-proxy) and requests that match no route.

export interface WakeProxyDeps {
  runtime: Runtime;
  connection: KubeConnection;
  routes: RouteTable;
}

export interface WakeProxy extends VirtwakeServer {
  waker: Waker;
  queue: WakeQueue;
}

type Sink =
  | { kind: 'http'; req: http.IncomingMessage; res: http.ServerResponse }
  | { kind: 'upgrade'; req: http.IncomingMessage; socket: Duplex; head: Buffer };

export function createWakeProxy(deps: WakeProxyDeps): WakeProxy {
  const { runtime, routes } = deps;
  const { config, log, metrics } = runtime;
  const queue = wakeQueue(config.proxyQueueSize);
  const wake = waker({
    config,
    kubevirt: runtime.kubevirt,
    endpoints: endpointSlices(deps.connection),
    signal: runtime.signal,
    onWake: (vm, outcome, ms) => {
      metrics.action('wake-proxy.wake', outcome);
      log.info({ vm, outcome, durationMs: ms }, 'wake finished');
    },
  });
  const tunnels = new Set<Duplex>();
  /** Keep-alive connections to upstreams, this proxy's own: closed on shutdown. */
  const agent = upstreamAgent();

  const server = http.createServer((req, res) => {
    const route = routes.match(req.headers.host, req.url ?? '/');
    if (req.method === 'GET' && (!route || isProbe(req)) && serveOwn(req, res)) return;
    if (!route)
      return reply(
        { kind: 'http', req, res },
        404,
        `no virtwake route for host ${req.headers.host ?? '(none)'} and path ${req.url}`,
      );
    track(handle(route, { kind: 'http', req, res }));
  });
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    const route = routes.match(req.headers.host, req.url ?? '/');
    if (!route)
      return reply(
        { kind: 'upgrade', req, socket, head },
        404,
        `no virtwake route for host ${req.headers.host ?? '(none)'} and path ${req.url}`,
      );
    track(handle(route, { kind: 'upgrade', req, socket, head }));
  });
  // A held request's body waits unread while its VM boots; the wake timeout bounds that, not the server.
  server.requestTimeout = 0;
  server.keepAliveTimeout = 5_000;
  const drainer = drain(server, config.shutdownTimeoutMs);

  function serveOwn(req: http.IncomingMessage, res: http.ServerResponse): boolean {
    return serveOperations(res, (req.url ?? '/').split('?')[0], drainer.closing(), metrics);
  }

  function track(p: Promise<void>): void {
    drainer.track(p.catch((err) => log.error({ err }, 'wake proxy: unexpected error')));
  }

  async function handle(route: Route, sink: Sink): Promise<void> {
    if (drainer.closing()) return reply(sink, 503, 'virtwake wake-proxy is shutting down; retry', 1);
    const vm = `${route.vm.namespace}/${route.vm.name}`;
    const path = upstreamPath(route, sink.req.url ?? '/');
    for (let attempt = 1; attempt <= 2; attempt++) {
      const resolved = await hold(route, vm, sink);
      if (!resolved) return;
      runtime.recordActivity?.(resolved.vm).catch(() => {});
      const result: ForwardResult =
        sink.kind === 'http'
          ? await forwardHttp(sink.req, sink.res, resolved.upstream, path, agent)
          : await forwardUpgrade(sink.req, sink.socket, sink.head, resolved.upstream, path);
      if (result === 'done' && sink.kind === 'upgrade') {
        // Tunnels outlive the request; shutdown has to end them itself.
        tunnels.add(sink.socket);
        sink.socket.once('close', () => tunnels.delete(sink.socket));
      }
      if (result === 'done') return;
      // The cached upstream refused: the VM was probably stopped since. Look again (and wake it) once.
      wake.forget(route);
    }
    reply(sink, 502, `VM ${vm}: its Service ${route.service.name} refused the connection after the VM was reported up`);
  }

  /** The upstream for `route`, waiting in the VM's queue if it has to wake; undefined when already answered. */
  async function hold(route: Route, vm: string, sink: Sink): Promise<Resolved | undefined> {
    if (wake.warm(route)) return wake.resolve(route);
    if (!queue.enter(vm)) {
      metrics.action('wake-proxy.request', 'rejected', 'QueueFull');
      reply(
        sink,
        503,
        `VM ${vm} is waking up and ${queue.capacity} requests are already waiting for it (VIRTWAKE_PROXY_QUEUE_SIZE); retry after ${config.proxyRetryAfterSeconds}s`,
        config.proxyRetryAfterSeconds,
      );
      return undefined;
    }
    // A client that gives up frees its place at once, not when the wake ends.
    let left = false;
    const leave = () => {
      if (left) return;
      left = true;
      queue.leave(vm);
    };
    const gone = sink.kind === 'http' ? sink.res : sink.socket;
    gone.once('close', leave);
    try {
      return await wake.resolve(route);
    } catch (e) {
      if (!(e instanceof WakeError)) throw e;
      metrics.action('wake-proxy.request', 'rejected', e.status === 503 ? 'WakeTimeout' : 'WakeFailed');
      log.warn({ vm, status: e.status, problem: e.message }, 'request not forwarded');
      reply(sink, e.status, e.message, e.retryAfterSeconds);
      return undefined;
    } finally {
      gone.removeListener('close', leave);
      leave();
    }
  }

  function reply(sink: Sink, status: number, message: string, retryAfter?: number): void {
    metrics.http(status);
    const body = `virtwake wake-proxy: ${message}\n`;
    const headers: Record<string, string | number> = {
      'content-type': 'text/plain; charset=utf-8',
      'content-length': Buffer.byteLength(body),
    };
    if (retryAfter !== undefined) headers['retry-after'] = retryAfter;
    if (sink.kind === 'http') {
      if (sink.res.headersSent || sink.res.destroyed) return;
      // An unread body would otherwise be parsed as the next request on this connection.
      if (!sink.req.complete) headers.connection = 'close';
      sink.res.writeHead(status, headers);
      sink.res.end(body);
      return;
    }
    if (sink.socket.destroyed) return;
    let head = `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}\r\n`;
    for (const [k, v] of Object.entries({ ...headers, connection: 'close' })) head += `${k}: ${v}\r\n`;
    sink.socket.end(`${head}\r\n${body}`);
  }

  return {
    server,
    waker: wake,
    queue,
    inFlight: drainer.inFlight,
    shutdown: () =>
      drainer.shutdown({
        leftover() {
          for (const t of tunnels) t.destroy();
          agent.destroy();
        },
      }),
  };
}

/** Kubelet probes say kube-probe/<version>; Knative's queue-proxy marks its own. */
function isProbe(req: http.IncomingMessage): boolean {
  return (
    'k-kubelet-probe' in req.headers ||
    'k-network-probe' in req.headers ||
    /^kube-probe\//.test(req.headers['user-agent'] ?? '')
  );
}
