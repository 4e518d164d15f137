// Apply manifests as `kubectl apply` would for a first install: each document to the
// collection discovery names for its kind (namespaced or not), created, or replaced when it
// exists. Namespaces and CustomResourceDefinitions go first, and the CRDs must be Established
// before objects of their kinds are sent.

import { readFileSync } from 'node:fs';
import { loadAll } from 'js-yaml';
import { KubeError } from '../../../simulator/rig/kube';
import type { TestKube } from './cluster';

interface Resource {
  plural: string;
  namespaced: boolean;
}

export function readManifests(files: string[]): any[] {
  return files.flatMap((f) => (loadAll(readFileSync(f, 'utf8')) as any[]).filter((d) => d && d.kind));
}

async function discover(kube: TestKube, apiVersion: string): Promise<Map<string, Resource>> {
  const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  const list = await kube.get(base);
  const out = new Map<string, Resource>();
  for (const r of list.resources ?? [])
    if (!String(r.name).includes('/')) out.set(r.kind, { plural: r.name, namespaced: r.namespaced });
  return out;
}

/** Poll `probe` every 250 ms until it gives a value; an error it throws is kept for the message. */
export async function until<T>(what: string, ms: number, probe: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`rig: ${what} not ready after ${ms} ms${last ? `: ${String(last)}` : ''}`);
}

/** Create, or replace the object when it exists (the rig applies manifests twice in a run only by mistake). */
export async function apply(kube: TestKube, collection: string, obj: any): Promise<any> {
  try {
    return await kube.request('POST', collection, obj);
  } catch (e) {
    if (!(e instanceof KubeError && e.status === 409)) throw e;
    const cur = await kube.request('GET', `${collection}/${obj.metadata.name}`);
    return kube.request('PUT', `${collection}/${obj.metadata.name}`, {
      ...obj,
      metadata: { ...obj.metadata, resourceVersion: cur.metadata.resourceVersion },
    });
  }
}

export function collectionOf(res: Resource, apiVersion: string, ns: string | undefined): string {
  const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  return res.namespaced ? `${base}/namespaces/${ns ?? 'default'}/${res.plural}` : `${base}/${res.plural}`;
}

async function applyOne(kube: TestKube, doc: any, cache: Map<string, Map<string, Resource>>): Promise<void> {
  let kinds = cache.get(doc.apiVersion);
  if (!kinds?.has(doc.kind)) {
    kinds = await discover(kube, doc.apiVersion);
    cache.set(doc.apiVersion, kinds);
  }
  const res = kinds.get(doc.kind);
  if (!res) throw new Error(`rig: the API serves no ${doc.kind} in ${doc.apiVersion}`);
  await apply(kube, collectionOf(res, doc.apiVersion, doc.metadata.namespace), doc);
}

/** Transient answers while a webhook or a new CRD's storage comes up are tried again for a while. */
async function withRetry(what: string, fn: () => Promise<void>): Promise<void> {
  const end = Date.now() + 60_000;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      const status = e instanceof KubeError ? e.status : 0;
      if (![0, 404, 429, 500, 503].includes(status) || Date.now() > end)
        throw new Error(
          `rig: applying ${what}: ${e instanceof KubeError ? JSON.stringify(e.body ?? e.message) : String(e)}`,
          {
            cause: e,
          },
        );
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

export async function applyManifests(kube: TestKube, docs: any[]): Promise<void> {
  const cache = new Map<string, Map<string, Resource>>();
  const rank = (d: any) => (d.kind === 'Namespace' ? 0 : d.kind === 'CustomResourceDefinition' ? 1 : 2);
  const ordered = [...docs].sort((a, b) => rank(a) - rank(b));
  for (const d of ordered.filter((x) => rank(x) < 2))
    await withRetry(`${d.kind} ${d.metadata.name}`, () => applyOne(kube, d, cache));
  for (const crd of ordered.filter((x) => x.kind === 'CustomResourceDefinition'))
    await until(`CRD ${crd.metadata.name} Established`, 60_000, async () => {
      const c = await kube.get(`/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd.metadata.name}`);
      return conditionTrue(c, 'Established') || undefined;
    });
  for (const d of ordered.filter((x) => rank(x) === 2))
    await withRetry(`${d.kind} ${d.metadata.namespace ?? ''}/${d.metadata.name}`, () => applyOne(kube, d, cache));
}

/** Whether a Knative or Kubernetes object reports condition `type` as True. */
export function conditionTrue(obj: any, type: string): boolean {
  return !!obj?.status?.conditions?.some((c: any) => c.type === type && c.status === 'True');
}
