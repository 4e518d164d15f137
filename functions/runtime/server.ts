import http from 'node:http';
import type { Logger } from 'pino';
import type { Config } from './config';
import { CloudEventError } from './cloudevents/errors';
import type { CloudEvent } from './cloudevents/event';
import { parseHttpMessage } from './cloudevents/http-parse';
import { encodeBatch, encodeBinary } from './cloudevents/http-encode';
import type { Dispatcher, Prepared, Result } from './dispatch';
import type { Metrics } from './metrics';
import { Problem } from './problems';

// The HTTP side (SPEC §3): POST / takes CloudEvents in binary, structured or
// batched mode; health and metrics endpoints; graceful shutdown. Everything
// about what an event means is in dispatch.ts.

export interface ServerDeps {
  config: Config;
  dispatcher: Dispatcher;
  log: Logger;
  metrics: Metrics;
  /** Begin refusing work: called once on shutdown, before in-flight requests drain. */
  onClosing?(): void;
}

export interface VirtwakeServer {
  server: http.Server;
  /** Stop taking events, let in-flight ones finish (or be answered 503), then close. */
  shutdown(): Promise<void>;
  inFlight(): number;
}

export function createServer(deps: ServerDeps): VirtwakeServer {
  const { config, dispatcher, log, metrics } = deps;
  let closing = false;
  let active = 0;
  let drained: (() => void) | undefined;

  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' || req.method === 'HEAD') {
      if (path === '/health/liveness') return plain(res, 200, 'ok');
      if (path === '/health/readiness') return closing ? plain(res, 503, 'shutting down') : plain(res, 200, 'ready');
      if (path === '/metrics') {
        metrics.registry.metrics().then((text) => {
          res.writeHead(200, { 'content-type': metrics.registry.contentType });
          res.end(text);
        }, () => plain(res, 500, 'metrics unavailable'));
        return;
      }
    }
    if (req.method === 'OPTIONS') {
      res.writeHead(204, { allow: 'POST, OPTIONS' });
      return res.end();
    }
    if (req.method !== 'POST') {
      return problem(res, new Problem('method-not-allowed', `${req.method} is not supported here; send CloudEvents with POST`), { allow: 'POST, OPTIONS' });
    }
    if (closing) {
      metrics.http(503);
      return problem(res, new Problem('unavailable', 'server is shutting down; redeliver to another instance', [], 1), { connection: 'close' });
    }
    active++;
    handleEvents(req, res).finally(() => {
      active--;
      if (closing && active === 0) drained?.();
    });
  });
  server.requestTimeout = config.bodyTimeoutMs;
  server.headersTimeout = Math.min(config.bodyTimeoutMs, 60_000);
  server.keepAliveTimeout = 5_000;

  async function handleEvents(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const started = process.hrtime.bigint();
    let events: CloudEvent[] = [];
    try {
      const encoding = req.headers['content-encoding'];
      if (encoding && encoding.toLowerCase() !== 'identity') {
        throw new Problem('not-a-cloudevent', `content-encoding ${encoding} is not supported; send the body uncompressed`);
      }
      const body = await readBody(req, config.maxBodyBytes);
      let parsed;
      try {
        parsed = parseHttpMessage(req.headersDistinct, body);
      } catch (e) {
        if (e instanceof CloudEventError) {
          throw new Problem(e.status === 415 ? 'not-a-cloudevent' : 'invalid-event', e.message, e.errors);
        }
        throw e;
      }
      events = parsed.events;
      const prepared = prepareAll(events, parsed.mode === 'batch');
      const results: Result[] = [];
      for (const p of prepared) results.push(await dispatcher.execute(p));
      for (let i = 0; i < results.length; i++) logEvent(events[i], 200, results[i], started);
      answer(res, results, parsed.mode === 'batch');
    } catch (e) {
      const p = asProblem(e, log);
      if (events.length === 0) logEvent(undefined, p.status, { outcome: p.kind }, started, p);
      for (const ev of events) logEvent(ev, p.status, { outcome: p.kind }, started, p);
      problem(res, p, req.complete ? {} : { connection: 'close' });
    }
  }

  function prepareAll(events: CloudEvent[], batch: boolean): Prepared[] {
    const out: Prepared[] = [];
    const errors: string[] = [];
    let first: Problem | undefined;
    events.forEach((ev, i) => {
      try {
        out.push(dispatcher.prepare(ev));
      } catch (e) {
        if (!(e instanceof Problem)) throw e;
        if (!batch) throw e;
        first ??= e;
        errors.push(`events[${i}] (id ${ev.id}): ${e.detail}`, ...e.errors.map((x) => `events[${i}]: ${x}`));
      }
    });
    // A batch with one bad event is refused whole: nothing in it has run yet, so nothing is lost.
    if (first) throw new Problem(first.kind, `batch refused, nothing in it was processed: ${errors.length} problem(s)`, errors);
    return out;
  }

  function answer(res: http.ServerResponse, results: Result[], batch: boolean): void {
    const replies = results.map((r) => r.reply).filter((r): r is CloudEvent => !!r);
    if (!config.reply || replies.length === 0 || (!batch && !results[0].reply)) {
      metrics.http(202);
      res.writeHead(202, { 'content-length': 0 });
      res.end();
      return;
    }
    const { headers, body } = batch ? encodeBatch(replies) : encodeBinary(replies[0]);
    metrics.http(200);
    res.writeHead(200, { ...headers, 'content-length': body.length });
    res.end(body);
  }

  function problem(res: http.ServerResponse, p: Problem, extra: Record<string, string>): void {
    if (res.headersSent) return void res.destroy();
    metrics.http(p.status);
    const body = Buffer.from(JSON.stringify(p.toJSON()));
    const headers: Record<string, string | number> = { 'content-type': 'application/problem+json', 'content-length': body.length, ...extra };
    if (p.retryAfterSeconds !== undefined) headers['retry-after'] = p.retryAfterSeconds;
    res.writeHead(p.status, headers);
    res.end(body);
  }

  function logEvent(ev: CloudEvent | undefined, status: number, r: Result, started: bigint, p?: Problem): void {
    const durationMs = Math.round(Number(process.hrtime.bigint() - started) / 1e4) / 100;
    const line = { type: ev?.type, id: ev?.id, source: ev?.source, vm: r.target, outcome: r.outcome, status, durationMs };
    if (p) log.warn({ ...line, problem: p.detail, errors: p.errors.slice(0, 10) }, 'event refused');
    else log.info(line, 'event processed');
  }

  return {
    server,
    inFlight: () => active,
    shutdown() {
      if (closing) return Promise.resolve();
      closing = true;
      deps.onClosing?.();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const idle = active === 0 ? Promise.resolve() : new Promise<void>((resolve) => (drained = resolve));
      const limit = new Promise<void>((resolve) => setTimeout(resolve, config.shutdownTimeoutMs).unref());
      return Promise.race([idle, limit]).then(() => {
        server.closeAllConnections();
        return closed;
      });
    },
  };
}

function plain(res: http.ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
  res.end(text);
}

function asProblem(e: unknown, log: Logger): Problem {
  if (e instanceof Problem) return e;
  log.error({ err: e }, 'unexpected error while handling an event');
  return new Problem('internal', 'internal error; the event will be redelivered');
}

/** Read the body, refusing it (413) as soon as it is larger than `limit`. */
function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    req.resume();
    return Promise.reject(new Problem('too-large', `body of ${declared} bytes is over the limit of ${limit} bytes`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        req.removeAllListeners('data');
        req.resume();
        reject(new Problem('too-large', `body is over the limit of ${limit} bytes`));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks, size)));
    req.on('error', (e) => reject(new Problem('invalid-event', `request body could not be read: ${e.message}`)));
    req.on('aborted', () => reject(new Problem('invalid-event', 'client closed the connection before the body was complete')));
  });
}
