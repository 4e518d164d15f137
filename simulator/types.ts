/* eslint-disable @typescript-eslint/no-explicit-any -- Kubernetes objects are open-ended JSON; like KubeVirt's controllers, the simulator reads the fields it knows and passes the rest through */
// Loose shapes of the objects the simulator serves. They follow the KubeVirt and
// Kubernetes JSON field names; anything not listed still round-trips untouched.

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  ownerReferences?: OwnerReference[];
  [key: string]: unknown;
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec?: any;
  status?: any;
  [key: string]: unknown;
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown' | string;
  reason?: string;
  message?: string;
  lastProbeTime?: string | null;
  lastTransitionTime?: string | null;
}

export type RunStrategy = 'Always' | 'Halted' | 'Manual' | 'RerunOnFailure' | 'Once' | 'WaitAsReceiver';

export interface StateChangeRequest {
  action: 'Start' | 'Stop';
  uid?: string;
  data?: Record<string, string>;
}

export interface VirtualMachineSpec {
  runStrategy?: RunStrategy | string;
  running?: boolean;
  template?: { metadata?: ObjectMeta; spec?: any };
  [key: string]: unknown;
}

export interface VirtualMachineStatus {
  printableStatus?: string;
  ready?: boolean;
  created?: boolean;
  runStrategy?: string;
  conditions?: Condition[];
  stateChangeRequests?: StateChangeRequest[];
  snapshotInProgress?: string;
  restoreInProgress?: string;
  startFailure?: unknown;
  [key: string]: unknown;
}

/** Stored objects always carry a name. */
export type NamedMeta = ObjectMeta & { name: string };

export interface VirtualMachine extends KubeObject {
  metadata: NamedMeta;
  spec: VirtualMachineSpec;
  status?: VirtualMachineStatus;
}

export interface PhaseTransitionTimestamp {
  phase: string;
  phaseTransitionTimestamp: string;
}

export interface VirtualMachineInstanceStatus {
  phase?: string;
  conditions?: Condition[];
  phaseTransitionTimestamps?: PhaseTransitionTimestamp[];
  nodeName?: string;
  fsFreezeStatus?: string;
  [key: string]: unknown;
}

export interface VirtualMachineInstance extends KubeObject {
  metadata: NamedMeta;
  spec: any;
  status: VirtualMachineInstanceStatus;
}

export interface TypedLocalObjectReference {
  apiGroup?: string;
  kind?: string;
  name?: string;
}

export interface SourceIndication {
  indication: string;
  message: string;
}

export interface VirtualMachineSnapshot extends KubeObject {
  metadata: NamedMeta;
  spec: { source: TypedLocalObjectReference; deletionPolicy?: string; failureDeadline?: string };
  status?: {
    phase?: string;
    readyToUse?: boolean;
    creationTime?: string;
    sourceUID?: string;
    virtualMachineSnapshotContentName?: string;
    conditions?: Condition[];
    indications?: string[];
    sourceIndications?: SourceIndication[];
    error?: { time?: string; message?: string };
    [key: string]: unknown;
  };
}

export interface VirtualMachineRestore extends KubeObject {
  metadata: NamedMeta;
  spec: {
    target: TypedLocalObjectReference;
    virtualMachineSnapshotName: string;
    targetReadinessPolicy?: 'StopTarget' | 'WaitGracePeriod' | 'FailImmediate' | 'WaitEventually' | string;
    [key: string]: unknown;
  };
  status?: {
    complete?: boolean;
    restoreTime?: string;
    conditions?: Condition[];
    restores?: unknown[];
    [key: string]: unknown;
  };
}

export interface Service extends KubeObject {
  metadata: NamedMeta;
  spec: {
    selector?: Record<string, string>;
    ports?: Array<{ name?: string; port: number; targetPort?: number; protocol?: string }>;
    [key: string]: unknown;
  };
}

export interface EndpointSlice extends KubeObject {
  metadata: NamedMeta;
  addressType: string;
  endpoints: Array<{
    addresses: string[];
    conditions: { ready?: boolean; serving?: boolean; terminating?: boolean };
    targetRef?: { kind: string; name: string; namespace: string; uid?: string };
  }>;
  ports: Array<{ name?: string; port: number; protocol?: string }>;
}

export interface StatusObject {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never> | Record<string, unknown>;
  status: 'Failure' | 'Success';
  message?: string;
  reason?: string;
  details?: {
    name?: string;
    group?: string;
    kind?: string;
    causes?: Array<{ type?: string; message?: string; field?: string; reason?: string }>;
    retryAfterSeconds?: number;
  };
  code: number;
}
