// The KubeVirt API simulator: kube-apiserver + KubeVirt (virt-api, virt-controller,
// virt-handler) + snapshot controllers, on loopback, for tests and local development.
// Product code never imports this.

import { Authorizer } from './authorizer';
import { subscribeToClock, systemClock, type Clock } from './clock';
import { createContext } from './context';
import { VMController } from './controller';
import { Faults } from './faults';
import { listen, type HttpDeps, type TlsMaterial } from './http';
import { renderKubeconfig, writeKubeconfig } from './kubeconfig';
import { Recorder, type RecordedCall } from './recorder';
import { RestoreController } from './restores';
import { Rest } from './rest';
import { Scheduler } from './scheduler';
import { ServiceController } from './services';
import { SimStore } from './sim-store';
import { SnapshotController } from './snapshots';
import { ObjectStore } from './store';
import { createPki } from './tls';
import { VirtHandler } from './virt-handler';
import { VmActions } from './vm-actions';

export { ManualClock, systemClock, formatTime } from './clock';
export type { Clock } from './clock';
export type { FaultRule, FaultDescription } from './faults';
export { Faults } from './faults';
export { Authorizer, DEFAULT_USER } from './authorizer';
export type { Denial } from './authorizer';
export type { RecordedCall } from './recorder';
export { SimStore } from './sim-store';
export type { AddVMOptions, VMInput, BulkVMInput } from './sim-store';
export type { ServiceSpecInput } from './services';
export { seedDemo, seedDemoGuest, DEMO_VM_NAMES } from './demo';
export { GUEST_LISTEN_DELAY_ANNOTATION } from './services';
export type { VolumeState, SnapshotApi } from './context';
export { LIFECYCLE_TABLE, PRECHECKS, decide, vmiStateOf, VMI_STATES } from './kubevirt-lifecycle';
export type { LifecycleAction, VmiState, Effect, Outcome, Facts, Rule } from './kubevirt-lifecycle';
export * from './types';

export interface SimOptions {
  /** 0 (default) = a random free port on 127.0.0.1. */
  port?: number;
  /** Serve HTTPS with a fresh CA + server certificate; the kubeconfig carries certificate-authority-data. */
  tls?: boolean;
  /** Require `Authorization: Bearer <token>`, else 401. */
  token?: string;
  /** With tls: require a client certificate signed by the simulator CA (kubeconfig gets client-certificate-data/key). */
  clientCertAuth?: boolean;
  /** Where to write the kubeconfig (default: a temp file). Context namespace is "default". */
  kubeconfigPath?: string;
  /** Delay between VMI phase steps and controller reconciles; default 20. */
  stepMs?: number;
  /** Delay between snapshot/restore progress steps; default 20. */
  snapshotStepMs?: number;
  /** Clock for every timestamp (creationTimestamp, startTime, conditions, deadlines). */
  clock?: Clock;
  /** Interval between watch BOOKMARK events when a client allows them; default 1000 ms. */
  bookmarkIntervalMs?: number;
  /** How many events the watch history keeps for resumption; default 20000. */
  watchCacheSize?: number;
}

export interface Simulator {
  url: string;
  kubeconfigPath: string;
  /** The kubeconfig as YAML text. */
  kubeconfig: string;
  /** Direct access for test setup and assertions (no HTTP). */
  store: SimStore;
  faults: Faults;
  /**
   * Grants taken away: `rbac.deny({verb: 'watch', group: 'kubevirt.io', resource: 'virtualmachines'})` makes every
   * such request answer kube-apiserver's RBAC 403. Out of process: `POST|GET|DELETE /_sim/rbac/denials`.
   */
  rbac: Authorizer;
  /** Every API request served (after authentication), in order. */
  calls: RecordedCall[];
  resetCalls(): void;
  /** Resolves when no controller or VMI progression step is pending. */
  settle(timeoutMs?: number): Promise<void>;
  /** Hold every controller step until resumeControllers() (to observe intermediate states). */
  pauseControllers(): void;
  resumeControllers(): void;
  /**
   * A new CA and serving certificate (kube-apiserver restarted with rotated certificates): open
   * connections are dropped, new ones see the new certificate. With `rewriteKubeconfig` the
   * kubeconfig file is rewritten with the new CA, as a mounted Secret is updated; without, the file
   * keeps the old CA. Returns the new kubeconfig text.
   */
  rotateCertificates(opts?: { rewriteKubeconfig?: boolean }): Promise<string>;
  /**
   * Accept only `token` from now on (a rotated token, kube-apiserver behaviour): the old one is answered 401.
   * Out of process: `POST /_sim/token` `{"token": "…"}`. Needs a simulator started with `token`.
   */
  rotateToken(token: string): void;
  close(): Promise<void>;
}

export async function startSimulator(opts: SimOptions = {}): Promise<Simulator> {
  const clock = opts.clock ?? systemClock;
  const store = new ObjectStore(clock, opts.watchCacheSize ?? 20_000);
  const scheduler = new Scheduler();
  const ctx = createContext(store, clock, scheduler, opts.stepMs ?? 20, opts.snapshotStepMs ?? 20);
  const handler = new VirtHandler(ctx);
  const controller = new VMController(ctx, handler);
  const actions = new VmActions(ctx, handler);
  const snapshots = new SnapshotController(ctx);
  const restores = new RestoreController(ctx, actions);
  const services = new ServiceController(ctx);
  const simStore = new SimStore({ ctx, controller, handler, snapshots, services });
  const faults = new Faults();
  const authorizer = new Authorizer();
  const recorder = new Recorder();

  // Deadlines (VMI grace periods, start-failure backoff, guest listen delays, snapshot
  // failureDeadline, restore grace period) are re-checked when a manual
  // clock moves, and every second otherwise.
  const recheck = () => {
    handler.recheck();
    controller.recheck();
    services.recheck();
    snapshots.recheck();
    restores.recheck();
  };
  const unsubscribeClock = subscribeToClock(clock, recheck);
  const ticker = setInterval(recheck, 1000);
  ticker.unref();

  const settle = (timeoutMs?: number) => scheduler.settle(timeoutMs);
  let tls: TlsMaterial | undefined;
  let pki: Awaited<ReturnType<typeof createPki>> | undefined;
  if (opts.tls || opts.clientCertAuth) {
    pki = await createPki();
    tls = { key: pki.serverKey, cert: pki.serverCert, ca: pki.caCert, requestCert: !!opts.clientCertAuth };
  }
  const setToken = (token: string) => {
    if (deps.token === undefined) throw new Error('the simulator takes no token: start it with one to rotate it');
    deps.token = token;
  };
  // The front door reads deps.token on every request, so a rotation applies to the next one.
  const deps: HttpDeps = {
    store,
    rest: new Rest(store, ctx),
    actions,
    settings: ctx,
    faults,
    authorizer,
    recorder,
    control: { faults, authorizer, recorder, store, sim: simStore, settle, setToken },
    token: opts.token,
    clientCertAuth: !!opts.clientCertAuth,
    bookmarkIntervalMs: opts.bookmarkIntervalMs ?? 1000,
  };
  const http = await listen(deps, opts.port ?? 0, tls);
  const kubeconfig = renderKubeconfig({
    server: http.url,
    caCert: pki?.caCert,
    token: opts.token,
    clientCert: opts.clientCertAuth ? pki?.clientCert : undefined,
    clientKey: opts.clientCertAuth ? pki?.clientKey : undefined,
  });
  const kubeconfigPath = writeKubeconfig(kubeconfig, opts.kubeconfigPath);

  let closed = false;
  let currentKubeconfig = kubeconfig;
  return {
    url: http.url,
    kubeconfigPath,
    store: simStore,
    faults,
    rbac: authorizer,
    calls: recorder.calls,
    resetCalls: () => recorder.reset(),
    settle,
    pauseControllers: () => scheduler.pause(),
    resumeControllers: () => scheduler.resume(),
    get kubeconfig() {
      return currentKubeconfig;
    },
    async rotateCertificates(o = {}) {
      if (!pki) throw new Error('the simulator serves plain http: start it with tls to rotate certificates');
      pki = await createPki();
      http.rotate({ key: pki.serverKey, cert: pki.serverCert, ca: pki.caCert, requestCert: !!opts.clientCertAuth });
      currentKubeconfig = renderKubeconfig({
        server: http.url,
        caCert: pki.caCert,
        token: deps.token,
        clientCert: opts.clientCertAuth ? pki.clientCert : undefined,
        clientKey: opts.clientCertAuth ? pki.clientKey : undefined,
      });
      if (o.rewriteKubeconfig) writeKubeconfig(currentKubeconfig, kubeconfigPath);
      return currentKubeconfig;
    },
    rotateToken: setToken,
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(ticker);
      unsubscribeClock?.();
      scheduler.close();
      for (const c of [handler, controller, snapshots, restores, services]) c.close();
      await http.close();
    },
  };
}
