// The validating webhooks a write passes before it is stored (the CRD schema is checked
// before them, in crd-schema.ts):
// KubeVirt's VM admitter (runStrategy rules, snapshot/restore locks) and the snapshot and
// restore admitters. Denials come back as kube-apiserver relays them (422 Invalid).

import { errors } from './errors';
import type { SnapshotApi } from './context';
import { deepEqual, objectKey } from './objects';
import { RESTORE, type ResourceDef } from './resources';
import type { ObjectStore } from './store';
import { runStrategyOf, RUN_STRATEGIES } from './kubevirt';
import type { KubeObject, VirtualMachine, VirtualMachineRestore, VirtualMachineSnapshot } from './types';

export const VM_WEBHOOK = 'virtualmachine-validator.kubevirt.io';
export const SNAPSHOT_WEBHOOK = 'virtualmachinesnapshot-validator.snapshot.kubevirt.io';
export const RESTORE_WEBHOOK = 'virtualmachinerestore-validator.snapshot.kubevirt.io';

type Cause = { type: string; message: string; field: string };

function deny(webhook: string, causes: Cause[]): void {
  if (causes.length) throw errors.webhookDenied(webhook, causes);
}

function runStrategyCauses(vm: VirtualMachine): Cause[] {
  const causes: Cause[] = [];
  const { running, runStrategy } = vm.spec ?? {};
  const hasRunning = running !== undefined && running !== null;
  const hasStrategy = runStrategy !== undefined && runStrategy !== null;
  if (hasRunning && hasStrategy) {
    causes.push({
      type: 'FieldValueInvalid',
      message:
        'Running and RunStrategy are mutually exclusive. Note that Running is deprecated, please use RunStrategy instead',
      field: 'spec.running',
    });
  }
  if (!hasRunning && !hasStrategy)
    causes.push({ type: 'FieldValueInvalid', message: 'RunStrategy must be specified', field: 'spec.running' });
  if (hasStrategy) {
    if (runStrategy === 'WaitAsReceiver') {
      causes.push({
        type: 'FieldValueInvalid',
        message:
          'Invalid RunStrategy (WaitAsReceiver), DecentralizedLiveMigration feature gate is not enabled in kubevirt resource',
        field: 'spec.runStrategy',
      });
    } else if (!RUN_STRATEGIES.includes(runStrategy as never)) {
      causes.push({
        type: 'FieldValueInvalid',
        message: `Invalid RunStrategy (${String(runStrategy)})`,
        field: 'spec.runStrategy',
      });
    }
  }
  return causes;
}

export function admitVMCreate(vm: VirtualMachine): void {
  deny(VM_WEBHOOK, runStrategyCauses(vm));
}

function sameRunningSpec(oldVM: VirtualMachine, newVM: VirtualMachine): boolean {
  const o = oldVM.spec ?? {};
  const n = newVM.spec ?? {};
  if (o.running !== undefined && n.running !== undefined) return o.running === n.running;
  if (o.runStrategy !== undefined && n.runStrategy !== undefined) return o.runStrategy === n.runStrategy;
  return false;
}

/** `newVM.status` is the stored status: the locks live there, not in what the client sent. */
export function admitVMUpdate(oldVM: VirtualMachine, newVM: VirtualMachine): void {
  const causes = runStrategyCauses(newVM);
  const restore = newVM.status?.restoreInProgress;
  if (!causes.length && restore && !deepEqual(oldVM.spec, newVM.spec)) {
    const before = runStrategyOf(oldVM);
    const after = runStrategyOf(newVM);
    if (!deepEqual(before, after)) {
      causes.push({
        type: 'FieldValueNotSupported',
        message: `Cannot update VM runStrategy until restore "${restore}" completes`,
        field: 'spec',
      });
    }
  }
  const snapshot = newVM.status?.snapshotInProgress;
  if (!causes.length && snapshot) {
    if (!deepEqual(oldVM.spec?.template?.spec?.volumes ?? [], newVM.spec?.template?.spec?.volumes ?? [])) {
      causes.push({
        type: 'FieldValueNotSupported',
        message: `Cannot update vm disks or volumes until snapshot "${snapshot}" completes`,
        field: 'spec',
      });
    } else if (!sameRunningSpec(oldVM, newVM)) {
      causes.push({
        type: 'FieldValueNotSupported',
        message: `Cannot update vm running state until snapshot "${snapshot}" completes`,
        field: 'spec',
      });
    }
  }
  deny(VM_WEBHOOK, causes);
}

function sourceCauses(ref: { apiGroup?: string; kind?: string } | undefined, field: string): Cause[] {
  if (!ref || ref.apiGroup === undefined || ref.apiGroup === null)
    return [{ type: 'FieldValueNotFound', message: 'missing apiGroup', field: `${field}.apiGroup` }];
  if (ref.apiGroup !== 'kubevirt.io')
    return [{ type: 'FieldValueInvalid', message: 'invalid apiGroup', field: `${field}.apiGroup` }];
  if (ref.kind !== 'VirtualMachine')
    return [{ type: 'FieldValueInvalid', message: 'invalid kind', field: `${field}.kind` }];
  return [];
}

export function admitSnapshotCreate(s: VirtualMachineSnapshot): void {
  deny(SNAPSHOT_WEBHOOK, sourceCauses(s.spec?.source, 'spec.source'));
}

const IMMUTABLE: Cause = { type: 'FieldValueInvalid', message: 'spec in immutable after creation', field: 'spec' };

export function admitSnapshotUpdate(oldS: KubeObject, newS: KubeObject): void {
  deny(SNAPSHOT_WEBHOOK, deepEqual(oldS.spec, newS.spec) ? [] : [IMMUTABLE]);
}

const READINESS_POLICIES = ['StopTarget', 'WaitGracePeriod', 'FailImmediate', 'WaitEventually'];
const VOLUME_RESTORE_POLICIES = ['RandomizeNames', 'InPlace', 'PrefixTargetName'];

export function admitRestoreCreate(store: ObjectStore, r: VirtualMachineRestore): void {
  const causes = sourceCauses(r.spec?.target, 'spec.target');
  const policy = r.spec?.volumeRestorePolicy as string | undefined;
  if (!causes.length && policy !== undefined && !VOLUME_RESTORE_POLICIES.includes(policy)) {
    causes.push({
      type: 'FieldValueInvalid',
      message: `volume restore policy "${policy}" doesn't exist`,
      field: 'spec',
    });
  }
  // A restore blocks its target until it completes; a failed one keeps blocking (status.complete stays false).
  for (const other of store.list(RESTORE, r.metadata.namespace) as VirtualMachineRestore[]) {
    if (deepEqual(other.spec?.target, r.spec?.target) && other.status?.complete !== true) {
      causes.push({
        type: 'FieldValueInvalid',
        message: `VirtualMachineRestore "${other.metadata.name}" in progress`,
        field: 'spec.target',
      });
    }
  }
  deny(RESTORE_WEBHOOK, causes);
  if (r.spec?.targetReadinessPolicy !== undefined && !READINESS_POLICIES.includes(r.spec.targetReadinessPolicy)) {
    throw errors.invalid('VirtualMachineRestore', 'snapshot.kubevirt.io', r.metadata.name ?? '', [
      {
        field: 'spec.targetReadinessPolicy',
        type: 'FieldValueNotSupported',
        detail: `Unsupported value: "${r.spec.targetReadinessPolicy}": supported values: "${READINESS_POLICIES.join('", "')}"`,
      },
    ]);
  }
}

export function admitRestoreUpdate(oldR: KubeObject, newR: KubeObject): void {
  deny(RESTORE_WEBHOOK, deepEqual(oldR.spec, newR.spec) ? [] : [IMMUTABLE]);
}

export interface Admission {
  create?(obj: KubeObject): void;
  update?(oldObj: KubeObject, newObj: KubeObject): void;
}

/**
 * vms-admitter.go validates the whole spec on every UPDATE, annotation-only merge patches
 * included (ValidateVirtualMachineSpec), so a VM whose spec stopped validating refuses them all.
 */
export function admitVMSpecStillValid(invalidSpecs: Map<string, string>, vm: VirtualMachine): void {
  const message = invalidSpecs.get(objectKey(vm.metadata.namespace, vm.metadata.name ?? ''));
  if (message) deny(VM_WEBHOOK, [{ type: 'FieldValueInvalid', message, field: 'spec.template.spec' }]);
}

/** The Snapshot feature gate off: vmsnapshot.go / vmrestore.go refuse creation, relayed as 400 (webhooks.go). */
function requireSnapshotGate(settings: AdmissionSettings | undefined, webhook: string, message: string): void {
  if (settings?.snapshotApi === 'gateOff') throw errors.webhookBadRequest(webhook, message);
}

export interface AdmissionSettings {
  invalidSpecs: Map<string, string>;
  snapshotApi: SnapshotApi;
}

export function admissionFor(store: ObjectStore, r: ResourceDef, settings?: AdmissionSettings): Admission {
  switch (r.kind) {
    case 'VirtualMachine':
      return {
        create: (o) => admitVMCreate(o as VirtualMachine),
        update: (a, b) => {
          if (settings) admitVMSpecStillValid(settings.invalidSpecs, b as VirtualMachine);
          admitVMUpdate(a as VirtualMachine, b as VirtualMachine);
        },
      };
    case 'VirtualMachineSnapshot':
      return {
        create: (o) => {
          requireSnapshotGate(settings, SNAPSHOT_WEBHOOK, 'snapshot feature gate not enabled');
          admitSnapshotCreate(o as VirtualMachineSnapshot);
        },
        update: admitSnapshotUpdate,
      };
    case 'VirtualMachineRestore':
      return {
        create: (o) => {
          requireSnapshotGate(settings, RESTORE_WEBHOOK, 'Snapshot/Restore feature gate not enabled');
          admitRestoreCreate(store, o as VirtualMachineRestore);
        },
        update: admitRestoreUpdate,
      };
    default:
      return {};
  }
}
