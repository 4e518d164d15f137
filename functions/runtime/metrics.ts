import { Counter, Gauge, Histogram, Registry } from 'prom-client';

// GET /metrics (Prometheus): actions by type and outcome, KubeVirt call
// latency, wait durations, HTTP answers by status, and the sleep ladder
// (contract §5): wake time per tier and phase, wakes and sleeps per tier,
// seconds spent asleep per VM and tier, VMs per tier at the last reaper pass.

/** The two sleeping tiers: paused keeps memory (fast wake), stopped frees it. */
export type Tier = 'paused' | 'stopped';
/**
 * Phases of a wake, each measured from the moment the first request was held:
 * the wake call (unpause or start) accepted, the VM Running and ready, the
 * Service endpoint ready, the upstream accepting a connection, the first byte
 * of its answer.
 */
export const WAKE_PHASES = ['accepted', 'running', 'endpoint', 'upstream', 'first_byte'] as const;
export type WakePhase = (typeof WAKE_PHASES)[number];

export interface Metrics {
  registry: Registry;
  action(type: string, outcome: string, reason?: string): void;
  kubeCall(verb: string, resource: string, code: string, seconds: number): void;
  http(status: number): void;
  wait(resource: string, result: string, seconds: number): void;
  wakePhase(tier: Tier, phase: WakePhase, seconds: number): void;
  /** A sleeping VM was woken; `trigger`: proxy, activity, start, keepWarm. */
  woke(tier: Tier, trigger: string): void;
  /** The reaper put a VM to sleep. */
  slept(tier: Tier): void;
  /** A VM's sleep in `tier` ended after `seconds` (ledger). */
  asleep(tier: Tier, namespace: string, vm: string, seconds: number): void;
  /** VMs the reaper saw in each state on its last pass. */
  vmsByTier(counts: Record<'running' | Tier, number>): void;
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
  const wakeTime = new Histogram({
    name: 'virtwake_wake_duration_seconds',
    help: 'Time from the first held request to each wake phase (accepted, running, endpoint, upstream, first_byte), by the tier the VM woke from',
    labelNames: ['tier', 'phase'] as const,
    buckets: [0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10, 30, 60, 120, 300],
    registers: [registry],
  });
  const wakes = new Counter({
    name: 'virtwake_wakes_total',
    help: 'VMs woken, by the tier they woke from and what woke them (proxy, activity, start, keepWarm)',
    labelNames: ['tier', 'trigger'] as const,
    registers: [registry],
  });
  const sleeps = new Counter({
    name: 'virtwake_sleeps_total',
    help: 'VMs the reaper put to sleep, by tier (paused, stopped)',
    labelNames: ['tier'] as const,
    registers: [registry],
  });
  const asleep = new Counter({
    name: 'virtwake_vm_asleep_seconds_total',
    help: 'Seconds VMs spent asleep, per VM and tier, counted when the sleep ends (a wake, or paused giving way to stopped)',
    labelNames: ['tier', 'namespace', 'vm'] as const,
    registers: [registry],
  });
  const byTier = new Gauge({
    name: 'virtwake_vms',
    help: 'Opted-in VMs by state (running, paused, stopped) at the last reaper pass',
    labelNames: ['tier'] as const,
    registers: [registry],
  });
  return {
    registry,
    wakePhase: (tier, phase, seconds) => wakeTime.observe({ tier, phase }, seconds),
    woke: (tier, trigger) => wakes.inc({ tier, trigger }),
    slept: (tier) => sleeps.inc({ tier }),
    asleep: (tier, namespace, vm, seconds) => asleep.inc({ tier, namespace, vm }, Math.max(0, seconds)),
    vmsByTier: (counts) => {
      for (const [tier, n] of Object.entries(counts)) byTier.set({ tier }, n);
    },
    wait: (resource, result, seconds) => waits.observe({ resource, result }, seconds),
    action: (type, outcome, reason) => actions.inc({ type, outcome, reason: reason ?? '' }),
    kubeCall: (verb, resource, code, seconds) => calls.observe({ verb, resource, code }, seconds),
    http: (status) => answers.inc({ status: String(status) }),
  };
}
