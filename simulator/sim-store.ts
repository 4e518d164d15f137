/* eslint-disable @typescript-eslint/no-explicit-any -- Kubernetes objects are open-ended JSON; like KubeVirt's controllers, the simulator reads the fields it knows and passes the rest through */
// Direct, in-process access to the simulated cluster for test setup and assertions:
// seed VMs in any state (fast enough for 10,000), poke VMI phases and conditions, inject
// snapshot failures, add Services. Everything goes through the same store, so watches and
// controllers see these changes like any other write.

import { randomUUID } from 'node:crypto';
import type { GuestUser, SimContext, SnapshotApi, VolumeState } from './context';
import { VM_FINALIZER, type VMController } from './controller';
import { runStrategyOf } from './kubevirt';
import { clone, objectKey, removeCondition, upsertCondition } from './objects';
import { ENDPOINT_SLICE, RESTORE, SERVICE, SNAPSHOT, SNAPSHOT_CONTENT, VM, VMI } from './resources';
import type { ServiceController, ServiceSpecInput } from './services';
import { sliceNameFor } from './services';
import type { SnapshotController } from './snapshots';
import type { ObjectStore } from './store';
import type {
  Condition,
  EndpointSlice,
  KubeObject,
  RunStrategy,
  Service,
  VirtualMachine,
  VirtualMachineInstance,
  VirtualMachineRestore,
  VirtualMachineSnapshot,
} from './types';
import { computeVMStatus } from './vm-status';
import { buildVMI, refreshConditions, withPaused, type VirtHandler } from './virt-handler';

export interface AddVMOptions {
  /** Seed with a Running VMI. Default false: no VMI. */
  running?: boolean;
  /** The VMI is Running with Paused=True (implies running). */
  paused?: boolean;
  /** The guest agent is connected: Running VMIs report AgentConnected=True. */
  agentConnected?: boolean;
  /** Seed the VMI in this phase (e.g. Failed, Succeeded, Scheduling, or '' for just created); it stays there. */
  vmiPhase?: string;
  /** creationTimestamp (and phase transition times) of the seeded VMI. */
  vmiCreatedAt?: Date;
}

export interface VMInput {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [k: string]: unknown;
  };
  spec?: {
    runStrategy?: RunStrategy | string;
    running?: boolean;
    template?: { metadata?: Record<string, any>; spec?: any };
    [k: string]: unknown;
  };
}

export type BulkVMInput = VMInput | { vm: VMInput; opts?: AddVMOptions };

export interface SimStoreDeps {
  ctx: SimContext;
  controller: VMController;
  handler: VirtHandler;
  snapshots: SnapshotController;
  services: ServiceController;
}

/**
 * A seeded VM without a template gets one whose guest is killed at once on stop
 * (terminationGracePeriodSeconds 0), so tests that do not study shutdown are not held for
 * KubeVirt's 30 s default; give a template with a grace period (or none) to see Stopping last.
 */
function defaultTemplate(name: string) {
  return {
    metadata: { labels: { 'kubevirt.io/vm': name } },
    spec: {
      terminationGracePeriodSeconds: 0,
      domain: {
        devices: { disks: [{ name: 'rootdisk', disk: { bus: 'virtio' } }] },
        resources: { requests: { memory: '128Mi' } },
      },
      volumes: [{ name: 'rootdisk', containerDisk: { image: 'quay.io/containerdisks/fedora:latest' } }],
    },
  };
}

export class SimStore {
  constructor(private readonly deps: SimStoreDeps) {}

  /** The underlying object store (resourceVersions, history), for advanced tests. */
  get raw(): ObjectStore {
    return this.deps.ctx.store;
  }

  resourceVersion(): string {
    return String(this.deps.ctx.store.currentRv());
  }

  /** Forget watch history, like etcd compaction: older resourceVersions now get 410. */
  compact(): void {
    this.deps.ctx.store.compact();
  }

  /**
   * Seed a VM in the given state, taken as-is: controllers act on it only once something
   * about it changes (an API call, a store edit), so a seeded "Always but not running" or
   * "RerunOnFailure with a Failed VMI" stays put for the request under test.
   */
  addVM(input: VMInput, opts: AddVMOptions = {}): VirtualMachine {
    const { ctx } = this.deps;
    ctx.quiet = true;
    try {
      return clone(this.seedVM(input, opts));
    } finally {
      ctx.quiet = false;
    }
  }

  /** Seed many VMs at once (same rules as addVM); returns how many were created. */
  addVMs(items: BulkVMInput[]): number {
    const { ctx } = this.deps;
    ctx.quiet = true;
    try {
      for (const item of items) {
        if ('vm' in item) this.seedVM(item.vm, item.opts ?? {});
        else this.seedVM(item, {});
      }
    } finally {
      ctx.quiet = false;
    }
    return items.length;
  }

  /** Have the controller reconcile a seeded VM now, as if it had just changed. */
  reconcile(namespace: string, name: string): void {
    this.deps.controller.enqueue(namespace, name);
  }

  private seedVM(input: VMInput, opts: AddVMOptions): VirtualMachine {
    const { ctx } = this.deps;
    const name = input.metadata.name;
    const namespace = input.metadata.namespace ?? 'default';
    const spec = { ...(clone(input.spec) ?? {}) };
    if (spec.runStrategy === undefined && spec.running === undefined) spec.runStrategy = 'Halted';
    if (!spec.template) spec.template = defaultTemplate(name);
    const vm: VirtualMachine = {
      apiVersion: 'kubevirt.io/v1',
      kind: 'VirtualMachine',
      metadata: {
        ...clone(input.metadata),
        name,
        namespace,
        uid: randomUUID(),
        generation: 1,
        finalizers: [VM_FINALIZER],
      },
      spec,
    };
    const rs = runStrategyOf(vm);
    const strategy = 'strategy' in rs ? rs.strategy : 'Halted';
    if (opts.agentConnected) ctx.agents.add(objectKey(namespace, name));
    const running = opts.paused ? true : (opts.running ?? false);
    const phase = opts.vmiPhase ?? (running ? 'Running' : undefined);
    let vmi: VirtualMachineInstance | undefined;
    if (phase !== undefined) {
      vmi = buildVMI(ctx, vm, { paused: opts.paused, createdAt: opts.vmiCreatedAt });
      vmi.metadata.uid = randomUUID();
      this.shapeSeededVMI(vmi, phase, !!opts.paused);
    }
    // A seeded VM has a history: it ran before, so status.runStrategy is already known.
    vm.status = computeVMStatus(
      { ...vm, status: { runStrategy: strategy } },
      vmi,
      ctx.now(),
      ctx.volumes.get(objectKey(namespace, name)),
    );
    const stored = ctx.store.create(VM, vm) as VirtualMachine;
    if (vmi) ctx.store.create(VMI, vmi);
    return stored;
  }

  private shapeSeededVMI(vmi: VirtualMachineInstance, phase: string, paused: boolean): void {
    const at = vmi.metadata.creationTimestamp!;
    const order = ['Pending', 'Scheduling', 'Scheduled', 'Running'];
    const idx = order.indexOf(phase);
    const passed = phase === '' ? [] : idx >= 0 ? order.slice(0, idx + 1) : [...order, phase];
    if (phase) vmi.status.phase = phase;
    vmi.status.phaseTransitionTimestamps = passed.map((p) => ({ phase: p, phaseTransitionTimestamp: at }));
    if (['Scheduled', 'Running', 'Succeeded', 'Failed'].includes(phase)) {
      vmi.status.nodeName = 'sim-node-1';
      vmi.metadata.labels = { ...(vmi.metadata.labels ?? {}), 'kubevirt.io/nodeName': 'sim-node-1' };
    }
    if (paused && phase === 'Running') {
      vmi.status.conditions = withPaused([], true, at);
    }
    refreshConditions(this.deps.ctx, vmi);
    for (const c of vmi.status.conditions ?? []) if (c.lastTransitionTime) c.lastTransitionTime = at;
  }

  getVM(namespace: string, name: string): VirtualMachine | undefined {
    return clone(this.deps.ctx.store.get(VM, namespace, name) as VirtualMachine | undefined);
  }

  getVMI(namespace: string, name: string): VirtualMachineInstance | undefined {
    return clone(this.deps.ctx.store.get(VMI, namespace, name) as VirtualMachineInstance | undefined);
  }

  listVMs(namespace?: string): VirtualMachine[] {
    return clone(this.deps.ctx.store.list(VM, namespace) as VirtualMachine[]);
  }

  listVMIs(namespace?: string): VirtualMachineInstance[] {
    return clone(this.deps.ctx.store.list(VMI, namespace) as VirtualMachineInstance[]);
  }

  /** Remove a VM and its VMI at once (no graceful teardown). */
  deleteVM(namespace: string, name: string): boolean {
    const { store } = this.deps.ctx;
    const existed = !!store.get(VM, namespace, name);
    if (store.get(VMI, namespace, name)) store.delete(VMI, namespace, name, { force: true });
    if (existed) store.delete(VM, namespace, name, { force: true });
    this.deps.ctx.agents.delete(objectKey(namespace, name));
    return existed;
  }

  /** Edit a VM in place (labels, annotations, spec) as another client would; no admission. */
  updateVM(namespace: string, name: string, mutate: (vm: VirtualMachine) => void): VirtualMachine {
    const cur = this.mustVM(namespace, name);
    const next = clone(cur);
    mutate(next);
    return clone(this.deps.ctx.store.update(VM, next) as VirtualMachine);
  }

  /** Guest crash (Failed), guest shutdown (Succeeded), or any other phase; progression stops. */
  setVMIPhase(namespace: string, name: string, phase: string): VirtualMachineInstance {
    const vmi = this.mustVMI(namespace, name);
    return clone(this.deps.handler.setPhase(vmi, phase));
  }

  /** Set a condition on the VMI (mirrored to the VM by the controller) or directly on the VM. */
  setCondition(
    namespace: string,
    name: string,
    condition: Partial<Condition> & { type: string; status: string },
    on: 'vmi' | 'vm' = 'vmi',
  ): void {
    const now = this.deps.ctx.now();
    const full: Condition = { lastProbeTime: null, lastTransitionTime: now, ...condition };
    if (on === 'vm') {
      this.updateVM(namespace, name, (vm) => {
        vm.status = { ...(vm.status ?? {}), conditions: upsertCondition(vm.status?.conditions ?? [], full) };
      });
      return;
    }
    const vmi = clone(this.mustVMI(namespace, name));
    vmi.status.conditions = upsertCondition(vmi.status.conditions ?? [], full);
    this.deps.ctx.store.update(VMI, vmi);
  }

  removeCondition(namespace: string, name: string, type: string, on: 'vmi' | 'vm' = 'vmi'): void {
    if (on === 'vm') {
      this.updateVM(namespace, name, (vm) => {
        vm.status = { ...(vm.status ?? {}), conditions: removeCondition(vm.status?.conditions ?? [], type) };
      });
      return;
    }
    const vmi = clone(this.mustVMI(namespace, name));
    vmi.status.conditions = removeCondition(vmi.status.conditions ?? [], type);
    this.deps.ctx.store.update(VMI, vmi);
  }

  /** Connect or disconnect the guest agent of a VM (current and future VMIs). */
  setAgentConnected(namespace: string, name: string, connected: boolean): void {
    const key = objectKey(namespace, name);
    if (connected) this.deps.ctx.agents.add(key);
    else this.deps.ctx.agents.delete(key);
    const vmi = this.deps.ctx.store.get(VMI, namespace, name) as VirtualMachineInstance | undefined;
    if (vmi) this.deps.handler.refresh(vmi);
  }

  getSnapshot(namespace: string, name: string): VirtualMachineSnapshot | undefined {
    return clone(this.deps.ctx.store.get(SNAPSHOT, namespace, name) as VirtualMachineSnapshot | undefined);
  }

  listSnapshots(namespace?: string): VirtualMachineSnapshot[] {
    return clone(this.deps.ctx.store.list(SNAPSHOT, namespace) as VirtualMachineSnapshot[]);
  }

  getSnapshotContent(namespace: string, name: string): KubeObject | undefined {
    return clone(this.deps.ctx.store.get(SNAPSHOT_CONTENT, namespace, name));
  }

  getRestore(namespace: string, name: string): VirtualMachineRestore | undefined {
    return clone(this.deps.ctx.store.get(RESTORE, namespace, name) as VirtualMachineRestore | undefined);
  }

  listRestores(namespace?: string): VirtualMachineRestore[] {
    return clone(this.deps.ctx.store.list(RESTORE, namespace) as VirtualMachineRestore[]);
  }

  /**
   * The next snapshot of this VM reports a storage error it recovers from: "In error state"
   * until the simulator clock passes the error time + recoverAfterMs, then it completes.
   */
  errorNextSnapshot(namespace: string, vmName: string, recoverAfterMs: number, message?: string): void {
    this.deps.snapshots.errorNext(namespace, vmName, recoverAfterMs, message);
  }

  /** The next snapshot of this VM reports a storage error and stays "In error state" until its failureDeadline, then Failed. */
  failNextSnapshot(namespace: string, vmName: string, message?: string): void {
    this.deps.snapshots.failNext(namespace, vmName, message);
  }

  /** The next snapshot of this VM locks its source and never completes (until its failureDeadline). */
  stallNextSnapshot(namespace: string, vmName: string): void {
    this.deps.snapshots.stallNext(namespace, vmName);
  }

  addService(namespace: string, name: string, spec: ServiceSpecInput): Service {
    return clone(this.deps.services.add(namespace, name, spec));
  }

  /** A Service whose guest HTTP service the simulator runs (see GUEST_LISTEN_DELAY_ANNOTATION). */
  async addGuestService(namespace: string, name: string, spec: ServiceSpecInput): Promise<Service> {
    return clone(await this.deps.services.addWithGuest(namespace, name, spec));
  }

  /** Port of a simulator-run guest's service (it accepts connections only while the guest listens). */
  guestPort(namespace: string, serviceName: string): number | undefined {
    return this.deps.services.guestPort(namespace, serviceName);
  }

  /**
   * The state of the VM's DataVolumes/PVCs (undefined = all ready): Provisioning (an import
   * runs), WaitingForVolumeBinding (a WaitForFirstConsumer PVC is unbound), DataVolumeError.
   */
  setVolumeState(namespace: string, name: string, state: VolumeState | undefined): void {
    const key = objectKey(namespace, name);
    if (state) this.deps.ctx.volumes.set(key, state);
    else this.deps.ctx.volumes.delete(key);
    const vmi = this.deps.ctx.store.get(VMI, namespace, name) as VirtualMachineInstance | undefined;
    if (!state && vmi?.status?.phase === 'Pending') this.deps.handler.resumeProgress(vmi);
    this.deps.controller.enqueue(namespace, name);
  }

  /** A live migration of the VM's VMI starts (status.migrationState.startTimestamp) or ends. */
  setMigrating(namespace: string, name: string, migrating: boolean): VirtualMachineInstance {
    const vmi = clone(this.mustVMI(namespace, name));
    const now = this.deps.ctx.now();
    const prev = (vmi.status.migrationState ?? {}) as Record<string, unknown>;
    vmi.status.migrationState = migrating
      ? { migrationUid: randomUUID(), sourceNode: 'sim-node-1', targetNode: 'sim-node-2', startTimestamp: now }
      : { ...prev, endTimestamp: now, completed: true };
    if (!migrating) {
      vmi.status.nodeName = 'sim-node-2';
      vmi.metadata.labels = { ...(vmi.metadata.labels ?? {}), 'kubevirt.io/nodeName': 'sim-node-2' };
    }
    return clone(this.deps.ctx.store.update(VMI, vmi) as VirtualMachineInstance);
  }

  /** The VM webhook now refuses this VM's spec (a feature gate turned off, a rule tightened); undefined lifts it. */
  setSpecInvalid(namespace: string, name: string, message: string | undefined): void {
    const key = objectKey(namespace, name);
    if (message) this.deps.ctx.invalidSpecs.set(key, message);
    else this.deps.ctx.invalidSpecs.delete(key);
  }

  /** The users the VM's guest agent reports logged in (GET …/userlist); undefined or [] = nobody. */
  setGuestUsers(namespace: string, name: string, users: GuestUser[] | undefined): void {
    const key = objectKey(namespace, name);
    if (users?.length)
      this.deps.ctx.guestUsers.set(
        key,
        users.map((u) => ({ ...u })),
      );
    else this.deps.ctx.guestUsers.delete(key);
  }

  /** How long the unpaused readiness gate (and so Ready and the endpoint) lags a pause or unpause; 0 = at once. */
  setReadinessGateDelay(ms: number): void {
    this.deps.ctx.readinessGateDelayMs = ms;
  }

  /** How long virt-api holds a start/stop/restart between reading the VM and patching it. */
  setVirtApiWindow(ms: number): void {
    this.deps.ctx.virtApiWindowMs = ms;
  }

  /** snapshot.kubevirt.io served, absent (KubeVirt before 1.3), or with the Snapshot feature gate off. */
  setSnapshotApi(mode: SnapshotApi): void {
    this.deps.ctx.snapshotApi = mode;
  }

  getService(namespace: string, name: string): Service | undefined {
    return clone(this.deps.ctx.store.get(SERVICE, namespace, name) as Service | undefined);
  }

  getEndpointSlice(namespace: string, serviceName: string): EndpointSlice | undefined {
    return clone(
      this.deps.ctx.store.get(ENDPOINT_SLICE, namespace, sliceNameFor(serviceName)) as EndpointSlice | undefined,
    );
  }

  private mustVM(namespace: string, name: string): VirtualMachine {
    const vm = this.deps.ctx.store.get(VM, namespace, name) as VirtualMachine | undefined;
    if (!vm) throw new Error(`VirtualMachine ${namespace}/${name} does not exist`);
    return vm;
  }

  private mustVMI(namespace: string, name: string): VirtualMachineInstance {
    const vmi = this.deps.ctx.store.get(VMI, namespace, name) as VirtualMachineInstance | undefined;
    if (!vmi) throw new Error(`VirtualMachineInstance ${namespace}/${name} does not exist`);
    return vmi;
  }
}
