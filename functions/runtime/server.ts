import http from 'node:http';
import type { Logger } from 'pino';
import type { Config } from './config';
import { CloudEventError } from './cloudevents/errors';
import type { CloudEvent } from './cloudevents/event';
import { parseHttpMessage } from './cloudevents/http-parse';
import { encodeBatch, encodeBinary } from './cloudevents/http-encode';
import type { Dispatcher, Prepared, Result } from './dispatch';
import type { Metrics } from './metrics';
import { Problem, problemBody, problemOf } from './problems';
import { serveOperations } from './operations';
import { drain } from './drain';
import { Abandoned } from './errors';
import { inPool } from './async';

// The HTTP side (contract §3): POST / takes CloudEvents in binary, structured or
// batched mode; health and metrics endpoints; graceful shutdown. Everything
// about what an event means is in dispatch.ts.

export interface ServerDeps {
  config: Config;
  dispatcher: Dispatcher;
  log: Logger;
  metrics: Metrics;
  /** Begin refusing work: called once on shutdown, before in-flight requests drain. */
  onClosing?(): void;
  /** Why the API cannot be reached with this instance's credentials (readiness fails then); undefined when fine. */
  problem?(): string | undefined;
  /** What this instance is refused although it can reach the API (watches): readiness names it and stays up. */
  refusals?(): string[];
}

export interface VirtwakeServer {
  server: http.Server;
  /** Stop taking events, let in-flight ones finish (or be answered 503), then close. */
  shutdown(): Promise<void>;
  inFlight(): number;
}

/** Most entries of a problem's `errors` one log line carries (the count is logged too). */
const LOGGED_ERRORS = 100;

export function createServer(deps: ServerDeps): VirtwakeServer {
  const { config, dispatcher, log, metrics } = deps;
  /** Event requests not yet answered, so a shutdown that runs out of time can still answer them 503. */
  const open = new Set<http.ServerResponse>();

  // Node enforces requestTimeout/headersTimeout only when it sweeps its connections (every 30 s by
  // default), so a slow client could hold a connection far longer than the limits say.
  const server = http.createServer(
    { connectionsCheckingInterval: Math.min(1000, Math.max(50, Math.floor(config.bodyTimeoutMs / 4))) },
    (req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (
        (req.method === 'GET' || req.method === 'HEAD') &&
        serveOperations(res, path, drainer.closing(), metrics, deps.problem, deps.refusals)
      )
        return;
      if (req.method === 'OPTIONS') {
        res.writeHead(204, { allow: 'POST, OPTIONS' });
        return res.end();
      }
      if (req.method !== 'POST') {
        return problem(
          res,
          new Problem('method-not-allowed', `${req.method} is not supported here; send CloudEvents with POST`),
          { allow: 'POST, OPTIONS' },
        );
      }
      if (drainer.closing()) {
        metrics.http(503);
        return problem(
          res,
          new Problem('unavailable', 'server is shutting down; redeliver to another instance', [], 1),
          { connection: 'close' },
        );
      }
      open.add(res);
      drainer.track(handleEvents(req, res).finally(() => open.delete(res)));
    },
  );
  const drainer = drain(server, config.shutdownTimeoutMs);
  // readBody answers a slow body with 408 after bodyTimeoutMs; Node's own limit is the backstop.
  server.requestTimeout = config.bodyTimeoutMs * 2;
  server.headersTimeout = Math.min(config.bodyTimeoutMs, 60_000);
  server.keepAliveTimeout = 5_000;

  async function handleEvents(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const started = process.hrtime.bigint();
    let events: CloudEvent[] = [];
    try {
      const encoding = req.headers['content-encoding'];
      if (encoding && encoding.toLowerCase() !== 'identity') {
        throw new Problem(
          'not-a-cloudevent',
          `content-encoding ${encoding} is not supported; send the body uncompressed`,
        );
      }
      const body = await readBody(req, config.maxBodyBytes, config.bodyTimeoutMs);
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
      if (parsed.mode === 'batch' && events.length > config.maxBatch) {
        throw new Problem(
          'too-large',
          `batch of ${events.length} events is over the limit of ${config.maxBatch} events per batch (VIRTWAKE_MAX_BATCH); nothing in it was processed, send it in smaller batches`,
        );
      }
      const prepared = prepareAll(events, parsed.mode === 'batch');
      // A client that hangs up stops its request: nothing not yet started is started.
      const gone = new AbortController();
      res.once('close', () => {
        if (!res.writableFinished) gone.abort(new Abandoned());
      });
      const scope = { signal: gone.signal, vmsLeft: config.maxVmsPerRequest };
      const results: Result[] = new Array(prepared.length);
      // Bounded concurrency: a batch of waits finishes in about the longest wait, not their sum.
      await inPool(prepared, config.batchConcurrency, async (p, i) => {
        results[i] = await dispatcher.execute(p, scope);
      });
      for (let i = 0; i < results.length; i++) logEvent(events[i], 200, results[i], started);
      answer(res, results, parsed.mode === 'batch');
    } catch (e) {
      if (e instanceof Abandoned) {
        log.info(
          { events: events.length, ids: events.slice(0, 10).map((ev) => ev.id) },
          'client gone; work not yet started was dropped',
        );
        return;
      }
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
        const p = problemOf(e);
        if (!p || !batch) throw e;
        first ??= p;
        errors.push(`events[${i}] (id ${ev.id}): ${p.detail}`, ...p.errors.map((x) => `events[${i}]: ${x}`));
      }
    });
    // A batch with one bad event is refused whole: nothing in it has run yet, so nothing is lost.
    if (first)
      throw new Problem(first.kind, `batch refused, nothing in it was processed: ${errors.length} problem(s)`, errors);
    return out;
  }

  function answer(res: http.ServerResponse, results: Result[], batch: boolean): void {
    // Already answered 503 by a shutdown that ran out of time: the redelivery will find this work done.
    if (res.headersSent) return;
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
    // Capped (problems.ts): the full detail and errors are in the log line of this event.
    const body = problemBody(p);
    const headers: Record<string, string | number> = {
      'content-type': 'application/problem+json',
      'content-length': body.length,
      ...extra,
    };
    if (p.retryAfterSeconds !== undefined) headers['retry-after'] = p.retryAfterSeconds;
    res.writeHead(p.status, headers);
    res.end(body);
  }

  function logEvent(ev: CloudEvent | undefined, status: number, r: Result, started: bigint, p?: Problem): void {
    const durationMs = Math.round(Number(process.hrtime.bigint() - started) / 1e4) / 100;
    const line = {
      type: ev?.type,
      id: ev?.id,
      source: ev?.source,
      vm: r.target,
      outcome: r.outcome,
      status,
      durationMs,
    };
    // The answer's body is capped (problemBody); this line keeps the whole detail, and errors up to a bound
    // that a hostile body failing validation a hundred thousand times cannot turn into megabytes.
    if (p)
      log.warn(
        { ...line, problem: p.detail, errors: p.errors.slice(0, LOGGED_ERRORS), errorCount: p.errors.length },
        'event refused',
      );
    else log.info(line, 'event processed');
  }

  /**
   * Out of shutdown time: every event still in flight is answered 503 so Knative
   * redelivers it (every command is idempotent, contract §6) instead of seeing the
   * connection drop. Waits (briefly) until those answers are written.
   */
  function answerStragglers(): Promise<void> {
    const pending = [...open].filter((res) => !res.headersSent);
    for (const res of pending) {
      log.warn({ status: 503 }, 'event still in flight at the shutdown limit; answered 503 for redelivery');
      problem(
        res,
        new Problem(
          'unavailable',
          `server shut down before this event was done (VIRTWAKE_SHUTDOWN_TIMEOUT_MS=${config.shutdownTimeoutMs}); redeliver`,
          [],
          1,
        ),
        { connection: 'close' },
      );
    }
    const written = pending.map((res) =>
      res.writableFinished
        ? undefined
        : new Promise<void>((resolve) => res.once('finish', resolve).once('close', resolve)),
    );
    return Promise.race([
      Promise.all(written).then(() => undefined),
      new Promise<void>((resolve) => setTimeout(resolve, 1000).unref()),
    ]);
  }

  return {
    server,
    inFlight: drainer.inFlight,
    shutdown: () => drainer.shutdown({ onClosing: deps.onClosing, leftover: answerStragglers }),
  };
}

function asProblem(e: unknown, log: Logger): Problem {
  const p = problemOf(e);
  if (p) return p;
  log.error({ err: e }, 'unexpected error while handling an event');
  return new Problem('internal', 'internal error; the event will be redelivered');
}

/**
 * Read the body, refusing it (413) as soon as it is larger than `limit`, and
 * (408) when it has not all arrived within `timeoutMs` of the headers.
 */
function readBody(req: http.IncomingMessage, limit: number, timeoutMs: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    req.resume();
    return Promise.reject(new Problem('too-large', `body of ${declared} bytes is over the limit of ${limit} bytes`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const timer = setTimeout(() => {
      req.removeAllListeners('data');
      req.resume();
      reject(
        new Problem(
          'request-timeout',
          `request body not received within ${timeoutMs} ms (${size} bytes arrived); send it at once`,
        ),
      );
    }, timeoutMs);
    req.on('close', () => clearTimeout(timer));
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        clearTimeout(timer);
        req.removeAllListeners('data');
        req.resume();
        reject(new Problem('too-large', `body is over the limit of ${limit} bytes`));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks, size));
    });
    req.on('error', (e) => reject(new Problem('invalid-event', `request body could not be read: ${e.message}`)));
    req.on('aborted', () =>
      reject(new Problem('invalid-event', 'client closed the connection before the body was complete')),
    );
  });
}
