import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { CloudEvent } from './cloudevents/event';
import { encodeBinary } from './cloudevents/http-encode';

// Events virtwake sends on its own, not as the reply to an event it received
// (io.virtwake.vm.woke from the wake proxy, io.virtwake.vm.slept from the
// reaper): POSTed in binary mode to K_SINK, the address a Knative SinkBinding
// injects (the Broker). Without K_SINK they are only logged.
//
// Sending never fails the work that caused it: a few attempts with a short
// backoff, then a warning. Nothing is queued in memory beyond those attempts,
// so a replica that dies loses at most the event it was sending.

export interface OutgoingEvent {
  type: string;
  source: string;
  subject?: string;
  /** Deterministic where a redelivery must not make a second event; random otherwise. */
  id?: string;
  time?: string;
  data: unknown;
}

export interface EventSink {
  /** Where events go, or undefined when K_SINK is not set. */
  readonly url?: string;
  /** Resolves true when the sink took the event (2xx); never rejects. */
  send(event: OutgoingEvent): Promise<boolean>;
}

const ATTEMPTS = 3;
const BACKOFF_MS = [100, 400];
const TIMEOUT_MS = 5_000;

export function eventSink(url: string | undefined, log: Logger): EventSink {
  return {
    url,
    async send(e) {
      const event: CloudEvent = {
        specversion: '1.0',
        id: e.id ?? randomUUID(),
        source: e.source,
        type: e.type,
        subject: e.subject,
        time: e.time ?? new Date().toISOString(),
        datacontenttype: 'application/json',
        data: e.data,
        extensions: {},
      };
      if (!url) {
        log.info({ type: e.type, subject: e.subject, data: e.data }, 'event (K_SINK not set, not sent)');
        return false;
      }
      const { headers, body } = encodeBinary(event);
      let last = '';
      for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
        try {
          const res = await fetch(url, { method: 'POST', headers, body, signal: AbortSignal.timeout(TIMEOUT_MS) });
          await res.arrayBuffer().catch(() => undefined);
          if (res.ok) return true;
          last = `HTTP ${res.status}`;
          // A 4xx other than throttling will not get better by sending it again.
          if (res.status < 500 && res.status !== 429) break;
        } catch (err) {
          last = (err as Error).message;
        }
        if (attempt < ATTEMPTS) await new Promise((r) => setTimeout(r, BACKOFF_MS[attempt - 1]));
      }
      log.warn({ type: e.type, subject: e.subject, sink: url, err: last }, 'could not send event to K_SINK');
      return false;
    },
  };
}
