// What every simulator module shares: the store, the clock, the progress scheduler and
// the pacing of controller steps.

import { formatTime, type Clock } from './clock';
import type { Scheduler } from './scheduler';
import type { ObjectStore } from './store';

export interface SimContext {
  store: ObjectStore;
  clock: Clock;
  scheduler: Scheduler;
  stepMs: number;
  snapshotStepMs: number;
  now(): string;
  /** VMs whose guest agent is connected (ns/name): their VMIs report AgentConnected once Running. */
  agents: Set<string>;
  /** While seeding consistent state in bulk, controllers skip their change-triggered reconciles. */
  quiet: boolean;
  /**
   * The state of each VM's DataVolumes/PVCs (ns/name), which the simulator does not serve as
   * objects: the VM controller and printableStatus read it as KubeVirt reads its DataVolume and
   * PVC informers. Absent = every volume bound and ready.
   */
  volumes: Map<string, VolumeState>;
  /** VMs (ns/name) whose spec the VM webhook no longer accepts, with the webhook's message. */
  invalidSpecs: Map<string, string>;
  /** Time virt-api spends between reading a VM and patching it; > 0 lets concurrent writes race. */
  virtApiWindowMs: number;
  /** Whether snapshot.kubevirt.io is served: KubeVirt < 1.3 has no v1beta1, the Snapshot gate may be off. */
  snapshotApi: SnapshotApi;
}

export type VolumeState = 'Provisioning' | 'WaitingForVolumeBinding' | 'DataVolumeError';
export const VOLUME_STATES: VolumeState[] = ['Provisioning', 'WaitingForVolumeBinding', 'DataVolumeError'];
export type SnapshotApi = 'served' | 'absent' | 'gateOff';

export function createContext(
  store: ObjectStore,
  clock: Clock,
  scheduler: Scheduler,
  stepMs: number,
  snapshotStepMs: number,
): SimContext {
  return {
    store,
    clock,
    scheduler,
    stepMs,
    snapshotStepMs,
    now: () => formatTime(clock.now()),
    agents: new Set(),
    quiet: false,
    volumes: new Map(),
    invalidSpecs: new Map(),
    virtApiWindowMs: 0,
    snapshotApi: 'served',
  };
}
