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
}

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
  };
}
