import http from 'node:http';
import type { Duplex } from 'node:stream';
import type { KubeConnection } from '../runtime/kube/connection';
import type { Runtime } from '../runtime/runtime';
import type { VirtwakeServer } from '../runtime/server';
import { keepAwake } from './awake';
import { endpointSlices } from './endpoints';
import { forwardHttp, forwardUpgrade, ForwardResult, upstreamAgent } from './forward';
import { wakeQueue, WakeQueue } from './queue';
import { proxyMetrics } from './metrics';
import { Route, RouteTable, upstreamPath } from './routes';
import { RequestTarget, requestTarget } from './target';
import { tcpProxy, TcpProxy } from './tcp';
import { Resolved, UPSTREAM_RETRY, waker, WakeError, Waker, WakeTrace } from './wake';
import { reportWake } from '../ladder';
import { backoffMs } from '../runtime/backoff';
import { sleep } from '../runtime/async';
import { serveOperations } from '../runtime/operations';
import { capText, MAX_ERROR_BODY_BYTES } from '../runtime/problems';
import { drain } from '../runtime/drain';

// The wake proxy (contract §5): an HTTP reverse proxy in front of VMs' Services.
// A request is routed to its VM by host or path prefix; if the VM is up it is
// forwarded at once, otherwise it takes a place in the VM's bounded queue
// while the VM is started, and is forwarded once the VM's Service has a ready
// endpoint. A full queue or a wake past its timeout is answered 503 with
// Retry-After. Every request counts as activity on its VM (throttled).
//
// Routing reads the request as the upstream will (target.ts): dot segments
// resolved, an absolute-form authority before Host, K-Original-Host (a Knative
// DomainMapping) before Host. The proxy's own endpoints (/health/readiness,
// /health/liveness, /metrics) are answered by the proxy and never wake a VM,
// unless the request names a host route (then the path is the VM's own).
// TCP routes (tcp.ts) share the wake and the per-VM queue.

export interface WakeProxyDeps {
  runtime: Runtime;
  connection: KubeConnection;
  routes: RouteTable;
}

export interface WakeProxy extends VirtwakeServer {
  waker: Waker;
  queue: WakeQueue;
  tcp: TcpProxy;
}

const OWN_PATHS = new Set(['/health/liveness', '/health/readiness', '/metrics']);
/** A held request is answered by VIRTWAKE_PROXY_WAKE_TIMEOUT plus this, even when an API call hangs. */
const WAKE_ANSWER_MARGIN_MS = 1_000;

type Sink =
  | { kind: 'http'; req: http.IncomingMessage; res: http.ServerResponse }
  | { kind: 'upgrade'; req: http.IncomingMessage; socket: Duplex; head: Buffer };

export function createWakeProxy(deps: WakeProxyDeps): WakeProxy {
  const { runtime, routes } = deps;
  const { config, log, metrics } = runtime;
  const queue = wakeQueue(config.proxyQueueSize);
  const proxied = proxyMetrics(metrics.registry);
  const wake = waker({
    config,
    kubevirt: runtime.kubevirt,
    endpoints: endpointSlices(deps.connection),
    signal: runtime.signal,
    onWake: (vm, outcome, ms) => {
      metrics.action('wake-proxy.wake', outcome);
      proxied.wake(outcome, ms / 1000);
      log.info({ vm, outcome, durationMs: ms }, 'wake finished');
    },
  });
  const tunnels = new Set<Duplex>();

  /** The first byte of an answer after a wake: the wake is complete; report it once (metrics, ledger, K_SINK). */
  function upstreamAccepted(w: WakeTrace): void {
    if (w.phases.upstream === undefined && w.since !== undefined)
      w.phases.upstream = Number(process.hrtime.bigint() - w.since) / 1e9;
  }

  function wokeUp(w: WakeTrace, firstByte = true): void {
    if (w.reported) return;
    upstreamAccepted(w);
    w.reported = true;
    if (firstByte && w.since !== undefined) w.phases.first_byte = Number(process.hrtime.bigint() - w.since) / 1e9;
    // Reported once the VM's own status has caught up too, so the `running` phase is in it.
    void (w.running ?? Promise.resolve()).then(() =>
      reportWake(runtime, w.vm, { tier: w.tier, trigger: 'proxy', phases: w.phases }),
    );
  }
  /** Keep-alive connections to upstreams, this proxy's own: closed on shutdown. */
  const agent = upstreamAgent();

  // Long downloads, websockets and TCP sessions keep their VM awake for as long as they last.
  const awake = keepAwake(runtime.recordActivity, config.proxyActivityIntervalMs);
  const tcp = tcpProxy({
    config,
    log,
    routes: routes.tcp,
    waker: wake,
    queue,
    metrics: proxied,
    awake,
    recordActivity: runtime.recordActivity,
    // A TCP client may wait for the server to speak first: the wake ends when the connection is spliced.
    onWoke: (w) => wokeUp(w, false),
  });

  const server = http.createServer((req, res) => {
    const target = requestTarget(req.url, req.headers);
    const route = routes.match(target.hosts, target.path);
    const path = target.path.split('?')[0];
    if (OWN_PATHS.has(path) && (!route?.host || isProbe(req))) {
      if ((req.method === 'GET' || req.method === 'HEAD') && serveOwn(path, res)) return;
      res.setHeader('allow', 'GET, HEAD');
      return reply({ kind: 'http', req, res }, 405, `${path} is the proxy's own endpoint; use GET`);
    }
    if (!route) return reply({ kind: 'http', req, res }, 404, notFound(req, target));
    track(handle(route, target, { kind: 'http', req, res }));
  });
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    const target = requestTarget(req.url, req.headers);
    const route = routes.match(target.hosts, target.path);
    if (!route) return reply({ kind: 'upgrade', req, socket, head }, 404, notFound(req, target));
    track(handle(route, target, { kind: 'upgrade', req, socket, head }));
  });
  // A held request's body waits unread while its VM boots; the wake timeout bounds that, not the server.
  server.requestTimeout = 0;
  server.keepAliveTimeout = 5_000;
  const drainer = drain(server, config.shutdownTimeoutMs);

  function serveOwn(path: string, res: http.ServerResponse): boolean {
    return serveOperations(res, path, drainer.closing(), metrics, deps.connection.problem, deps.connection.refusals);
  }

  function notFound(req: http.IncomingMessage, target: RequestTarget): string {
    return `no virtwake route for host ${target.hosts.join(' or ') || '(none)'} and path ${target.path}${
      target.path !== req.url ? ` (sent as ${req.url})` : ''
    }`;
  }

  function track(p: Promise<void>): void {
    drainer.track(p.catch((err) => log.error({ err }, 'wake proxy: unexpected error')));
  }

  async function handle(route: Route, target: RequestTarget, sink: Sink): Promise<void> {
    if (drainer.closing()) return reply(sink, 503, 'virtwake wake-proxy is shutting down; retry', 1);
    const vm = `${route.vm.namespace}/${route.vm.name}`;
    const path = upstreamPath(route, target.path);
    const host = target.forwardHost;
    // A held request is never answered 502: the upstream's answer, or 503 once the wake timeout has passed.
    const deadline = Date.now() + config.proxyWakeTimeoutMs;
    // The wake this request waited for, kept across refused connects (a later look finds the VM up).
    let w: WakeTrace | undefined;
    for (let refusals = 0; ; refusals++) {
      const resolved = await hold(route, vm, sink);
      if (!resolved) return;
      // Nobody waits for the answer any more: never forwarded, so it holds no upstream socket.
      if (clientGone(sink)) {
        metrics.action('wake-proxy.request', 'dropped', 'ClientGone');
        return;
      }
      runtime.recordActivity?.(resolved.vm).catch(() => {});
      const release = awake.hold(vm, resolved.vm);
      w = w ?? resolved.wake;
      const trace = w && !w.reported ? w : undefined;
      const hooks = trace ? { connected: () => upstreamAccepted(trace), firstByte: () => wokeUp(trace) } : undefined;
      const result: ForwardResult =
        sink.kind === 'http'
          ? await forwardHttp(sink.req, sink.res, resolved.upstream, path, agent, host, hooks)
          : await forwardUpgrade(sink.req, sink.socket, sink.head, resolved.upstream, path, host, hooks);
      if (result === 'done' && sink.kind === 'upgrade' && !sink.socket.destroyed) {
        // Tunnels outlive the request; shutdown has to end them itself.
        tunnels.add(sink.socket);
        sink.socket.once('close', () => {
          tunnels.delete(sink.socket);
          release();
        });
      } else {
        release();
      }
      if (result === 'done') return;
      // Refused or not connected in time (nothing of the request was sent): the guest's service does not
      // listen yet (ready is the pod's readiness), or the VM was stopped since. Look again, and try again.
      wake.forget(route);
      const delay = backoffMs(refusals, UPSTREAM_RETRY);
      if (Date.now() + delay >= deadline || drainer.closing() || clientGone(sink)) break;
      await sleep(delay);
    }
    reply(
      sink,
      503,
      `VM ${vm} is up but its Service ${route.service.name} did not accept a connection within ${config.proxyWakeTimeoutMs / 1000}s (VIRTWAKE_PROXY_WAKE_TIMEOUT); the guest may still be booting (a readinessProbe on the VM makes it ready only once it serves)`,
      config.proxyRetryAfterSeconds,
    );
  }

  function clientGone(sink: Sink): boolean {
    return sink.kind === 'http' ? sink.res.destroyed : sink.socket.destroyed;
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
    // A client that gives up frees its place at once, not when the wake ends, and is let go of
    // at once (so a shutdown does not wait for it); the wake itself goes on for the others.
    let left = false;
    let onGone: () => void = () => {};
    const leave = () => {
      if (left) return;
      left = true;
      queue.leave(vm);
      onGone();
    };
    const gone = sink.kind === 'http' ? sink.res : sink.socket;
    gone.once('close', leave);
    if (clientGone(sink)) leave();
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        wake.resolve(route),
        new Promise<undefined>((resolve) => (onGone = () => resolve(undefined))),
        // The shared wake began before this request came; its deadline is the wake's own. This one is the
        // request's: answered by the configured wake timeout (and a moment), whatever the API does.
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(wake.timeoutError(route)), config.proxyWakeTimeoutMs + WAKE_ANSWER_MARGIN_MS);
        }),
      ]);
    } catch (e) {
      if (!(e instanceof WakeError)) throw e;
      metrics.action('wake-proxy.request', 'rejected', e.reason ?? (e.status === 503 ? 'WakeTimeout' : 'WakeFailed'));
      log.warn({ vm, status: e.status, problem: e.message }, 'request not forwarded');
      reply(sink, e.status, e.message, e.retryAfterSeconds);
      return undefined;
    } finally {
      clearTimeout(timer);
      gone.removeListener('close', leave);
      onGone = () => {};
      leave();
    }
  }

  function reply(sink: Sink, status: number, message: string, retryAfter?: number): void {
    metrics.http(status);
    const full = `virtwake wake-proxy: ${message}`;
    // The same cap as every other error body (problems.ts); a long one is logged whole.
    const text = capText(full, MAX_ERROR_BODY_BYTES - 1);
    if (text !== full) log.warn({ status, problem: full }, 'error answer cut to fit its size limit');
    const body = `${text}\n`;
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
    tcp,
    inFlight: () => drainer.inFlight() + tcp.active(),
    shutdown: () => {
      let tcpDone: Promise<void> = Promise.resolve();
      return drainer.shutdown({
        onClosing() {
          tcpDone = tcp.shutdown(Date.now() + config.shutdownTimeoutMs);
        },
        async leftover() {
          for (const t of tunnels) t.destroy();
          await tcpDone;
          awake.stop();
          agent.destroy();
        },
      });
    },
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
