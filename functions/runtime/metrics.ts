import { Counter, Histogram, Registry } from 'prom-client';

// GET /metrics (Prometheus): actions by type and outcome, KubeVirt call
// latency, wait durations, HTTP answers by status.

export interface Metrics {
  registry: Registry;
  action(type: string, outcome: string, reason?: string): void;
  kubeCall(verb: string, resource: string, code: string, seconds: number): void;
  http(status: number): void;
  wait(resource: string, result: string, seconds: number): void;
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  const actions = new Counter({
    name: 'virtwake_actions_total',
    help: 'Commands processed, by event type and outcome',
    labelNames: ['type', 'outcome', 'reason'] as const,
    registers: [registry],
  });
  const calls = new Histogram({
    name: 'virtwake_kubevirt_request_duration_seconds',
    help: 'KubeVirt / Kubernetes API call latency',
    labelNames: ['verb', 'resource', 'code'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const answers = new Counter({
    name: 'virtwake_http_responses_total',
    help: 'HTTP answers on the event endpoint, by status',
    labelNames: ['status'] as const,
    registers: [registry],
  });
  const waits = new Histogram({
    name: 'virtwake_wait_duration_seconds',
    help: 'How long `wait` held a reply, by watched resource and result',
    labelNames: ['resource', 'result'] as const,
    buckets: [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 270],
    registers: [registry],
  });
  return {
    registry,
    wait: (resource, result, seconds) => waits.observe({ resource, result }, seconds),
    action: (type, outcome, reason) => actions.inc({ type, outcome, reason: reason ?? '' }),
    kubeCall: (verb, resource, code, seconds) => calls.observe({ verb, resource, code }, seconds),
    http: (status) => answers.inc({ status: String(status) }),
  };
}
