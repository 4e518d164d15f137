// The API resources the simulator serves, as one table: routing, discovery, list kinds
// and error messages all read from here.

export type Verb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete' | 'deletecollection';

export interface ResourceDef {
  group: string;
  versions: string[];
  /** Version objects are stored in and converted from (schemas are identical across versions here). */
  storageVersion: string;
  plural: string;
  singular: string;
  kind: string;
  namespaced: boolean;
  verbs: Verb[];
  shortNames?: string[];
  /** Built-in types omit apiVersion/kind on list items and accept strategic merge patch. */
  builtIn: boolean;
  /** Custom resources with a status subresource ignore status on the main endpoint. */
  statusSubresource: boolean;
}

const ALL_CRUD: Verb[] = ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'];
const READ_ONLY: Verb[] = ['get', 'list', 'watch'];

export const RESOURCES: ResourceDef[] = [
  {
    group: 'kubevirt.io',
    versions: ['v1'],
    storageVersion: 'v1',
    plural: 'virtualmachines',
    singular: 'virtualmachine',
    kind: 'VirtualMachine',
    namespaced: true,
    verbs: ALL_CRUD,
    shortNames: ['vm', 'vms'],
    builtIn: false,
    statusSubresource: true,
  },
  {
    group: 'kubevirt.io',
    versions: ['v1'],
    storageVersion: 'v1',
    plural: 'virtualmachineinstances',
    singular: 'virtualmachineinstance',
    kind: 'VirtualMachineInstance',
    namespaced: true,
    verbs: [...READ_ONLY, 'delete'],
    shortNames: ['vmi', 'vmis'],
    builtIn: false,
    statusSubresource: true,
  },
  {
    group: 'snapshot.kubevirt.io',
    versions: ['v1beta1', 'v1alpha1'],
    storageVersion: 'v1beta1',
    plural: 'virtualmachinesnapshots',
    singular: 'virtualmachinesnapshot',
    kind: 'VirtualMachineSnapshot',
    namespaced: true,
    verbs: ALL_CRUD,
    shortNames: ['vmsnapshot', 'vmsnapshots'],
    builtIn: false,
    statusSubresource: true,
  },
  {
    group: 'snapshot.kubevirt.io',
    versions: ['v1beta1', 'v1alpha1'],
    storageVersion: 'v1beta1',
    plural: 'virtualmachinesnapshotcontents',
    singular: 'virtualmachinesnapshotcontent',
    kind: 'VirtualMachineSnapshotContent',
    namespaced: true,
    verbs: [...READ_ONLY, 'delete'],
    shortNames: ['vmsnapshotcontent', 'vmsnapshotcontents'],
    builtIn: false,
    statusSubresource: true,
  },
  {
    group: 'snapshot.kubevirt.io',
    versions: ['v1beta1', 'v1alpha1'],
    storageVersion: 'v1beta1',
    plural: 'virtualmachinerestores',
    singular: 'virtualmachinerestore',
    kind: 'VirtualMachineRestore',
    namespaced: true,
    verbs: ALL_CRUD,
    shortNames: ['vmrestore', 'vmrestores'],
    builtIn: false,
    statusSubresource: true,
  },
  {
    group: '',
    versions: ['v1'],
    storageVersion: 'v1',
    plural: 'services',
    singular: 'service',
    kind: 'Service',
    namespaced: true,
    verbs: READ_ONLY,
    shortNames: ['svc'],
    builtIn: true,
    statusSubresource: true,
  },
  {
    group: 'discovery.k8s.io',
    versions: ['v1'],
    storageVersion: 'v1',
    plural: 'endpointslices',
    singular: 'endpointslice',
    kind: 'EndpointSlice',
    namespaced: true,
    verbs: READ_ONLY,
    builtIn: true,
    statusSubresource: false,
  },
];

export function findResource(group: string, version: string, plural: string): ResourceDef | undefined {
  return RESOURCES.find((r) => r.group === group && r.plural === plural && r.versions.includes(version));
}

export function resourceByKind(kind: string): ResourceDef {
  const r = RESOURCES.find((x) => x.kind === kind);
  if (!r) throw new Error(`unknown kind ${kind}`);
  return r;
}

export function apiVersionOf(r: ResourceDef, version = r.storageVersion): string {
  return r.group ? `${r.group}/${version}` : version;
}

export const VM = resourceByKind('VirtualMachine');
export const VMI = resourceByKind('VirtualMachineInstance');
export const SNAPSHOT = resourceByKind('VirtualMachineSnapshot');
export const SNAPSHOT_CONTENT = resourceByKind('VirtualMachineSnapshotContent');
export const RESTORE = resourceByKind('VirtualMachineRestore');
export const SERVICE = resourceByKind('Service');
export const ENDPOINT_SLICE = resourceByKind('EndpointSlice');

/** Subresource API group served by virt-api through the aggregator. */
export const SUBRESOURCE_GROUP = 'subresources.kubevirt.io';
export const SNAPSHOT_GROUP = 'snapshot.kubevirt.io';
export const SUBRESOURCE_VERSIONS = ['v1', 'v1alpha3'];
