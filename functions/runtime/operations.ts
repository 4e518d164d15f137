import type http from 'node:http';
import type { Metrics } from './metrics';

// The kn func operational endpoints, the same for the event server and the
// wake proxy: /health/liveness, /health/readiness (503 once shutting down),
// /metrics (Prometheus).

/**
 * Answers the request and returns true when `path` is one of these endpoints. `problem`: why this
 * instance cannot do its work (the API server refuses its certificate or credentials); readiness then
 * fails, so the pod is replaced instead of answering 503 forever behind a green probe.
 */
export function serveOperations(
  res: http.ServerResponse,
  path: string,
  closing: boolean,
  metrics: Metrics,
  problem?: () => string | undefined,
  /**
   * What the API server refuses this instance for good although it answers (a watch: every wait fails). The
   * instance stays ready, since everything else still works and a pod taken out of its Service would never
   * see the grant come back; the answer says what to fix.
   */
  refusals?: () => string[],
): boolean {
  if (path === '/health/liveness') {
    plain(res, 200, 'ok');
  } else if (path === '/health/readiness') {
    const why = problem?.();
    if (closing) plain(res, 503, 'shutting down');
    else if (why) plain(res, 503, `not ready: ${why}`);
    else {
      const refused = refusals?.() ?? [];
      plain(res, 200, refused.length ? `ready, but waits fail: ${refused.join('; ')}` : 'ready');
    }
  } else if (path === '/metrics') {
    metrics.registry.metrics().then(
      (text) => {
        res.writeHead(200, { 'content-type': metrics.registry.contentType });
        res.end(text);
      },
      () => plain(res, 500, 'metrics unavailable'),
    );
  } else {
    return false;
  }
  return true;
}

export function plain(res: http.ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
  res.end(text);
}
