// Writes KubeVirt's controllers make through the real API: metadata through the main
// endpoint with a JSON patch that tests the resourceVersion it was decided on, status
// through the /status subresource (the CRDs have it, so the main endpoint ignores status).
// A 409 throws, and the work queue runs the key again from a fresh read.

import type { KubeObject, ObjectMeta } from '../types';
import { Kube, KubeError } from './kube';

const JSON_PATCH = 'application/json-patch+json';

export const KV = '/apis/kubevirt.io/v1';
export const SNAP = '/apis/snapshot.kubevirt.io/v1beta1';

export function split(key: string): [string, string] {
  const i = key.indexOf('/');
  return [key.slice(0, i), key.slice(i + 1)];
}

export const objPath = (api: string, plural: string, ns: string, name?: string) =>
  `${api}/namespaces/${ns}/${plural}${name ? `/${encodeURIComponent(name)}` : ''}`;

/** Replace metadata fields (finalizers, ownerReferences) of exactly the version that was read. */
export function patchMeta<T extends KubeObject>(
  kube: Kube,
  path: string,
  obj: KubeObject,
  fields: Partial<Pick<ObjectMeta, 'finalizers' | 'ownerReferences'>>,
): Promise<T> {
  return kube.request<T>(
    'PATCH',
    path,
    [
      { op: 'test', path: '/metadata/resourceVersion', value: obj.metadata.resourceVersion },
      ...Object.entries(fields).map(([k, value]) => ({ op: 'add', path: `/metadata/${k}`, value })),
    ],
    JSON_PATCH,
  );
}

export function putStatus<T extends KubeObject>(
  kube: Kube,
  path: string,
  obj: KubeObject,
  status: unknown,
): Promise<T> {
  return kube.request<T>('PUT', `${path}/status`, { ...obj, status });
}

/** Delete, and count an object already gone as deleted. */
export async function deleteGone(kube: Kube, path: string): Promise<void> {
  try {
    await kube.request('DELETE', path);
  } catch (e) {
    if (!(e instanceof KubeError && e.status === 404)) throw e;
  }
}
