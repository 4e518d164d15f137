import { Watch } from '@kubernetes/client-node';

// One watch stream (client-node's Watch), held until the callback picks a
// result, the deadline passes, the signal aborts, or the stream ends. Callers
// own the loop around it: what to re-read, when to resume, how to back off.

export type StreamEnd<R> =
  | { kind: 'hit'; value: R }
  | { kind: 'gone' } // 410: the resourceVersion is too old, list again
  | { kind: 'error'; error: unknown }
  | { kind: 'refused'; error: Error } // the API server refuses this watch for good (watch-loop.ts)
  | { kind: 'ended' }; // deadline, abort, or the server closed the stream

export function watchOnce<R>(
  watch: Watch,
  path: string,
  query: Record<string, string | number | boolean | undefined>,
  /** Return { value } to stop with a hit; undefined to keep watching. */
  onEvent: (type: string, obj: unknown) => { value: R } | undefined,
  deadline: number,
  signal?: AbortSignal,
): Promise<StreamEnd<R>> {
  return new Promise((resolve) => {
    let settled = false;
    let controller: AbortController | undefined;
    const finish = (end: StreamEnd<R>) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      controller?.abort();
      resolve(end);
    };
    const timer = setTimeout(() => finish({ kind: 'ended' }), Math.max(0, deadline - Date.now()));
    const onAbort = () => finish({ kind: 'ended' });
    // A signal that aborted before this stream opened (while the loop read or slept) fires no
    // event: without this check the watch would run on to its deadline for a caller long gone.
    if (signal?.aborted) {
      finish({ kind: 'ended' });
      return;
    }
    signal?.addEventListener('abort', onAbort);
    watch
      .watch(
        path,
        { ...query, timeoutSeconds: Math.max(1, Math.ceil((deadline - Date.now()) / 1000)) },
        (type: string, obj: unknown) => {
          if (type === 'ERROR') {
            const status = obj as { code?: number };
            finish(
              status?.code === 410
                ? { kind: 'gone' }
                : { kind: 'error', error: new Error(`watch error: ${JSON.stringify(obj).slice(0, 300)}`) },
            );
            return;
          }
          const hit = onEvent(type, obj);
          if (hit) finish({ kind: 'hit', value: hit.value });
        },
        (err: unknown) => finish(err ? { kind: 'error', error: err } : { kind: 'ended' }),
      )
      .then(
        (c) => {
          controller = c;
          if (settled) c.abort();
        },
        (error) => finish({ kind: 'error', error }),
      );
  });
}
