import net from 'node:net';
import type { Logger } from 'pino';
import type { Config } from '../runtime/config';
import { ConfigError } from '../runtime/config';
import type { VirtualMachine } from '../runtime/kubevirt-types';
import type { KeepAwake } from './awake';
import type { Upstream } from './endpoints';
import type { ProxyMetrics } from './metrics';
import type { WakeQueue } from './queue';
import type { TcpRoute } from './routes';
import { backoffMs } from '../runtime/backoff';
import { UPSTREAM_RETRY, WakeError, Waker, type WakeTrace } from './wake';

// TCP routes (docs/tcp-wake.md): every connection to a route's port is for one
// VM. If the VM is up the connection is spliced to its Service at once.
// Otherwise it is held: accepted, what the client says first is kept (RDP,
// SQL Server and PostgreSQL clients speak first), the VM is woken by the same
// shared wake the HTTP side uses (one start however many connections and
// requests wait), and the upstream is dialled until it accepts or the wake
// timeout passes. Then the kept bytes go first and the two sockets are piped
// both ways: backpressure from pipe(), half-close because both sides allow it.
//
// A connection holds a place in the VM's queue (shared with held HTTP
// requests) while it waits; a full queue or a timeout closes it. While a
// spliced connection is open its VM stays awake (awake.ts).

/** What the proxy keeps of a held client's first bytes; beyond it the client is not read (TCP flow control). */
export const FIRST_BYTES_LIMIT = 64 * 1024;
const CONNECT_TIMEOUT_MS = 5_000;

export interface TcpProxyDeps {
  config: Config;
  log: Logger;
  routes: TcpRoute[];
  waker: Waker;
  queue: WakeQueue;
  metrics: ProxyMetrics;
  awake: KeepAwake;
  recordActivity?(vm: VirtualMachine): Promise<void>;
  /** This connection's wake brought the VM up from a sleeping tier: report it (the ladder, contract §5). */
  onWoke?(wake: WakeTrace): void;
}

export interface TcpProxy {
  /** Bind every route's port; a port that cannot be bound is a ConfigError naming the route. */
  listen(host?: string): Promise<void>;
  /** port → bound port (the same unless a test asked for 0). */
  ports(): Map<number, number>;
  /** Connections held or spliced. */
  active(): number;
  /** Stop accepting, close held connections, give spliced ones until `deadline` (epoch ms), then cut them. */
  shutdown(deadline: number): Promise<void>;
}

interface Open {
  route: TcpRoute;
  client: net.Socket;
  upstream: net.Socket;
  counted: { in: number; out: number };
}

export function tcpProxy(deps: TcpProxyDeps): TcpProxy {
  const { config, log, waker, queue, metrics } = deps;
  const servers = new Map<number, net.Server>();
  const held = new Set<AbortController>();
  const spliced = new Set<Open>();
  let closing = false;
  let idle: (() => void) | undefined;

  const vmKey = (r: TcpRoute) => `${r.vm.namespace}/${r.vm.name}`;
  const settle = () => {
    if (closing && held.size === 0 && spliced.size === 0) idle?.();
  };

  function countBytes(o: Open): void {
    const { route } = o;
    const vm = vmKey(route);
    const inNow = o.client.bytesRead;
    const outNow = o.client.bytesWritten;
    metrics.tcpBytes(route.listen.tcp, vm, 'in', inNow - o.counted.in);
    metrics.tcpBytes(route.listen.tcp, vm, 'out', outNow - o.counted.out);
    o.counted = { in: inNow, out: outNow };
  }

  async function onConnection(route: TcpRoute, client: net.Socket): Promise<void> {
    const port = route.listen.tcp;
    const vm = vmKey(route);
    const began = Date.now();
    const deadline = began + config.proxyWakeTimeoutMs;
    const finish = (result: string) => {
      metrics.tcpConnection(port, vm, result);
      metrics.tcpHoldTime(port, vm, result, (Date.now() - began) / 1000);
    };
    client.on('error', () => {});
    if (closing) {
      finish('shutting_down');
      client.destroy();
      return;
    }
    client.setNoDelay(true);
    client.setKeepAlive(true, 60_000);

    // Keep what the client says while its VM wakes, up to the limit.
    const first: Buffer[] = [];
    let kept = 0;
    let clientEnded = false;
    const onData = (chunk: Buffer) => {
      first.push(chunk);
      kept += chunk.length;
      if (kept >= FIRST_BYTES_LIMIT) client.pause();
    };
    const onEnd = () => (clientEnded = true);
    client.on('data', onData);
    client.on('end', onEnd);
    const abort = new AbortController();
    const onGone = () => abort.abort();
    client.once('close', onGone);
    held.add(abort);

    let queued = false;
    let upstream: net.Socket | undefined;
    let resolvedVm: VirtualMachine | undefined;
    let woke: WakeTrace | undefined;
    let result = 'forwarded';
    try {
      let refusals = 0;
      while (!upstream) {
        if (abort.signal.aborted) {
          result = closing ? 'shutting_down' : 'client_gone';
          break;
        }
        if (!queued && !waker.warm(route)) {
          if (!queue.enter(vm)) {
            result = 'queue_full';
            log.warn({ vm, port, capacity: queue.capacity }, 'tcp connection closed: the VM queue is full');
            break;
          }
          queued = true;
          metrics.tcpHeld(port, vm, 1);
        }
        const found = await beforeDeadline(waker.resolve(route), deadline, abort.signal);
        if (found === 'timeout') {
          result = 'wake_timeout';
          break;
        }
        if (found === 'aborted') continue;
        resolvedVm = found.vm;
        woke = found.wake ?? woke;
        upstream = await dial(found.upstream, Math.min(CONNECT_TIMEOUT_MS, deadline - Date.now()), abort.signal);
        if (upstream || abort.signal.aborted) continue;
        // Running and ready, but the guest's service is not listening yet (or the VM went away): look again.
        waker.forget(route);
        const delay = backoffMs(refusals++, UPSTREAM_RETRY);
        if (Date.now() + delay >= deadline) {
          result = 'wake_timeout';
          break;
        }
        await pause(delay, abort.signal);
      }
    } catch (e) {
      if (!(e instanceof WakeError)) throw e;
      result = e.status === 503 && !e.reason ? 'wake_timeout' : 'wake_failed';
      log.warn({ vm, port, status: e.status, problem: e.message }, 'tcp connection closed: the VM did not wake');
    } finally {
      held.delete(abort);
      client.removeListener('close', onGone);
      if (queued) {
        queue.leave(vm);
        metrics.tcpHeld(port, vm, -1);
      }
    }
    finish(result);
    if (!upstream || !resolvedVm || abort.signal.aborted) {
      if (result === 'wake_timeout')
        log.warn({ vm, port, timeoutMs: config.proxyWakeTimeoutMs }, 'tcp connection closed: wake timed out');
      upstream?.destroy();
      client.destroy();
      settle();
      return;
    }
    if (woke && !woke.reported) deps.onWoke?.(woke);
    splice(route, client, upstream, first, clientEnded, onData, onEnd, resolvedVm);
  }

  function splice(
    route: TcpRoute,
    client: net.Socket,
    upstream: net.Socket,
    first: Buffer[],
    clientEnded: boolean,
    onData: (b: Buffer) => void,
    onEnd: () => void,
    vm: VirtualMachine,
  ): void {
    const port = route.listen.tcp;
    const key = vmKey(route);
    const o: Open = { route, client, upstream, counted: { in: 0, out: 0 } };
    spliced.add(o);
    metrics.tcpOpen(port, key, 1);
    deps.recordActivity?.(vm).catch(() => {});
    // Stamped while open; the byte counters catch up on the same beat.
    const release = deps.awake.hold(key, vm, () => countBytes(o));
    upstream.setNoDelay(true);
    upstream.setKeepAlive(true, 60_000);

    client.removeListener('data', onData);
    client.removeListener('end', onEnd);
    for (const b of first) upstream.write(b);
    // Already half-closed by the client while it waited: pass that on after its bytes.
    if (clientEnded) upstream.end();
    else client.pipe(upstream);
    upstream.pipe(client);

    let failed = false;
    const fail = (side: 'client' | 'upstream') => {
      if (failed) return;
      failed = true;
      metrics.tcpError(port, key, side);
      // A reset, not a FIN: the peer must not mistake a cut-off stream for a complete one.
      if (!client.destroyed) client.resetAndDestroy();
      if (!upstream.destroyed) upstream.resetAndDestroy();
    };
    upstream.on('error', () => fail('upstream'));
    client.on('error', () => fail('client'));
    // A side closed with both directions done is the normal end; its peer ends by itself once its pipe drains.
    upstream.on('close', (hadError) => hadError && fail('upstream'));
    client.on('close', (hadError) => {
      if (hadError) fail('client');
      // The client is gone: nobody reads what the upstream still sends.
      else if (!upstream.destroyed && !upstream.readableEnded) upstream.destroy();
    });
    let done = 0;
    const closed = () => {
      if (++done < 2) return;
      countBytes(o);
      spliced.delete(o);
      metrics.tcpOpen(port, key, -1);
      release();
      settle();
    };
    client.once('close', closed);
    upstream.once('close', closed);
  }

  return {
    async listen(host) {
      for (const route of deps.routes) {
        const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: false }, (socket) => {
          onConnection(route, socket).catch((err) => {
            log.error({ err, port: route.listen.tcp }, 'tcp proxy: unexpected error');
            socket.destroy();
          });
        });
        try {
          await new Promise<void>((resolve, reject) => {
            server.once('error', reject);
            server.listen(route.listen.tcp, host, () => {
              server.removeListener('error', reject);
              resolve();
            });
          });
        } catch (e) {
          await Promise.all([...servers.values()].map((s) => new Promise((r) => s.close(r))));
          servers.clear();
          const code = (e as NodeJS.ErrnoException).code;
          const why =
            code === 'EADDRINUSE'
              ? `port ${route.listen.tcp} is already in use`
              : code === 'EACCES'
                ? `not allowed to listen on port ${route.listen.tcp} (ports below 1024 need NET_BIND_SERVICE)`
                : `cannot listen on port ${route.listen.tcp}: ${(e as Error).message}`;
          throw new ConfigError(`VIRTWAKE_PROXY_ROUTES: ${route.label}: ${why}`);
        }
        server.on('error', (err) => log.error({ err, port: route.listen.tcp }, 'tcp listener failed'));
        servers.set(route.listen.tcp, server);
        log.info({ port: route.listen.tcp, vm: vmKey(route) }, 'tcp route listening');
      }
    },
    ports() {
      const out = new Map<number, number>();
      for (const [p, s] of servers) out.set(p, (s.address() as net.AddressInfo | null)?.port ?? p);
      return out;
    },
    active: () => held.size + spliced.size,
    async shutdown(deadline) {
      if (closing) return;
      closing = true;
      for (const s of servers.values()) s.close();
      // A held client is better off retrying against another replica at once.
      for (const a of held) a.abort();
      if (held.size || spliced.size) {
        await Promise.race([
          new Promise<void>((r) => (idle = r)),
          new Promise<void>((r) => setTimeout(r, Math.max(0, deadline - Date.now())).unref()),
        ]);
      }
      for (const o of spliced) {
        o.client.destroy();
        o.upstream.destroy();
      }
    },
  };
}

/** The waker's answer, or why we stopped waiting for it. */
function beforeDeadline<T>(p: Promise<T>, deadline: number, signal: AbortSignal): Promise<T | 'timeout' | 'aborted'> {
  if (signal.aborted) return Promise.resolve('aborted');
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done('timeout'), Math.max(0, deadline - Date.now()));
    const onAbort = () => done('aborted');
    signal.addEventListener('abort', onAbort, { once: true });
    function done(v: T | 'timeout' | 'aborted') {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      resolve(v);
    }
    p.then(done, (e) => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      reject(e);
    });
  });
}

/** A connected socket, or undefined when refused, timed out or abandoned. */
function dial(to: Upstream, timeoutMs: number, signal: AbortSignal): Promise<net.Socket | undefined> {
  if (timeoutMs <= 0 || signal.aborted) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    const sock = net.connect({ host: to.host, port: to.port, allowHalfOpen: true });
    const give = (v: net.Socket | undefined) => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      sock.removeListener('error', onError);
      // Until the splice listens for errors itself, one must not crash the process.
      sock.on('error', () => {});
      if (!v) sock.destroy();
      resolve(v);
    };
    const onError = () => give(undefined);
    const onAbort = () => give(undefined);
    const timer = setTimeout(() => give(undefined), timeoutMs);
    sock.once('error', onError);
    sock.once('connect', () => give(sock));
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    const onAbort = () => done();
    signal.addEventListener('abort', onAbort, { once: true });
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', onAbort);
      resolve();
    }
  });
}
