import http from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Upstream } from './endpoints';

// Passing a request on once its VM is up: bodies are piped both ways (nothing
// is buffered, so uploads and streamed answers of any size go through), and
// upgrades (websockets) become a raw socket tunnel.
//
// The request body is not touched until the upstream connection is open. A
// refused connection therefore loses nothing, and the caller may look the VM
// up again and retry (the VM may have been stopped since the upstream was
// cached).

export type ForwardResult = 'done' | 'refused';

/** Moments of a forward the sleep ladder times after a wake (contract §5). */
export interface ForwardHooks {
  /** The upstream accepted the connection. */
  connected?(): void;
  /** The first byte of the upstream's answer arrived. */
  firstByte?(): void;
}

const CONNECT_TIMEOUT_MS = 5_000;

/** RFC 9110 §7.6.1: meaningful for one connection only, never forwarded. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'proxy-authenticate',
  'proxy-authorization',
]);

/** Keep-alive connections to upstreams; each proxy owns one and destroys it on shutdown. */
export function upstreamAgent(): http.Agent {
  return new http.Agent({ keepAlive: true, maxSockets: 256 });
}

export function forwardHttp(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  upstream: Upstream,
  path: string,
  agent: http.Agent,
  host?: string,
  hooks: ForwardHooks = {},
): Promise<ForwardResult> {
  return new Promise((resolve) => {
    // The client is gone already: nothing to forward, and no upstream socket to tie up.
    if (res.destroyed || req.destroyed) return resolve('done');
    let connected = false;
    const headers = requestHeaders(req, false, host);
    // Node frames the body itself; a chunked request stays chunked only if we say so.
    if (/chunked/i.test(String(req.headers['transfer-encoding'] ?? ''))) headers.push('transfer-encoding', 'chunked');
    const up = http.request({
      host: upstream.host,
      port: upstream.port,
      method: req.method,
      path,
      headers,
      agent,
      setHost: false,
    });
    const timer = setTimeout(() => !connected && up.destroy(new Error('connect timeout')), CONNECT_TIMEOUT_MS);
    up.on('socket', (sock: net.Socket) => {
      const go = () => {
        connected = true;
        clearTimeout(timer);
        hooks.connected?.();
        req.pipe(up);
      };
      if (sock.connecting) sock.once('connect', go);
      else go();
    });
    up.on('response', (answer) => {
      hooks.firstByte?.();
      res.writeHead(answer.statusCode ?? 502, answer.statusMessage, responseHeaders(answer.rawHeaders));
      answer.pipe(res);
      answer.on('error', () => res.destroy());
      answer.on('end', () => resolve('done'));
    });
    up.on('error', (err) => {
      clearTimeout(timer);
      if (!connected) return resolve('refused');
      if (!res.headersSent) {
        const body = `virtwake wake-proxy: the upstream failed: ${err.message}\n`;
        res.writeHead(502, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      } else {
        res.destroy();
      }
      resolve('done');
    });
    // The client went away (or its body broke off): stop the upstream work too, freeing its socket.
    res.on('close', () => {
      if (!res.writableFinished) up.destroy();
      resolve('done');
    });
    req.on('error', () => up.destroy());
  });
}

/** Tunnel an upgrade request (websocket and the like) to the upstream, bytes both ways. */
export function forwardUpgrade(
  req: http.IncomingMessage,
  client: Duplex,
  head: Buffer,
  upstream: Upstream,
  path: string,
  host?: string,
  hooks: ForwardHooks = {},
): Promise<ForwardResult> {
  return new Promise((resolve) => {
    let connected = false;
    const sock = net.connect({ host: upstream.host, port: upstream.port });
    const timer = setTimeout(() => !connected && sock.destroy(new Error('connect timeout')), CONNECT_TIMEOUT_MS);
    sock.once('connect', () => {
      connected = true;
      clearTimeout(timer);
      hooks.connected?.();
      const h = requestHeaders(req, true, host);
      let text = `${req.method} ${path} HTTP/1.1\r\n`;
      for (let i = 0; i < h.length; i += 2) text += `${h[i]}: ${h[i + 1]}\r\n`;
      sock.write(`${text}\r\n`);
      if (head.length) sock.write(head);
      if (hooks.firstByte) sock.once('data', hooks.firstByte);
      sock.pipe(client);
      client.pipe(sock);
      resolve('done');
    });
    sock.on('error', () => {
      clearTimeout(timer);
      if (!connected) resolve('refused');
      else client.destroy();
    });
    client.on('error', () => sock.destroy());
    client.on('close', () => sock.destroy());
    sock.on('close', () => client.destroy());
  });
}

/**
 * The client's headers minus hop-by-hop ones (kept for an upgrade), plus X-Forwarded-*.
 * `host`: the host the client addressed when Host does not say it (absolute-form, K-Original-Host).
 */
function requestHeaders(req: http.IncomingMessage, upgrade: boolean, host?: string): string[] {
  const drop = hopByHop(req.headers.connection);
  const out: string[] = [];
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i].toLowerCase();
    if (k.startsWith('x-forwarded-')) continue;
    if (drop.has(k) && !(upgrade && (k === 'connection' || k === 'upgrade'))) continue;
    if (k === 'host' && host) continue;
    out.push(raw[i], raw[i + 1]);
  }
  if (host) out.unshift('Host', host);
  const peer = req.socket.remoteAddress ?? '';
  const prior = req.headers['x-forwarded-for'];
  out.push('X-Forwarded-For', prior ? `${prior}, ${peer}` : peer);
  const asked = host ?? req.headers.host;
  if (asked) out.push('X-Forwarded-Host', String(req.headers['x-forwarded-host'] ?? asked));
  out.push('X-Forwarded-Proto', String(req.headers['x-forwarded-proto'] ?? 'http'));
  return out;
}

function responseHeaders(raw: string[]): string[] {
  const out: string[] = [];
  const conn = raw.reduce(
    (acc, v, i) => (i % 2 === 0 && v.toLowerCase() === 'connection' ? `${acc},${raw[i + 1]}` : acc),
    '',
  );
  const drop = hopByHop(conn);
  for (let i = 0; i < raw.length; i += 2) if (!drop.has(raw[i].toLowerCase())) out.push(raw[i], raw[i + 1]);
  return out;
}

function hopByHop(connection: string | string[] | undefined): Set<string> {
  const drop = new Set(HOP_BY_HOP);
  for (const t of String(connection ?? '').split(',')) if (t.trim()) drop.add(t.trim().toLowerCase());
  return drop;
}
