import { Counter, Gauge, Histogram, Registry } from 'prom-client';

// The proxy's own series, beside the runtime's in the same registry. Labels
// are bounded by the routes file (one `vm` and `port` per route).

export interface ProxyMetrics {
  /** One shared wake (HTTP and TCP alike) finished: ready, timeout or refused. */
  wake(outcome: string, seconds: number): void;
  tcpConnection(port: number, vm: string, result: string): void;
  tcpHeld(port: number, vm: string, delta: 1 | -1): void;
  tcpOpen(port: number, vm: string, delta: 1 | -1): void;
  tcpHoldTime(port: number, vm: string, result: string, seconds: number): void;
  tcpBytes(port: number, vm: string, direction: 'in' | 'out', bytes: number): void;
  tcpError(port: number, vm: string, side: 'client' | 'upstream'): void;
}

const WAKE_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600];

export function proxyMetrics(registry: Registry): ProxyMetrics {
  const wakes = new Histogram({
    name: 'virtwake_proxy_wake_duration_seconds',
    help: 'Wakes of a VM by the proxy (one per VM however many requests and connections wait), from the first look to ready, by outcome',
    labelNames: ['outcome'] as const,
    buckets: WAKE_BUCKETS,
    registers: [registry],
  });
  const connections = new Counter({
    name: 'virtwake_proxy_tcp_connections_total',
    help: 'TCP connections accepted on a route, by result: forwarded, queue_full, wake_timeout, wake_failed, client_gone, shutting_down',
    labelNames: ['port', 'vm', 'result'] as const,
    registers: [registry],
  });
  const held = new Gauge({
    name: 'virtwake_proxy_tcp_held_connections',
    help: 'TCP connections accepted and waiting for their VM to wake',
    labelNames: ['port', 'vm'] as const,
    registers: [registry],
  });
  const open = new Gauge({
    name: 'virtwake_proxy_tcp_open_connections',
    help: 'TCP connections spliced to their upstream and open',
    labelNames: ['port', 'vm'] as const,
    registers: [registry],
  });
  const holdTime = new Histogram({
    name: 'virtwake_proxy_tcp_hold_duration_seconds',
    help: 'How long a TCP connection waited from accept until spliced (or closed), by result',
    labelNames: ['port', 'vm', 'result'] as const,
    buckets: WAKE_BUCKETS,
    registers: [registry],
  });
  const bytes = new Counter({
    name: 'virtwake_proxy_tcp_bytes_total',
    help: 'Bytes through TCP routes: in = client to VM, out = VM to client',
    labelNames: ['port', 'vm', 'direction'] as const,
    registers: [registry],
  });
  const errors = new Counter({
    name: 'virtwake_proxy_tcp_connection_errors_total',
    help: 'Spliced TCP connections that ended in an error, by the side that failed',
    labelNames: ['port', 'vm', 'side'] as const,
    registers: [registry],
  });
  return {
    wake: (outcome, seconds) => wakes.observe({ outcome }, seconds),
    tcpConnection: (port, vm, result) => connections.inc({ port: String(port), vm, result }),
    tcpHeld: (port, vm, delta) => held.inc({ port: String(port), vm }, delta),
    tcpOpen: (port, vm, delta) => open.inc({ port: String(port), vm }, delta),
    tcpHoldTime: (port, vm, result, seconds) => holdTime.observe({ port: String(port), vm, result }, seconds),
    tcpBytes: (port, vm, direction, n) => n > 0 && bytes.inc({ port: String(port), vm, direction }, n),
    tcpError: (port, vm, side) => errors.inc({ port: String(port), vm, side }),
  };
}
