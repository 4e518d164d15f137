// Watch streams: newline-delimited JSON events in resourceVersion order, replayed from the
// store's bounded history when the client resumes, filtered by namespace and selectors
// (a label change across the selector boundary becomes ADDED/DELETED, as the watch cache
// does), with bookmarks, server-side timeout, and 410 Expired for a too-old start.

import type { ServerResponse } from 'node:http';
import { errors } from './errors';
import { matches, type ObjectFilter } from './selectors';
import type { ObjectStore, StoreEvent } from './store';
import { apiVersionOf, type ResourceDef } from './resources';
import type { KubeObject } from './types';

export interface WatchParams {
  resource: ResourceDef;
  version: string;
  namespace?: string;
  filter: ObjectFilter;
  resourceVersion?: string;
  allowBookmarks: boolean;
  sendInitialEvents: boolean;
  timeoutSeconds?: number;
  bookmarkIntervalMs: number;
  /** Fault injection: end the stream after this many (non-bookmark) events. */
  endAfterEvents?: number;
}

type WireEvent = { type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR'; object: unknown };

export function asVersion(o: KubeObject, r: ResourceDef, version: string): KubeObject {
  const apiVersion = apiVersionOf(r, version);
  return o.apiVersion === apiVersion ? o : { ...o, apiVersion };
}

/** Validate before any byte is written, so bad requests still get a plain 400. */
export function parseWatchStart(rv: string | undefined): number | undefined {
  if (rv === undefined || rv === '' || rv === '0') return undefined;
  if (!/^\d+$/.test(rv)) throw errors.badRequest(`invalid resource version "${rv}"`);
  return Number(rv);
}

export function serveWatch(store: ObjectStore, res: ServerResponse, p: WatchParams, onClose: () => void): void {
  const start = parseWatchStart(p.resourceVersion);
  res.writeHead(200, {
    'Content-Type': 'application/json',
    'Cache-Control': 'no-cache, private',
    'Transfer-Encoding': 'chunked',
  });
  res.flushHeaders();

  let sent = 0;
  let ended = false;
  let bookmarkTimer: NodeJS.Timeout | undefined;
  let timeoutTimer: NodeJS.Timeout | undefined;
  // Assigned once the subscription exists; end() may run before that and must not touch a TDZ binding.
  // eslint-disable-next-line prefer-const
  let unsubscribe: (() => void) | undefined;

  const end = () => {
    if (ended) return;
    ended = true;
    unsubscribe?.();
    clearTimeout(bookmarkTimer);
    clearTimeout(timeoutTimer);
    res.end();
    onClose();
  };
  res.on('close', end);

  const write = (e: WireEvent) => {
    if (ended) return;
    res.write(`${JSON.stringify(e)}\n`);
    if (e.type !== 'BOOKMARK') {
      sent++;
      if (p.endAfterEvents !== undefined && sent >= p.endAfterEvents) end();
    }
  };

  const inScope = (o: KubeObject) => p.namespace === undefined || o.metadata.namespace === p.namespace;

  const deliver = (e: StoreEvent) => {
    if (e.resource !== p.resource) return;
    const now = inScope(e.object) && matches(p.filter, e.object);
    const before = e.old !== undefined && inScope(e.old) && matches(p.filter, e.old);
    if (e.type === 'ADDED') {
      if (now) write({ type: 'ADDED', object: asVersion(e.object, p.resource, p.version) });
    } else if (e.type === 'DELETED') {
      if (now || before) write({ type: 'DELETED', object: asVersion(e.object, p.resource, p.version) });
    } else if (now && before) {
      write({ type: 'MODIFIED', object: asVersion(e.object, p.resource, p.version) });
    } else if (now) {
      write({ type: 'ADDED', object: asVersion(e.object, p.resource, p.version) });
    } else if (before && e.old) {
      const gone = { ...e.old, metadata: { ...e.old.metadata, resourceVersion: String(e.rv) } };
      write({ type: 'DELETED', object: asVersion(gone, p.resource, p.version) });
    }
  };

  const bookmark = (annotations?: Record<string, string>) => {
    write({
      type: 'BOOKMARK',
      object: {
        kind: p.resource.kind,
        apiVersion: apiVersionOf(p.resource, p.version),
        metadata: { resourceVersion: String(store.currentRv()), ...(annotations ? { annotations } : {}) },
      },
    });
  };

  if (start === undefined) {
    // "Get state and start at most recent": synthetic ADDED for what exists now.
    for (const o of store.list(p.resource, p.namespace)) {
      if (matches(p.filter, o)) write({ type: 'ADDED', object: asVersion(o, p.resource, p.version) });
    }
    if (p.allowBookmarks && p.sendInitialEvents) bookmark({ 'k8s.io/initial-events-end': 'true' });
  } else {
    const replay = store.eventsSince(start);
    if (replay === 'expired') {
      const status = errors.expired(`too old resource version: ${start} (${store.oldestWatchableRv()})`).status;
      write({ type: 'ERROR', object: status });
      end();
      return;
    }
    for (const e of replay) deliver(e);
  }
  if (ended) return;
  unsubscribe = store.subscribe(deliver);

  if (p.allowBookmarks && p.bookmarkIntervalMs > 0) {
    const tick = () => {
      bookmark();
      if (!ended) bookmarkTimer = setTimeout(tick, p.bookmarkIntervalMs);
    };
    bookmarkTimer = setTimeout(tick, p.bookmarkIntervalMs);
  }
  if (p.timeoutSeconds !== undefined && p.timeoutSeconds > 0) {
    timeoutTimer = setTimeout(end, p.timeoutSeconds * 1000);
  }
}
