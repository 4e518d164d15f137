import type http from 'node:http';
import net from 'node:net';

// Graceful shutdown, the same for both servers (the event server and the wake
// proxy): stop accepting, let the work in flight finish for up to `limitMs`,
// then let the server deal with what is left (answer it 503, end tunnels) and
// close every connection.
//
// No connection is reset under a request that reached the server: from the
// moment shutdown begins, every answer says `Connection: close` (the client
// then does not send another request on that connection), and idle keep-alive
// connections are not cut at once (a client may be writing a request on one
// right then): each ends with its next answer or at the keep-alive timeout.
// Only what is still open when the work is done and that timeout has passed is closed.

export interface Drain {
  /** True once shutdown has begun: new work is to be refused. */
  closing(): boolean;
  /** Count `work` as in flight until it settles. */
  track(work: Promise<unknown>): void;
  inFlight(): number;
  /**
   * Begin shutdown (once: a later call resolves at once). `onClosing` runs first; `leftover` runs
   * when the work is done or the time is up, before every connection is closed.
   */
  shutdown(hooks?: { onClosing?(): void; leftover?(): Promise<void> | void }): Promise<void>;
}

export function drain(server: http.Server, limitMs: number): Drain {
  let closing = false;
  let active = 0;
  let drained: (() => void) | undefined;
  /** Answers not yet begun: told `Connection: close` once shutdown begins. */
  const unanswered = new Set<http.ServerResponse>();
  server.prependListener('request', (_req: http.IncomingMessage, res: http.ServerResponse) => {
    if (closing) {
      res.shouldKeepAlive = false;
      return;
    }
    unanswered.add(res);
    res.once('close', () => unanswered.delete(res));
    res.once('finish', () => unanswered.delete(res));
  });
  return {
    closing: () => closing,
    inFlight: () => active,
    track(work) {
      active++;
      const done = () => {
        active--;
        if (closing && active === 0) drained?.();
      };
      work.then(done, done);
    },
    shutdown(hooks = {}) {
      if (closing) return Promise.resolve();
      closing = true;
      const started = Date.now();
      for (const res of unanswered) if (!res.headersSent) res.shouldKeepAlive = false;
      hooks.onClosing?.();
      // net.Server's close stops listening only; http.Server's would also cut idle keep-alive connections now.
      const closed = new Promise<void>((resolve) => net.Server.prototype.close.call(server, () => resolve()));
      const idle = active === 0 ? Promise.resolve() : new Promise<void>((resolve) => (drained = resolve));
      const limit = new Promise<void>((resolve) => setTimeout(resolve, limitMs).unref());
      return Promise.race([idle, limit])
        .then(() => hooks.leftover?.())
        .then(() => {
          // Idle connections end at their keep-alive timeout (or with their next answer); wait for that, within the limit.
          const left = Math.max(0, Math.min(server.keepAliveTimeout + 500, limitMs - (Date.now() - started)));
          return Promise.race([closed, new Promise<void>((resolve) => setTimeout(resolve, left).unref())]);
        })
        .then(() => {
          server.closeAllConnections();
          return closed;
        });
    },
  };
}
