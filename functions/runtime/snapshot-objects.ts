import type { VmContext } from './function';
import { KubeApiError } from './kube/errors';
import { apiNotServed, Resource } from './kubevirt';
import type { Condition, ObjectMeta } from './kubevirt-types';
import { isLabelValue } from './labels';
import { watchWhileWaiting } from './lifecycle';
import { hash } from './reply';
import { Transient } from './retry';

// The objects virtwake creates in snapshot.kubevirt.io (reference
// kubevirt-api.md §4): names derived from the request, labels to find them
// again, and the one way to create them so a redelivery adopts its own object
// instead of making a second one (contract §6).

export const API_VERSION = 'snapshot.kubevirt.io/v1beta1';
export const LABEL_VM = 'virtwake.io/vm';
export const LABEL_REQUEST = 'virtwake.io/request';
export const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';
export const MANAGER = 'virtwake';
/** Set only when the VM name does not fit a label value and LABEL_VM holds a shortened form. */
export const ANNOTATION_VM_NAME = 'virtwake.io/vm-name';
export const ANNOTATION_REQUEST_ID = 'virtwake.io/request-id';
export const ANNOTATION_REQUEST_SOURCE = 'virtwake.io/request-source';
/** Millisecond creation time: creationTimestamp has whole seconds, too coarse to order a burst of snapshots. */
export const ANNOTATION_CREATED_AT = 'virtwake.io/created-at';

export interface VirtualMachineSnapshot {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec: {
    source: { apiGroup?: string; kind: string; name: string };
    failureDeadline?: string;
    deletionPolicy?: string;
  };
  status?: {
    phase?: string;
    readyToUse?: boolean;
    /** The UID of the VM it was taken of: KubeVirt restores it only onto that VM. */
    sourceUID?: string;
    creationTime?: string;
    error?: { time?: string; message?: string };
    conditions?: Condition[];
    indications?: string[];
    sourceIndications?: { indication: string; message?: string }[];
  };
}

export interface VirtualMachineRestore {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec: {
    target: { apiGroup?: string; kind: string; name: string };
    virtualMachineSnapshotName: string;
    targetReadinessPolicy?: 'StopTarget' | 'WaitGracePeriod' | 'FailImmediate' | 'WaitEventually';
  };
  status?: { complete?: boolean; restoreTime?: string; conditions?: Condition[] };
}

export const vmRef = (name: string) => ({ apiGroup: 'kubevirt.io', kind: 'VirtualMachine', name });

const SUFFIX_HEX = 10;
/** Label-sized (63) although names may be longer: derived names also end up in labels and logs. */
const MAX_DERIVED = 63;

/**
 * `vw-<vm>-<10 hex>`: a DNS-1123 label, the same for every delivery of one
 * request, different per VM (selector commands) and per kind. The VM part is
 * shortened to fit and only there for people reading `kubectl get`.
 */
export function derivedName(kind: 'snapshot' | 'restore', requestKey: string, vmName: string): string {
  const suffix = hash(kind, requestKey, vmName).slice(0, SUFFIX_HEX);
  const room = MAX_DERIVED - 'vw-'.length - 1 - SUFFIX_HEX;
  const vmPart = vmName.replace(/\./g, '-').slice(0, room).replace(/-+$/, '');
  return `vw-${vmPart}-${suffix}`;
}

/** The VM name as a label value; a longer name is shortened and made unique by a hash. */
export function vmLabelValue(vmName: string): string {
  if (isLabelValue(vmName)) return vmName;
  const head = vmName.slice(0, 63 - 1 - SUFFIX_HEX).replace(/[-.]+$/, '');
  return `${head}-${hash(vmName).slice(0, SUFFIX_HEX)}`;
}

/** Selects what virtwake created for one VM (LABEL_VM may be shortened: check spec too). */
export function ownedBySelector(vmName: string): string {
  return `${LABEL_VM}=${vmLabelValue(vmName)},${LABEL_MANAGED_BY}=${MANAGER}`;
}

export function ownedMetadata(ctx: VmContext, name: string): ObjectMeta {
  const vmLabel = vmLabelValue(ctx.name);
  const annotations: Record<string, string> = {
    [ANNOTATION_REQUEST_ID]: ctx.event.id,
    [ANNOTATION_REQUEST_SOURCE]: ctx.event.source,
    [ANNOTATION_CREATED_AT]: ctx.now().toISOString(),
  };
  if (vmLabel !== ctx.name) annotations[ANNOTATION_VM_NAME] = ctx.name;
  return {
    name,
    namespace: ctx.namespace,
    labels: { [LABEL_VM]: vmLabel, [LABEL_REQUEST]: ctx.requestKey, [LABEL_MANAGED_BY]: MANAGER },
    annotations,
  };
}

export type Found<T> =
  | { kind: 'ours'; object: T }
  /** An object of that name exists but another request (or someone else) made it. */
  | { kind: 'taken'; object: T }
  /** KubeVirt or the API server refused the create: its message verbatim. */
  | { kind: 'refused'; error: KubeApiError };

/**
 * The object of that name, if there is one, judged by `ours`: whether it
 * belongs to this request (its request label, and that it is about the same
 * VM). Looked up before anything else so a redelivery adopts what an earlier
 * delivery created, whatever has happened to the VM since.
 */
export async function findOwn<T extends { metadata: ObjectMeta }>(
  ctx: VmContext,
  resource: Resource,
  name: string,
  ours: (o: T) => boolean,
): Promise<Found<T> | undefined> {
  const existing = await ctx.kubevirt.get<T>(resource, ctx.namespace, name);
  if (!existing) return undefined;
  return ours(existing) ? { kind: 'ours', object: existing } : { kind: 'taken', object: existing };
}

/**
 * Create `body`; an AlreadyExists is judged like findOwn (another replica
 * handling the same delivery got there first). Transient errors propagate:
 * the dispatcher re-runs the function, which then finds what was created.
 */
export async function createOwn<T extends { metadata: ObjectMeta }>(
  ctx: VmContext,
  resource: Resource,
  body: T,
  ours: (o: T) => boolean,
): Promise<Found<T>> {
  try {
    return { kind: 'ours', object: await ctx.kubevirt.create<T>(resource, ctx.namespace, body, ctx.command.dryRun) };
  } catch (e) {
    if (!(e instanceof KubeApiError)) throw e;
    if (e.reason !== 'AlreadyExists') return { kind: 'refused', error: e };
    const found = await findOwn(ctx, resource, body.metadata.name, ours);
    // Deleted again between the two calls: start over rather than guess.
    if (!found)
      throw new Transient(e, `${resource} ${ctx.namespace}/${body.metadata.name} vanished after AlreadyExists`);
    return found;
  }
}

export function belongsTo(meta: ObjectMeta, requestKey: string): boolean {
  return meta.labels?.[LABEL_REQUEST] === requestKey && meta.labels?.[LABEL_MANAGED_BY] === MANAGER;
}

export function conditionReason(conds: Condition[] | undefined, type: string, status = 'True'): string | undefined {
  const c = conds?.find((x) => x.type === type && x.status === status);
  // KubeVirt writes the text of snapshot and restore conditions into reason, not message.
  return c ? c.reason || c.message || undefined : undefined;
}

/** What KubeVirt says it is doing, for a reply that did not see the end. */
export function progressOf(conds: Condition[] | undefined): string | undefined {
  return conds?.find((c) => c.type === 'Progressing')?.reason || undefined;
}

export function indicationsOf(s: VirtualMachineSnapshot): string[] {
  const src = s.status?.sourceIndications?.map((i) => i.indication);
  return src?.length ? src : [...(s.status?.indications ?? [])];
}

export function snapshotInfo(s: VirtualMachineSnapshot): {
  name: string;
  phase?: string;
  readyToUse?: boolean;
  indications?: string[];
} {
  return {
    name: s.metadata.name,
    phase: s.status?.phase || undefined,
    readyToUse: s.status?.readyToUse === true,
    indications: indicationsOf(s),
  };
}

/**
 * Holds until `settled` accepts the object (undefined once deleted) or the
 * command's wait runs out; then says where it stands. Without `wait` it only
 * looks at `current`.
 */
export async function awaitSettled<T extends { metadata: ObjectMeta }>(
  ctx: VmContext,
  resource: Resource,
  current: T,
  settled: (o: T | undefined) => boolean,
): Promise<{ object: T | undefined; timedOut: boolean }> {
  if (settled(current) || ctx.waitUntil === undefined) return { object: current, timedOut: false };
  const name = current.metadata.name;
  const seen = await watchWhileWaiting<T>(ctx, resource, name, settled);
  if (seen.done) return { object: seen.object, timedOut: false };
  // Read once more so the reply can say where it got to.
  return { object: (await ctx.kubevirt.get<T>(resource, ctx.namespace, name)) ?? current, timedOut: true };
}

/**
 * Why this cluster cannot take snapshots or restores at all, if that is what
 * `err` says: snapshot.kubevirt.io/v1beta1 is served from KubeVirt 1.3, and
 * before 1.9 the Snapshot feature gate must be enabled by hand (the webhooks
 * then refuse with 400, KubeVirt vmsnapshot.go / vmrestore.go).
 */
export function snapshotApiProblem(err: unknown): string | undefined {
  if (!(err instanceof KubeApiError)) return undefined;
  if (apiNotServed(err))
    return 'this cluster serves no snapshot.kubevirt.io/v1beta1 API (KubeVirt 1.3 or later is needed for snapshots and restores)';
  if (err.status === 400 && /feature gate not enabled/.test(err.message))
    return `KubeVirt's Snapshot feature gate is off (before KubeVirt 1.9 it must be listed in the KubeVirt CR's spec.configuration.developerConfiguration.featureGates): ${err.message}`;
  return undefined;
}
