import type { Logger } from 'pino';
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

// Events virtwake sends on its own account rather than as a request's result
// (io.virtwake.vm.woke from whichever process woke a VM, io.virtwake.vm.slept
// from the reaper; contract §5): one event at a time through the same sender.
// Such an event never fails the work that caused it: what cannot be delivered
// is logged and dropped, so a replica keeps nothing in memory for it.

export interface OutgoingEvent {
  type: string;
  source: string;
  subject?: string;
  id: string;
  time: string;
  data: unknown;
}

export interface EventSink {
  readonly url?: string;
  /** Resolves true when the sink took the event; never rejects. */
  send(event: OutgoingEvent): Promise<boolean>;
}

export function eventSink(sink: Sink, log: Logger): EventSink {
  return {
    url: sink.url,
    async send(e) {
      if (!sink.url) {
        log.info({ type: e.type, subject: e.subject, data: e.data }, 'event (K_SINK not set, not sent)');
        return false;
      }
      const event: CloudEvent = {
        specversion: '1.0',
        id: e.id,
        source: e.source,
        type: e.type,
        subject: e.subject,
        time: e.time,
        datacontenttype: 'application/json',
        data: e.data,
        extensions: {},
      };
      const failed = await sink.send([event]).catch(() => [event]);
      if (failed.length)
        log.warn({ type: e.type, subject: e.subject, sink: sink.url }, 'could not send event to K_SINK');
      return failed.length === 0;
    },
  };
}
