// /version and API discovery documents, enough for kubectl-style clients to find the
// resources the simulator serves.

import { errors } from './errors';
import { RESOURCES, SNAPSHOT_GROUP, SUBRESOURCE_GROUP, SUBRESOURCE_VERSIONS } from './resources';

export const VERSION_INFO = {
  major: '1',
  minor: '33',
  emulationMajor: '1',
  emulationMinor: '33',
  minCompatibilityMajor: '1',
  minCompatibilityMinor: '32',
  gitVersion: 'v1.33.1',
  gitCommit: '8adc0f041b8e7ad1d30e29cc59c6ae7a15e19828',
  gitTreeState: 'clean',
  buildDate: '2025-05-15T08:19:34Z',
  goVersion: 'go1.24.2',
  compiler: 'gc',
  platform: 'linux/amd64',
};

function groups(snapshots: boolean): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const r of RESOURCES) {
    if (!r.group || (r.group === SNAPSHOT_GROUP && !snapshots)) continue;
    const vs = m.get(r.group) ?? [];
    for (const v of r.versions) if (!vs.includes(v)) vs.push(v);
    m.set(r.group, vs);
  }
  m.set(SUBRESOURCE_GROUP, SUBRESOURCE_VERSIONS);
  return m;
}

function groupDoc(name: string, versions: string[]) {
  const vs = versions.map((version) => ({ groupVersion: `${name}/${version}`, version }));
  return { name, versions: vs, preferredVersion: vs[0] };
}

function resourceList(group: string, version: string) {
  const resources: unknown[] = [];
  for (const r of RESOURCES) {
    if (r.group !== group || !r.versions.includes(version)) continue;
    resources.push({
      name: r.plural,
      singularName: r.singular,
      namespaced: r.namespaced,
      kind: r.kind,
      verbs: r.verbs,
      ...(r.shortNames ? { shortNames: r.shortNames } : {}),
    });
    if (r.statusSubresource && !r.builtIn)
      resources.push({
        name: `${r.plural}/status`,
        singularName: '',
        namespaced: r.namespaced,
        kind: r.kind,
        verbs: ['get', 'patch', 'update'],
      });
  }
  if (group === SUBRESOURCE_GROUP) {
    for (const s of ['start', 'stop', 'restart'])
      resources.push({
        name: `virtualmachines/${s}`,
        singularName: '',
        namespaced: true,
        kind: s === 'start' ? 'StartOptions' : 'StopOptions',
        verbs: ['update'],
      });
    for (const s of ['pause', 'unpause', 'freeze', 'unfreeze', 'softreboot'])
      resources.push({
        name: `virtualmachineinstances/${s}`,
        singularName: '',
        namespaced: true,
        kind: 'VirtualMachineInstance',
        verbs: ['update'],
      });
  }
  if (!resources.length) throw errors.pathNotFound();
  return {
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion: group ? `${group}/${version}` : version,
    resources,
  };
}

/** `snapshots` false: a cluster without snapshot.kubevirt.io (KubeVirt before 1.3) leaves the group out. */
export function discovery(legacy: boolean, group?: string, version?: string, snapshots = true): unknown {
  if (legacy) {
    if (!version)
      return {
        kind: 'APIVersions',
        versions: ['v1'],
        serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: '127.0.0.1:6443' }],
      };
    return resourceList('', version);
  }
  const all = groups(snapshots);
  if (!group)
    return { kind: 'APIGroupList', apiVersion: 'v1', groups: [...all.entries()].map(([n, v]) => groupDoc(n, v)) };
  const versions = all.get(group);
  if (!versions) throw errors.pathNotFound();
  if (!version) return { kind: 'APIGroup', apiVersion: 'v1', ...groupDoc(group, versions) };
  if (!versions.includes(version)) throw errors.pathNotFound();
  return resourceList(group, version);
}
