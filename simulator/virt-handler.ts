// What virt-controller's VMI side and virt-handler do to a VirtualMachineInstance: walk it
// through "" -> Pending -> Scheduling -> Scheduled -> Running one step at a time, keep its
// Ready condition in line with the phase and pause state (a paused VMI is not Ready), and
// finish graceful deletion by dropping the finalizer once the guest is gone: at once without a
// domain, after the VMI's grace period with one (pkg/virt-handler/vm.go: the ACPI shutdown
// waits up to terminationGracePeriodSeconds; a paused guest cannot act on it either,
// pkg/virt-launcher/virtwrap/manager.go). Times are the simulator clock's.

import { randomUUID } from 'node:crypto';
import { formatTime } from './clock';
import type { SimContext } from './context';
import { clone, getCondition, objectKey, removeCondition, upsertCondition } from './objects';
import { VMI } from './resources';
import type { Condition, VirtualMachine, VirtualMachineInstance } from './types';

export const VMI_FINALIZERS = ['kubevirt.io/virtualMachineControllerFinalize', 'foregroundDeleteVirtualMachine'];
const PROGRESSION = ['', 'Pending', 'Scheduling', 'Scheduled', 'Running'];
/** staging/src/kubevirt.io/api/core/v1/types.go DefaultGracePeriodSeconds: an unset grace means 30 s. */
export const DEFAULT_TERMINATION_GRACE_SECONDS = 30;

export interface NewVmiOptions {
  paused?: boolean;
  createdAt?: Date;
  uid?: string;
}

function readyCondition(vmi: VirtualMachineInstance, now: string): Condition | undefined {
  const phase = vmi.status.phase ?? '';
  if (vmi.metadata.deletionTimestamp)
    return { type: 'Ready', status: 'False', reason: 'PodTerminating', lastProbeTime: null, lastTransitionTime: now };
  if (phase === '') return undefined;
  if (phase === 'Pending')
    return {
      type: 'Ready',
      status: 'False',
      reason: 'PodNotExists',
      message: 'virt-launcher pod has not yet been scheduled',
      lastProbeTime: null,
      lastTransitionTime: now,
    };
  if (phase !== 'Running')
    return {
      type: 'Ready',
      status: 'False',
      reason: 'GuestNotRunning',
      message: 'Guest VM is not reported as running',
      lastProbeTime: null,
      lastTransitionTime: now,
    };
  if (getCondition(vmi.status.conditions, 'Paused')?.status === 'True') {
    return {
      type: 'Ready',
      status: 'False',
      reason: 'ReadinessGatesNotReady',
      message: 'the status of pod readiness gate "kubevirt.io/virtual-machine-unpaused" is not "True", but False',
      lastProbeTime: null,
      lastTransitionTime: now,
    };
  }
  return { type: 'Ready', status: 'True', lastProbeTime: null, lastTransitionTime: now };
}

/** Recompute the conditions virt-handler owns after a phase or pause change. */
export function refreshConditions(ctx: SimContext, vmi: VirtualMachineInstance): void {
  const now = ctx.now();
  let conds = vmi.status.conditions ?? [];
  // While the pod's readiness gate lags a pause or unpause, Ready (copied from the pod) stays as it was.
  const lagging = ctx.gateLagging.has(vmi.metadata.uid ?? '') && !vmi.metadata.deletionTimestamp;
  const ready = lagging ? getCondition(conds, 'Ready') : readyCondition(vmi, now);
  conds = ready ? upsertCondition(conds, ready) : removeCondition(conds, 'Ready');
  const running = vmi.status.phase === 'Running' && !vmi.metadata.deletionTimestamp;
  const agent = running && ctx.agents.has(objectKey(vmi.metadata.namespace, vmi.metadata.name ?? ''));
  if (agent) {
    if (!getCondition(conds, 'AgentConnected'))
      conds = [...conds, { type: 'AgentConnected', status: 'True', lastProbeTime: now, lastTransitionTime: null }];
  } else {
    conds = removeCondition(conds, 'AgentConnected');
  }
  vmi.status.conditions = conds;
}

function setPhase(ctx: SimContext, vmi: VirtualMachineInstance, phase: string): void {
  vmi.status.phase = phase;
  if (phase) {
    vmi.status.phaseTransitionTimestamps = [
      ...(vmi.status.phaseTransitionTimestamps ?? []),
      { phase, phaseTransitionTimestamp: ctx.now() },
    ];
  }
  if (phase === 'Scheduled' || phase === 'Running') {
    vmi.status.nodeName = 'sim-node-1';
    vmi.metadata.labels = { ...(vmi.metadata.labels ?? {}), 'kubevirt.io/nodeName': 'sim-node-1' };
  }
  refreshConditions(ctx, vmi);
}

export function buildVMI(ctx: SimContext, vm: VirtualMachine, opts: NewVmiOptions = {}): VirtualMachineInstance {
  const template = vm.spec.template ?? {};
  const spec = clone(template.spec ?? {});
  // An unset grace stays unset in the VMI spec (template.go only defaults the pod's).
  if (opts.paused) spec.startStrategy = 'Paused';
  const created = opts.createdAt ? formatTime(opts.createdAt) : ctx.now();
  const vmi: VirtualMachineInstance = {
    apiVersion: 'kubevirt.io/v1',
    kind: 'VirtualMachineInstance',
    metadata: {
      name: vm.metadata.name,
      namespace: vm.metadata.namespace,
      uid: opts.uid ?? randomUUID(),
      creationTimestamp: created,
      labels: { ...(template.metadata?.labels ?? {}) },
      annotations: {
        ...(template.metadata?.annotations ?? {}),
        'kubevirt.io/vm-generation': String(vm.metadata.generation ?? 1),
      },
      finalizers: [...VMI_FINALIZERS],
      ownerReferences: [
        {
          apiVersion: 'kubevirt.io/v1',
          kind: 'VirtualMachine',
          name: vm.metadata.name ?? '',
          uid: vm.metadata.uid ?? '',
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
    },
    spec,
    status: {},
  };
  return vmi;
}

/** Longest grace period waited out on a real timer when the simulator runs on the system clock. */
const MAX_TIMED_TEARDOWN_MS = 5_000;

export class VirtHandler {
  private unsubscribe: () => void;
  /** VMIs being deleted whose guest is still shutting down (uid -> key). */
  private readonly tearingDown = new Map<string, { namespace?: string; name: string }>();
  private readonly manualClock: boolean;

  constructor(private readonly ctx: SimContext) {
    this.manualClock = typeof (ctx.clock as { subscribe?: unknown }).subscribe === 'function';
    this.unsubscribe = ctx.store.subscribe((e) => {
      if (e.resource !== VMI || e.type === 'DELETED') return;
      const vmi = e.object as VirtualMachineInstance;
      if (vmi.metadata.deletionTimestamp && !e.old?.metadata.deletionTimestamp) this.scheduleTeardown(vmi);
      else if (vmi.metadata.deletionTimestamp && this.tearingDown.has(vmi.metadata.uid ?? ''))
        this.recheckTeardown(vmi);
    });
  }

  close(): void {
    this.unsubscribe();
  }

  /** Create a VMI for the VM (virt-controller's startVMI) and start walking its phases. */
  start(vm: VirtualMachine, paused: boolean): VirtualMachineInstance {
    const vmi = this.ctx.store.create(VMI, buildVMI(this.ctx, vm, { paused })) as VirtualMachineInstance;
    this.scheduleStep(vmi, paused);
    return vmi;
  }

  private stepKey(vmi: VirtualMachineInstance): string {
    return `vmi-step:${vmi.metadata.uid}`;
  }

  private scheduleStep(vmi: VirtualMachineInstance, paused: boolean): void {
    const uid = vmi.metadata.uid!;
    const ns = vmi.metadata.namespace;
    const name = vmi.metadata.name!;
    this.ctx.scheduler.schedule(this.stepKey(vmi), this.ctx.stepMs, () => {
      const cur = this.ctx.store.get(VMI, ns, name) as VirtualMachineInstance | undefined;
      if (!cur || cur.metadata.uid !== uid || cur.metadata.deletionTimestamp) return;
      const i = PROGRESSION.indexOf(cur.status?.phase ?? '');
      if (i < 0 || i === PROGRESSION.length - 1) return;
      // The launcher pod stays Pending until its WaitForFirstConsumer volume binds.
      if (cur.status?.phase === 'Pending' && this.ctx.volumes.get(objectKey(ns, name)) === 'WaitingForVolumeBinding')
        return;
      const next = clone(cur);
      next.status = next.status ?? {};
      const phase = PROGRESSION[i + 1];
      if (phase === 'Running' && paused) {
        next.status.conditions = withPaused(next.status.conditions ?? [], true, this.ctx.now());
      }
      setPhase(this.ctx, next, phase);
      const stored = this.ctx.store.update(VMI, next) as VirtualMachineInstance;
      if (phase !== 'Running') this.scheduleStep(stored, paused);
    });
  }

  /** Walk on from where the VMI stands (a volume it waited for bound). */
  resumeProgress(vmi: VirtualMachineInstance): void {
    this.scheduleStep(vmi, vmi.spec?.startStrategy === 'Paused');
  }

  /** Stop walking a VMI's phases (someone set its phase by hand). */
  cancelProgress(vmi: VirtualMachineInstance): void {
    this.ctx.scheduler.cancel(this.stepKey(vmi));
  }

  private teardownDueMs(vmi: VirtualMachineInstance): number {
    return teardownDueMs(vmi);
  }

  private scheduleTeardown(vmi: VirtualMachineInstance): void {
    const uid = vmi.metadata.uid!;
    this.cancelProgress(vmi);
    this.tearingDown.set(uid, { namespace: vmi.metadata.namespace, name: vmi.metadata.name! });
    this.recheckTeardown(vmi);
  }

  /** Teardowns whose grace period ran out proceed (the clock moved, time passed, or a stop shortened the grace). */
  recheck(): void {
    for (const [uid, ref] of [...this.tearingDown]) {
      const cur = this.ctx.store.get(VMI, ref.namespace, ref.name) as VirtualMachineInstance | undefined;
      if (!cur || cur.metadata.uid !== uid) this.tearingDown.delete(uid);
      else this.recheckTeardown(cur);
    }
  }

  private recheckTeardown(vmi: VirtualMachineInstance): void {
    const uid = vmi.metadata.uid!;
    const ns = vmi.metadata.namespace;
    const name = vmi.metadata.name!;
    const left = this.teardownDueMs(vmi) - this.ctx.clock.now().getTime();
    // With the system clock, a short wait is a timer (settle() waits for it); longer ones and any
    // wait on a manual clock are picked up by recheck() when time moves.
    if (left > 0 && (this.manualClock || left > MAX_TIMED_TEARDOWN_MS)) return;
    this.ctx.scheduler.cancel(`vmi-teardown:${uid}`);
    this.ctx.scheduler.schedule(`vmi-teardown:${uid}`, Math.max(this.ctx.stepMs, left), () => {
      const cur = this.ctx.store.get(VMI, ns, name);
      if (!cur || cur.metadata.uid !== uid) return;
      this.tearingDown.delete(uid);
      const next = clone(cur);
      next.metadata.finalizers = (next.metadata.finalizers ?? []).filter((f) => !VMI_FINALIZERS.includes(f));
      this.ctx.store.update(VMI, next);
    });
  }

  /**
   * Pause or unpause as the guest would report it a moment after virt-handler acted. Ready
   * follows after the readiness gate delay: virt-controller patches the launcher pod's
   * kubevirt.io/virtual-machine-unpaused condition from the VMI's Paused condition
   * (pkg/virt-controller/watch/vmi/lifecycle.go), kubelet recomputes pod Ready, and the VMI's
   * Ready and the Service's endpoint follow the pod (pkg/virt-controller/services/template.go
   * readiness gate).
   */
  schedulePause(vmi: VirtualMachineInstance, paused: boolean): void {
    const uid = vmi.metadata.uid!;
    const ns = vmi.metadata.namespace;
    const name = vmi.metadata.name!;
    const gateMs = this.ctx.readinessGateDelayMs;
    this.ctx.scheduler.schedule(`vmi-pause:${uid}`, this.ctx.stepMs, () => {
      const cur = this.ctx.store.get(VMI, ns, name) as VirtualMachineInstance | undefined;
      if (!cur || cur.metadata.uid !== uid || cur.metadata.deletionTimestamp) return;
      const next = clone(cur);
      next.status.conditions = withPaused(next.status.conditions ?? [], paused, this.ctx.now());
      if (gateMs > 0) this.ctx.gateLagging.add(uid);
      refreshConditions(this.ctx, next);
      this.ctx.store.update(VMI, next);
      if (gateMs > 0) this.scheduleGate(uid, ns, name, gateMs);
    });
  }

  private scheduleGate(uid: string, ns: string | undefined, name: string, ms: number): void {
    this.ctx.scheduler.cancel(`vmi-gate:${uid}`);
    this.ctx.scheduler.schedule(`vmi-gate:${uid}`, ms, () => {
      this.ctx.gateLagging.delete(uid);
      const cur = this.ctx.store.get(VMI, ns, name) as VirtualMachineInstance | undefined;
      if (!cur || cur.metadata.uid !== uid) return;
      const next = clone(cur);
      refreshConditions(this.ctx, next);
      this.ctx.store.update(VMI, next);
    });
  }

  /** Set a phase by hand (guest crash -> Failed, guest shutdown -> Succeeded, ...). */
  setPhase(vmi: VirtualMachineInstance, phase: string): VirtualMachineInstance {
    this.cancelProgress(vmi);
    const next = clone(vmi);
    next.status = next.status ?? {};
    if (phase !== 'Running') next.status.conditions = removeCondition(next.status.conditions ?? [], 'Paused');
    setPhase(this.ctx, next, phase);
    return this.ctx.store.update(VMI, next) as VirtualMachineInstance;
  }

  /** Re-evaluate agent/ready conditions after a test flipped the guest agent. */
  refresh(vmi: VirtualMachineInstance): VirtualMachineInstance {
    const next = clone(vmi);
    next.status = next.status ?? {};
    refreshConditions(this.ctx, next);
    return this.ctx.store.update(VMI, next) as VirtualMachineInstance;
  }
}

/** The VMI's Paused condition as virt-handler sets and clears it on pause and unpause (reason PausedByUser). */
export function withPaused(conditions: Condition[], paused: boolean, now: string): Condition[] {
  return paused
    ? upsertCondition(conditions, {
        type: 'Paused',
        status: 'True',
        reason: 'PausedByUser',
        message: 'VMI was paused by user',
        lastProbeTime: now,
        lastTransitionTime: now,
      })
    : removeCondition(conditions, 'Paused');
}

/** When the guest of a VMI being deleted is gone: its grace period after deletion while a domain runs. */
export function teardownDueMs(vmi: VirtualMachineInstance): number {
  const deleted = Date.parse(vmi.metadata.deletionTimestamp ?? '');
  if (vmi.status?.phase !== 'Running') return deleted;
  const grace = vmi.spec?.terminationGracePeriodSeconds as number | undefined | null;
  return deleted + (grace ?? DEFAULT_TERMINATION_GRACE_SECONDS) * 1000;
}
