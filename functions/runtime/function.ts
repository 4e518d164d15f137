import type { CloudEvent } from './cloudevents/event';
import type { KubeVirt } from './kubevirt';
import type { VirtualMachine } from './kubevirt-types';
import type { Entry, Pending } from './ledger';

// What a function sees and returns. A function is one small file that takes a
// validated command for one VM and returns an outcome; HTTP, CloudEvents,
// validation, policy, retries and replies are the runtime's business.

/** Fields every VM command shares (contract §1); each function adds its own. */
export interface VmCommand {
  name?: string;
  selector?: { matchLabels: Record<string, string> };
  namespace?: string;
  dryRun?: boolean;
  wait?: { timeoutSeconds: number };
}

export interface Outcome {
  outcome: 'accepted' | 'completed' | 'failed';
  reason?: string;
  message?: string;
  /** The VM as last observed, for the reply's status. */
  vm?: VirtualMachine;
  snapshot?: { name: string; phase?: string; readyToUse?: boolean; indications?: string[] };
  restore?: { name: string; complete?: boolean };
}

export interface VmContext<C extends VmCommand = VmCommand> {
  command: C;
  namespace: string;
  name: string;
  /** The VM as read just before the function runs (it exists and passed policy). */
  vm: VirtualMachine;
  event: CloudEvent;
  /** Stable for a request across redeliveries and replicas: derived from its source and id. */
  requestKey: string;
  /** Unique to this delivery (stable across its internal retries), to tell our own claims from another replica's. */
  deliveryId: string;
  kubevirt: KubeVirt;
  now(): Date;
  /** Epoch ms until which `wait` may hold the reply; undefined when the command did not ask to wait. */
  waitUntil?: number;
  /**
   * Epoch ms until which the function may hold the event to get past a passing
   * state (a VMI shutting down) when the command did not ask to wait: the retry
   * budget (VIRTWAKE_RETRY_BUDGET). Past it the event goes back to Knative.
   */
  budgetUntil?: number;
  /** Aborted when the server shuts down, so long waits give the event back to Knative. */
  signal: AbortSignal;
  /**
   * contract §6: record this request in the VM's ledger right before the
   * KubeVirt call that acts on it, with what its outcome waits for. Absent for a
   * dry run; a second call in one delivery changes nothing.
   */
  claim?(p: Omit<Pending, 'deadline'>): Promise<void>;
  /** What an earlier delivery of this request recorded (restart re-checks its VMI; snapshot and restore adopt). */
  recorded?: Entry;
}

export interface VmFunction<C extends VmCommand = VmCommand> {
  run(ctx: VmContext<C>): Promise<Outcome>;
  /**
   * Its objects are its record (snapshot, restore): run again for a request the
   * ledger already holds, with ctx.recorded set, to report on what it made.
   */
  adopts?: boolean;
}

export const accepted = (reason?: string, extra: Partial<Outcome> = {}): Outcome => ({
  outcome: 'accepted',
  reason,
  ...extra,
});
export const completed = (reason?: string, extra: Partial<Outcome> = {}): Outcome => ({
  outcome: 'completed',
  reason,
  ...extra,
});
export const failed = (reason: string, message?: string, extra: Partial<Outcome> = {}): Outcome => ({
  outcome: 'failed',
  reason,
  message,
  ...extra,
});
