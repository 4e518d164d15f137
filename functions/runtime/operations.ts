import type http from 'node:http';
import type { Metrics } from './metrics';

// The kn func operational endpoints, the same for the event server and the
// wake proxy: /health/liveness, /health/readiness (503 once shutting down),
// /metrics (Prometheus).

/** Answers the request and returns true when `path` is one of these endpoints. */
export function serveOperations(res: http.ServerResponse, path: string, closing: boolean, metrics: Metrics): boolean {
  if (path === '/health/liveness') {
    plain(res, 200, 'ok');
  } else if (path === '/health/readiness') {
    if (closing) plain(res, 503, 'shutting down');
    else plain(res, 200, 'ready');
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
