import type { Backoff } from '../runtime/backoff';
import type { Config } from '../runtime/config';
import type { KubeVirt } from '../runtime/kubevirt';
import type { VirtualMachine } from '../runtime/kubevirt-types';
import { checkNamespace, checkVmOptIn } from '../runtime/policy';
import { Denied, HandBack, WatchRefused } from '../runtime/errors';
import { KubeApiError } from '../runtime/kube/errors';
import { isTransient } from '../runtime/kubevirt-answers';
import { Transient, withRetries } from '../runtime/retry';
import { withDeadline } from '../runtime/kube/deadline';
import { isRunning, isServing, needsStart } from '../runtime/vm-state';
import type { EndpointSlices, Upstream } from './endpoints';
import type { Target as Route } from './routes';
import type { Tier, WakePhase } from '../runtime/metrics';
import { pausedByVirtwake } from '../ladder';

// Getting a route's upstream: if it is known and was checked recently, at
// once; otherwise read the VM and its Service's endpoints, and if the VM is
// stopped, start it and wait (watching, not polling) until it is Running and
// the Service has a ready endpoint.
//
// Everything here is coalesced: all requests for one VM share one read, one
// start and one wait, so 100 requests to a stopped VM make one start call.
// The shared wake has one deadline, VIRTWAKE_PROXY_WAKE_TIMEOUT after it began.

/**
 * Between connects to an upstream that refused or did not answer in time. A
 * VM's `ready` is its pod's readiness: without a readinessProbe that is when
 * the domain started, not when the guest's service listens, so the first
 * connects after a wake often fail. HTTP and TCP routes both retry with this
 * until the wake timeout.
 */
export const UPSTREAM_RETRY: Backoff = { baseMs: 50, maxMs: 1_000, jitter: true };

/** How long a known upstream is used without looking at the VM again. */
export const UPSTREAM_TTL_MS = 5_000;

export class WakeError extends Error {
  constructor(
    readonly status: 403 | 502 | 503,
    message: string,
    readonly retryAfterSeconds?: number,
    /** For the metrics, when neither a timeout (503) nor a failed wake (502) says it. */
    readonly reason?: 'WatchRefused',
  ) {
    super(message);
    this.name = 'WakeError';
  }
}

export interface Resolved {
  upstream: Upstream;
  vm: VirtualMachine;
  /** True when this request had to wait for the VM (for the log). */
  woke: boolean;
  /**
   * Set when this proxy woke the VM from a sleeping tier (its unpause or start
   * was accepted): the phases so far, for the requests held during that wake.
   * The first of them to see a byte of answer completes and reports it.
   */
  wake?: WakeTrace;
}

export interface WakeTrace {
  tier: Tier;
  /** The VM as read before the wake (its sleep annotations date the sleep). */
  vm: VirtualMachine;
  phases: Partial<Record<WakePhase, number>>;
  /** hrtime when the first request began to wait. */
  since?: bigint;
  reported?: boolean;
  /** Settles once the VM's Running and ready status was seen (or the wake deadline passed). */
  running?: Promise<void>;
}

interface Trace {
  seconds(): number;
  wake?: WakeTrace;
}

export interface Waker {
  /** Whether `route` can be forwarded now without waiting (it then needs no queue place). */
  warm(route: Route): boolean;
  resolve(route: Route): Promise<Resolved>;
  /** The upstream refused a connection: forget it so the next request looks again. */
  forget(route: Route): void;
  /** start PUTs sent (for tests and metrics). */
  starts(): number;
  /** unpause PUTs KubeVirt accepted. */
  unpauses(): number;
  /** The answer to a request held past VIRTWAKE_PROXY_WAKE_TIMEOUT. */
  timeoutError(route: Route): WakeError;
}

export interface WakerDeps {
  config: Config;
  kubevirt: KubeVirt;
  endpoints: EndpointSlices;
  signal: AbortSignal;
  onWake?(vm: string, outcome: 'ready' | 'timeout' | 'refused', ms: number): void;
}

interface TargetState {
  upstream?: Upstream;
  vm?: VirtualMachine;
  checkedAt: number;
  pending?: Promise<Resolved>;
}

export function waker(deps: WakerDeps): Waker {
  const { config, kubevirt, endpoints, signal } = deps;
  const targets = new Map<string, TargetState>();
  const vmWakes = new Map<string, Promise<{ vm: VirtualMachine; waited: boolean }>>();
  let starts = 0;
  let unpauses = 0;

  const targetKey = (r: Route) => `${r.vm.namespace}/${r.vm.name}|${r.service.name}:${r.service.port}`;
  const vmKey = (r: Route) => `${r.vm.namespace}/${r.vm.name}`;
  const stateOf = (r: Route) => {
    let t = targets.get(targetKey(r));
    if (!t) targets.set(targetKey(r), (t = { checkedAt: 0 }));
    return t;
  };
  const fresh = (t: TargetState) => !!t.upstream && Date.now() - t.checkedAt < UPSTREAM_TTL_MS;

  /** Read the VM, check policy, start it if stopped, wait until it runs. One at a time per VM. */
  function vmUp(route: Route, deadline: number, trace: Trace): Promise<{ vm: VirtualMachine; waited: boolean }> {
    const key = vmKey(route);
    let p = vmWakes.get(key);
    if (!p) {
      p = bringUp(route, deadline, trace).finally(() => vmWakes.delete(key));
      vmWakes.set(key, p);
    }
    return p;
  }

  async function bringUp(
    route: Route,
    deadline: number,
    trace: Trace,
  ): Promise<{ vm: VirtualMachine; waited: boolean }> {
    const { namespace, name } = route.vm;
    const what = `VM ${namespace}/${name}`;
    let vm = await withRetries(config.retry, `read ${what}`, () => kubevirt.getVM(namespace, name));
    let started = false;
    let unpaused = false;
    for (let waited = false; ; waited = true) {
      if (!vm) throw new WakeError(502, `${what} does not exist (check VIRTWAKE_PROXY_ROUTES)`);
      try {
        checkNamespace(config, namespace);
        checkVmOptIn(config, vm);
      } catch (e) {
        if (e instanceof Denied) throw new WakeError(403, e.message);
        throw e;
      }
      // Migrating is serving: the guest answers throughout a live migration.
      if (isServing(vm)) {
        if (trace.wake) trace.wake.phases.running = trace.seconds();
        return { vm, waited };
      }
      const status = vm.status?.printableStatus ?? '';
      if (status === 'Paused' && !unpaused) {
        // contract §5: the proxy wakes what virtwake put to sleep; a VM someone else paused stays paused unless the route says otherwise.
        if (!pausedByVirtwake(vm) && !route.unpause)
          throw new WakeError(
            503,
            `${what} was paused by someone other than virtwake; the proxy leaves it paused (set unpause: true on its route to wake it anyway)`,
            config.proxyRetryAfterSeconds,
          );
        unpaused = true;
        const answer = await withRetries(config.retry, `unpause ${what}`, () =>
          kubevirt.lifecycle('unpause', namespace, name, {}),
        );
        if (answer !== 'ok' && answer.kind === 'outcome' && answer.outcome === 'failed')
          throw new WakeError(502, `KubeVirt refused to unpause ${what}: ${answer.message}`);
        if (answer === 'ok') {
          unpauses++;
          trace.wake = { tier: 'paused', vm, phases: { accepted: trace.seconds() } };
          return woken(route, vm, deadline, trace);
        }
      }
      // Decided from runStrategy, the VMI and queued requests: a Halted VM importing a disk shows Provisioning.
      if (!started && needsStart(vm)) {
        started = true;
        starts++;
        const answer = await withRetries(config.retry, `start ${what}`, () =>
          kubevirt.lifecycle('start', namespace, name, {}),
        );
        if (answer !== 'ok' && answer.kind === 'outcome' && answer.outcome === 'failed')
          throw new WakeError(502, `KubeVirt refused to start ${what}: ${answer.message}`);
        if (answer === 'ok') {
          trace.wake = { tier: 'stopped', vm, phases: { accepted: trace.seconds() } };
          return woken(route, vm, deadline, trace);
        }
        // "VM is already running" from a VMI shut down since the read: wait it out and start again.
        if (answer.kind === 'depends') started = false;
      }
      // Stopping VMs are waited out and then started; starting and unpausing ones are waited for.
      const seen = await kubevirt.waitFor<VirtualMachine>(
        'virtualmachines',
        namespace,
        name,
        (v) =>
          !v || isServing(v) || (!unpaused && v.status?.printableStatus === 'Paused') || (!started && needsStart(v)),
        deadline,
        signal,
      );
      if (!seen.done) throw timeout(route, 'to run');
      vm = seen.object;
    }
  }

  /**
   * Our unpause or start was accepted. What the held requests need is the
   * Service's endpoint back (lookUp waits for it); the VM's own Running and
   * ready status trails it (virt-controller writes it after the pod is
   * ready), so it is watched on the side for the `running` phase only.
   */
  function woken(
    route: Route,
    vm: VirtualMachine,
    deadline: number,
    trace: Trace,
  ): { vm: VirtualMachine; waited: boolean } {
    const w = trace.wake as WakeTrace;
    w.running = kubevirt
      .waitFor<VirtualMachine>('virtualmachines', route.vm.namespace, route.vm.name, isRunning, deadline, signal)
      .then((seen) => {
        if (seen.done) w.phases.running = trace.seconds();
      })
      .catch(() => undefined);
    return { vm, waited: true };
  }

  function timeout(route: Route, what: string): WakeError {
    // A wait cut short by shutdown is not a VM that failed to come up.
    if (signal.aborted)
      return new WakeError(
        503,
        `the wake proxy is shutting down; VM ${route.vm.namespace}/${route.vm.name} was not waited for to the end, retry`,
        config.proxyRetryAfterSeconds,
      );
    return new WakeError(
      503,
      `VM ${route.vm.namespace}/${route.vm.name} did not come up ${what} within ${config.proxyWakeTimeoutMs / 1000}s (VIRTWAKE_PROXY_WAKE_TIMEOUT); it may still be starting, retry shortly`,
      config.proxyRetryAfterSeconds,
    );
  }

  /**
   * The API server refusing virtwake something for good (RBAC's 403), said as such. A refused watch leaves the
   * wake under way (KubeVirt took the start or unpause) without a way to wait for it: 503 + Retry-After, since
   * a later request finds the VM up by reading, not watching. A refused read or list: nothing can work, 502.
   */
  function refusal(route: Route, e: unknown): unknown {
    const vm = `VM ${route.vm.namespace}/${route.vm.name}`;
    if (e instanceof WatchRefused)
      return new WakeError(
        503,
        `cannot wait for ${vm} to come up: the API server refuses virtwake's watch of ${e.resource}${e.namespace ? ` in ${e.namespace}` : ''} (its Role must allow it): ${e.message}`,
        config.proxyRetryAfterSeconds,
        'WatchRefused',
      );
    if (e instanceof KubeApiError)
      return new WakeError(502, `cannot wake ${vm}: the API server answered ${e.status}: ${e.message}`);
    return e;
  }

  function lookUp(route: Route, t: TargetState): Promise<Resolved> {
    // Every API call of the wake is cut off at its deadline (one that hangs cannot outlast it).
    const deadline = Date.now() + config.proxyWakeTimeoutMs;
    return withDeadline(deadline, () => lookUpUntil(route, t, deadline));
  }

  async function lookUpUntil(route: Route, t: TargetState, deadline: number): Promise<Resolved> {
    const began = Date.now();
    const { service } = route;
    const { namespace } = route.vm;
    const t0 = process.hrtime.bigint();
    const trace: Trace = { seconds: () => Number(process.hrtime.bigint() - t0) / 1e9 };
    try {
      const { vm, waited } = await vmUp(route, deadline, trace);
      let woke = waited;
      // Just woken by us: its endpoint is not back yet, go straight to watching for it.
      let upstream = trace.wake
        ? undefined
        : await withRetries(config.retry, `read endpoints of ${namespace}/${service.name}`, async () => {
            try {
              return await endpoints.ready(namespace, service.name, service.port);
            } catch (e) {
              throw isTransient(e)
                ? new Transient(e)
                : new WakeError(
                    502,
                    `cannot read the endpoints of Service ${namespace}/${service.name}: ${(e as Error).message}`,
                  );
            }
          });
      if (!upstream) {
        woke = true;
        upstream = await endpoints.waitReady(namespace, service.name, service.port, deadline, signal);
        if (!upstream)
          throw timeout(
            route,
            // A VM we woke that never showed Running did not come up at all; say so rather than blame its Service.
            trace.wake && trace.wake.phases.running === undefined
              ? 'to run'
              : `with a ready endpoint on Service ${namespace}/${service.name}`,
          );
      }
      // The upstream accepting and the first byte are timed by the forward (server.ts, tcp.ts).
      if (trace.wake) trace.wake.phases.endpoint = trace.seconds();
      Object.assign(t, { upstream, vm, checkedAt: Date.now() });
      if (woke) deps.onWake?.(vmKey(route), 'ready', Date.now() - began);
      return { upstream, vm, woke, wake: trace.wake && { ...trace.wake, since: t0 } };
    } catch (e) {
      // The API stayed unavailable through the retries: the client may try again later.
      // The answer's Retry-After is the configured one (VIRTWAKE_PROXY_RETRY_AFTER), not the retry budget's.
      const err =
        e instanceof HandBack ? new WakeError(503, e.message, config.proxyRetryAfterSeconds) : refusal(route, e);
      if (err instanceof WakeError)
        deps.onWake?.(vmKey(route), err.status === 503 && !err.reason ? 'timeout' : 'refused', Date.now() - began);
      throw err;
    }
  }

  return {
    warm: (route) => fresh(stateOf(route)),
    resolve(route) {
      const t = stateOf(route);
      if (fresh(t))
        return Promise.resolve({ upstream: t.upstream as Upstream, vm: t.vm as VirtualMachine, woke: false });
      if (!t.pending) t.pending = lookUp(route, t).finally(() => (t.pending = undefined));
      return t.pending;
    },
    forget(route) {
      const t = stateOf(route);
      t.upstream = undefined;
      t.checkedAt = 0;
    },
    starts: () => starts,
    unpauses: () => unpauses,
    timeoutError: (route) => timeout(route, 'to serve this request'),
  };
}
