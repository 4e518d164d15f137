// The parts of KubeVirt objects virtwake reads. Loose on purpose: KubeVirt adds
// fields and printableStatus values over time, and we must tolerate them.

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}

export interface StateChangeRequest {
  action: 'Start' | 'Stop';
  uid?: string;
  data?: Record<string, string>;
}

export interface VirtualMachine {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec?: { runStrategy?: string; running?: boolean; [k: string]: unknown };
  status?: {
    printableStatus?: string;
    ready?: boolean;
    created?: boolean;
    conditions?: Condition[];
    stateChangeRequests?: StateChangeRequest[];
    snapshotInProgress?: string;
    restoreInProgress?: string;
    [k: string]: unknown;
  };
}

export interface VirtualMachineInstance {
  metadata: ObjectMeta;
  status?: {
    phase?: string;
    conditions?: Condition[];
    phaseTransitionTimestamps?: { phase: string; phaseTransitionTimestamp: string }[];
    [k: string]: unknown;
  };
}

export interface ObjectList<T> {
  metadata?: { continue?: string; resourceVersion?: string };
  items: T[];
}

export function conditionTrue(conds: Condition[] | undefined, type: string): boolean {
  return !!conds?.some((c) => c.type === type && c.status === 'True');
}
