import { Watch } from '@kubernetes/client-node';
import { backoffMs } from '../backoff';
import { sleep } from '../async';
import { WatchRefused } from '../errors';
import type { KubeConnection } from './connection';
import { KubeApiError } from './errors';
import { StreamEnd, watchOnce } from './watch-once';

// The one watch loop: read the current state, then follow it with watch
// streams until `pick` finds the answer, the deadline passes or the signal
// aborts. A stream that ends is resumed from the last resourceVersion seen
// (bookmarks included); 410 Gone (that version was compacted away) reads again;
// a stream that keeps breaking reads again too, and after `maxFailures` gives up.
// A watch the API server refuses for good (RBAC's 403 without `watch`) ends the
// loop at once with WatchRefused: no retry can change it.

/** One watch stream from `resourceVersion`, `onEvent` called per event; see watch-once.ts. */
export type OpenStream = <R>(
  resourceVersion: string | undefined,
  onEvent: (type: string, obj: unknown) => { value: R } | undefined,
  deadline: number,
  signal?: AbortSignal,
) => Promise<StreamEnd<R>>;

export interface WatchLoop<S, R> {
  /** The current state and the resourceVersion to watch from (a GET or a LIST). */
  read(): Promise<{ state: S; resourceVersion?: string }>;
  /** Fold one watch event (ADDED, MODIFIED, DELETED) into the state. */
  apply(state: S, type: string, obj: unknown): S;
  /** The answer the state holds, if any. */
  pick(state: S): { value: R } | undefined;
  stream: OpenStream;
  deadline: number;
  signal?: AbortSignal;
  /** Failed reads and broken streams in a row before giving up; Infinity: keep trying until the deadline. */
  maxFailures: number;
  /** Whether a failed read may be tried again (else it, or the last one when the failures run out, is thrown). */
  retryable(e: unknown): boolean;
  /** What to throw when a stream keeps breaking. */
  giveUp(last: unknown): Error;
}

export type LoopResult<R> = { done: true; value: R } | { done: false };

const FAILURE_BACKOFF = { baseMs: 100, maxMs: 1000 };
/** After a stream the server closed early (its own timeout, a restart): resume, without spinning. */
const QUIET_BACKOFF = { baseMs: 50, maxMs: 1000 };

export async function watchLoop<S, R>(o: WatchLoop<S, R>): Promise<LoopResult<R>> {
  const left = () => Math.max(0, o.deadline - Date.now());
  const live = () => Date.now() < o.deadline && !o.signal?.aborted;
  let failures = 0;
  let quietEnds = 0;
  let state: S | undefined;
  let resourceVersion: string | undefined;
  let needRead = true;

  while (live()) {
    if (needRead) {
      try {
        const r = await o.read();
        state = r.state;
        resourceVersion = r.resourceVersion;
      } catch (e) {
        if (!o.retryable(e) || ++failures > o.maxFailures) throw e;
        await sleep(Math.min(backoffMs(failures, FAILURE_BACKOFF), left()));
        continue;
      }
      const hit = o.pick(state);
      if (hit) return { done: true, value: hit.value };
      needRead = false;
    }
    const end = await o.stream<R>(
      resourceVersion,
      (type, obj) => {
        const rv = (obj as { metadata?: { resourceVersion?: string } } | undefined)?.metadata?.resourceVersion;
        if (rv) resourceVersion = rv;
        if (type === 'BOOKMARK') return undefined;
        failures = 0;
        state = o.apply(state as S, type, obj);
        return o.pick(state);
      },
      o.deadline,
      o.signal,
    );
    if (end.kind === 'hit') return { done: true, value: end.value };
    if (end.kind === 'refused') throw end.error;
    if (end.kind === 'gone') {
      needRead = true;
    } else if (end.kind === 'error') {
      if (++failures > o.maxFailures) throw o.giveUp(end.error);
      await sleep(Math.min(backoffMs(failures, FAILURE_BACKOFF), left()));
      needRead = failures > 2;
    } else if (live()) {
      await sleep(Math.min(backoffMs(quietEnds++, QUIET_BACKOFF), left()));
    }
  }
  return { done: false };
}

/**
 * Streams of one collection through client-node's Watch (which opens its own connections, with the
 * connection's current kubeconfig). A watch the API server answers with an error status is told apart:
 * 410 reads again; a refusal no retry changes (403, 400, 404, 422: not 401, 408 or 429) ends the loop
 * with the API server's own message, and is noted on the connection for readiness until a watch of
 * that collection is served again.
 */
export function collectionStream(
  conn: KubeConnection,
  path: string,
  query: Record<string, string | number | boolean | undefined>,
): OpenStream {
  return async (resourceVersion, onEvent, deadline, signal) => {
    const q = { ...query, resourceVersion, allowWatchBookmarks: true };
    const end = await watchOnce(new Watch(conn.kubeConfig), path, q, onEvent, deadline, signal);
    if (end.kind !== 'error') {
      conn.noteWatch(path, undefined);
      return end;
    }
    const status = statusCodeOf(end.error);
    if (status === 410) return { kind: 'gone' };
    if (status === undefined || !refusedForGood(status)) return end;
    const answer = await statusBody(conn, path, q);
    if (!answer || !refusedForGood(answer.status)) return end;
    const { resource, namespace } = collectionOf(path);
    conn.noteWatch(path, answer.message);
    return { kind: 'refused', error: new WatchRefused(resource, namespace, answer.status, answer.message) };
  };
}

const refusedForGood = (status: number) => status >= 400 && status < 500 && ![401, 408, 410, 429].includes(status);

/** client-node's Watch rejects an answer other than 200 with an Error carrying only `statusCode`. */
function statusCodeOf(e: unknown): number | undefined {
  const code = (e as { statusCode?: unknown } | undefined)?.statusCode;
  return typeof code === 'number' ? code : undefined;
}

/**
 * client-node's Watch drops the body of a refused watch, and with it the API server's message (which for
 * RBAC names the user, verb, resource and namespace). Ask again to read it; undefined when the second answer
 * is no refusal (a grant added in between: the loop then simply watches again).
 */
async function statusBody(
  conn: KubeConnection,
  path: string,
  query: Record<string, string | number | boolean | undefined>,
): Promise<KubeApiError | undefined> {
  try {
    await conn.request({ method: 'GET', path, query: { ...query, watch: true, timeoutSeconds: 1 } });
  } catch (e) {
    if (e instanceof KubeApiError) return e;
  }
  return undefined;
}

/** `/apis/{group}/{version}/namespaces/{namespace}/{resource}` (or without the namespace). */
function collectionOf(path: string): { resource: string; namespace?: string } {
  const parts = path.split('/');
  const at = parts.indexOf('namespaces');
  return { resource: parts[parts.length - 1], namespace: at >= 0 ? parts[at + 1] : undefined };
}
