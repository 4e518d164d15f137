import type http from 'node:http';

// Graceful shutdown, the same for both servers (the event server and the wake
// proxy): stop accepting, let the work in flight finish for up to `limitMs`,
// then let the server deal with what is left (answer it 503, end tunnels) and
// close every connection.

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
      hooks.onClosing?.();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const idle = active === 0 ? Promise.resolve() : new Promise<void>((resolve) => (drained = resolve));
      const limit = new Promise<void>((resolve) => setTimeout(resolve, limitMs).unref());
      return Promise.race([idle, limit])
        .then(() => hooks.leftover?.())
        .then(() => {
          server.closeAllConnections();
          return closed;
        });
    },
  };
}
