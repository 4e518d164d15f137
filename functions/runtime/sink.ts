import http from 'node:http';
import https from 'node:https';
import type { CloudEvent } from './cloudevents/event';
import { encodeBinary } from './cloudevents/http-encode';
import { sleep } from './async';

// contract §2: result events that one delivery cannot carry as its single reply
// (a deadline passed on a tick, a second result from one change event) go to
// the Broker through K_SINK, the address a SinkBinding injects
// (knative/sinkbinding.yaml). Binary mode, like every reply virtwake sends.
// Each event is tried a few times with a growing pause; what still fails is
// reported to the caller, which keeps its record and tries again on a later
// tick. Result ids are deterministic, so a repeat is recognisable downstream.

export interface Sink {
  /** Where events go (for the log); undefined when K_SINK is not set. */
  readonly url?: string;
  /** Sends each event; resolves with the ones that could not be delivered. */
  send(events: CloudEvent[]): Promise<CloudEvent[]>;
}

export interface SinkOptions {
  attempts?: number;
  timeoutMs?: number;
  baseDelayMs?: number;
}

export function sinkFrom(url: string | undefined, opts: SinkOptions = {}): Sink {
  if (!url) return { send: async (events) => events };
  const target = new URL(url);
  const attempts = opts.attempts ?? 3;
  const timeoutMs = opts.timeoutMs ?? 5_000;
  const baseDelayMs = opts.baseDelayMs ?? 200;
  return {
    url,
    async send(events) {
      const failed: CloudEvent[] = [];
      for (const event of events) {
        let ok = false;
        for (let attempt = 1; attempt <= attempts && !ok; attempt++) {
          const status = await post(target, event, timeoutMs).catch(() => 0);
          ok = status >= 200 && status < 300;
          // 4xx other than 408/429 will not change by trying again.
          if (!ok && status >= 400 && status < 500 && status !== 408 && status !== 429) break;
          if (!ok && attempt < attempts) await sleep(baseDelayMs * 2 ** (attempt - 1));
        }
        if (!ok) failed.push(event);
      }
      return failed;
    },
  };
}

function post(url: URL, event: CloudEvent, timeoutMs: number): Promise<number> {
  const { headers, body } = encodeBinary(event);
  const client = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.request(
      url,
      { method: 'POST', headers: { ...headers, 'content-length': String(body.length) }, timeout: timeoutMs },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`K_SINK did not answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}
