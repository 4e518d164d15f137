import { createHash } from 'node:crypto';
import type { CloudEvent } from './cloudevents/event';
import type { Outcome } from './function';
import { statusOf } from './vm-state';

// Result events (contract §2). Ids are derived from the request and the outcome so
// a redelivered request that ends the same way yields the same reply id.

export function hash(...parts: string[]): string {
  return createHash('sha256').update(parts.join('\u0000')).digest('hex');
}

/** Stable key of a request across redeliveries: its source and id. */
export function requestKey(event: Pick<CloudEvent, 'source' | 'id'>): string {
  return hash(event.source, event.id).slice(0, 20);
}

export interface ReplyParts {
  type: string;
  fn: string;
  subject: string;
  extensions: Record<string, string>;
  reason?: string;
  data: unknown;
}

export function buildReply(request: CloudEvent, parts: ReplyParts, now: Date): CloudEvent {
  return {
    specversion: '1.0',
    id: hash(request.source, request.id, parts.type, parts.subject, parts.reason ?? '').slice(0, 32),
    source: `/virtwake/${parts.fn}`,
    type: parts.type,
    subject: parts.subject,
    time: now.toISOString(),
    datacontenttype: 'application/json',
    data: parts.data,
    extensions: { ...parts.extensions, causationid: request.id },
  };
}

export function requestRef(e: CloudEvent): { id: string; source: string; type: string } {
  return { id: e.id, source: e.source, type: e.type };
}

/** The reply to a command on one named VM. */
export function vmReply(
  request: CloudEvent,
  fn: string,
  namespace: string,
  name: string,
  o: Outcome,
  now: Date,
): CloudEvent {
  const data: Record<string, unknown> = { namespace, name, action: fn, outcome: o.outcome };
  if (o.reason) data.reason = o.reason;
  if (o.message) data.message = o.message;
  data.request = requestRef(request);
  const status = statusOf(o.vm);
  if (status) data.status = status;
  if (o.snapshot) data.snapshot = o.snapshot;
  if (o.restore) data.restore = o.restore;
  return buildReply(
    request,
    {
      type: `${request.type}.${o.outcome}`,
      fn,
      subject: `${namespace}/${name}`,
      reason: o.reason,
      extensions: { vmnamespace: namespace, vmname: name },
      data,
    },
    now,
  );
}

const SEVERITY = { completed: 0, accepted: 1, failed: 2 } as const;

export interface BulkEntry {
  name: string;
  outcome: Outcome['outcome'];
  reason?: string;
  message?: string;
}

/** One reply for a selector command; its type follows the worst outcome. */
export function bulkReply(
  request: CloudEvent,
  fn: string,
  namespace: string,
  selector: unknown,
  results: BulkEntry[],
  now: Date,
): CloudEvent {
  const worst = results.reduce<Outcome['outcome']>(
    (w, r) => (SEVERITY[r.outcome] > SEVERITY[w] ? r.outcome : w),
    'completed',
  );
  const reason = results.length === 0 ? 'NoMatch' : undefined;
  const data: Record<string, unknown> = {
    namespace,
    action: fn,
    outcome: worst,
    selector,
    matched: results.length,
    results,
    request: requestRef(request),
  };
  if (reason) data.reason = reason;
  return buildReply(
    request,
    {
      type: `${request.type}.${worst}`,
      fn,
      subject: namespace,
      reason: reason ?? results.map((r) => `${r.name}:${r.outcome}:${r.reason ?? ''}`).join(','),
      extensions: { vmnamespace: namespace },
      data,
    },
    now,
  );
}
