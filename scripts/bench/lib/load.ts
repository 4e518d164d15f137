import http from 'node:http';
import https from 'node:https';
import { percentile } from './stats';
import type { Shot } from './proc';

// A small closed-loop load generator: `concurrency` lanes over keep-alive
// connections, each sending its next request when the previous answer has
// fully arrived, until `maxRequests` are done or `maxMs` has passed.
// Loopback only; latency is measured per request with hrtime.

export interface Endpoint {
  port: number;
  /** Default http. */
  tls?: { ca?: string };
}

export interface LoadOptions {
  endpoint: Endpoint;
  concurrency: number;
  maxRequests: number;
  maxMs: number;
  /** Reuse these keep-alive connections (the caller destroys the agent); default: a fresh agent, destroyed at the end. */
  agent?: http.Agent;
  /** The i-th operation: one request, or several sent one after the other (timed together). Called on the hot path: return prebuilt objects. */
  shot(i: number): Shot | readonly Shot[];
}

export interface LoadResult {
  done: number;
  elapsedMs: number;
  perSecond: number;
  p50: number;
  p99: number;
  statuses: Record<string, number>;
  errors: number;
}

export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const isTls = !!o.endpoint.tls;
  const agent = o.agent ?? newAgent(o.endpoint, o.concurrency);
  const transport = isTls ? https : http;
  const latencies = new Float64Array(o.maxRequests);
  const statuses: Record<string, number> = {};
  let next = 0;
  let done = 0;
  let errors = 0;
  const started = process.hrtime.bigint();
  const deadline = Date.now() + o.maxMs;

  const one = (shot: Shot): Promise<number> =>
    new Promise((resolve) => {
      const req = transport.request(
        {
          host: '127.0.0.1',
          port: o.endpoint.port,
          method: shot.method ?? 'POST',
          path: shot.path ?? '/',
          headers: shot.headers,
          agent,
        },
        (res) => {
          res.on('data', noop);
          res.on('end', () => resolve(res.statusCode ?? 0));
          res.on('error', () => resolve(-1));
        },
      );
      req.on('error', () => resolve(-1));
      req.end(shot.body);
    });

  async function lane(): Promise<void> {
    while (next < o.maxRequests && Date.now() < deadline) {
      const i = next++;
      const t0 = process.hrtime.bigint();
      const op = o.shot(i);
      let status: number;
      if (Array.isArray(op)) {
        status = 0;
        for (const s of op as readonly Shot[]) if ((status = await one(s)) < 0) break;
      } else status = await one(op as Shot);
      const t = Number(process.hrtime.bigint() - t0) / 1e6;
      if (status < 0) errors++;
      statuses[status] = (statuses[status] ?? 0) + 1;
      latencies[done++] = t;
    }
  }

  await Promise.all(Array.from({ length: o.concurrency }, lane));
  const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
  if (!o.agent) agent.destroy();
  return {
    done,
    elapsedMs,
    perSecond: (done / elapsedMs) * 1000,
    p50: percentile(latencies, done, 50),
    p99: percentile(latencies, done, 99),
    statuses,
    errors,
  };
}

/** A keep-alive agent for `endpoint` with room for `concurrency` connections. */
export function newAgent(endpoint: Endpoint, concurrency: number): http.Agent {
  const opts = { keepAlive: true, maxSockets: concurrency, maxFreeSockets: concurrency };
  return endpoint.tls ? new https.Agent({ ...opts, ca: endpoint.tls.ca }) : new http.Agent(opts);
}

function noop(): void {}
