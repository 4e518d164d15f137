import type { KubeConnection } from '../runtime/kube/connection';
import { collectionStream, watchLoop } from '../runtime/kube/watch-loop';
import { KubeApiError } from '../runtime/kube/errors';
import { isTransient } from '../runtime/kubevirt-answers';
import { pathSegment } from '../runtime/names';

// Where a VM's Service can be reached: a ready endpoint from its EndpointSlices
// (discovery.k8s.io/v1, label kubernetes.io/service-name). Read once when the
// proxy needs it, watched while it waits for the VM to come up.

export interface Upstream {
  host: string;
  port: number;
}

interface EndpointSlice {
  metadata: { name: string; resourceVersion?: string };
  addressType?: string;
  endpoints?: { addresses?: string[]; conditions?: { ready?: boolean; terminating?: boolean } }[] | null;
  ports?: { name?: string; port?: number; protocol?: string }[] | null;
}

interface SliceList {
  metadata?: { resourceVersion?: string };
  items: EndpointSlice[];
}

export interface EndpointSlices {
  /** A ready address of `service` on `port` (port number or name), or undefined when there is none. */
  ready(namespace: string, service: string, port: number | string): Promise<Upstream | undefined>;
  /** Watch until the Service has a ready endpoint; undefined when `deadline` (epoch ms) passes first. */
  waitReady(
    namespace: string,
    service: string,
    port: number | string,
    deadline: number,
    signal?: AbortSignal,
  ): Promise<Upstream | undefined>;
}

export function endpointSlices(conn: KubeConnection): EndpointSlices {
  const collection = (ns: string) =>
    `/apis/discovery.k8s.io/v1/namespaces/${pathSegment('namespace', ns)}/endpointslices`;
  const selector = (svc: string) => `kubernetes.io/service-name=${pathSegment('name', svc)}`;

  const list = (ns: string, svc: string) =>
    conn.request<SliceList>({ method: 'GET', path: collection(ns), query: { labelSelector: selector(svc) } });

  async function waitReady(ns: string, svc: string, port: number | string, deadline: number, signal?: AbortSignal) {
    const r = await watchLoop<Map<string, EndpointSlice>, Upstream>({
      async read() {
        const current = await list(ns, svc);
        return {
          state: new Map(current.items.map((s) => [s.metadata.name, s])),
          resourceVersion: current.metadata?.resourceVersion,
        };
      },
      apply(slices, type, obj) {
        const s = obj as EndpointSlice;
        if (!s?.metadata?.name) return slices;
        if (type === 'DELETED') slices.delete(s.metadata.name);
        else slices.set(s.metadata.name, s);
        return slices;
      },
      pick(slices) {
        const up = pickReady([...slices.values()], port);
        return up ? { value: up } : undefined;
      },
      stream: collectionStream(conn, collection(ns), { labelSelector: selector(svc) }),
      deadline,
      signal,
      // The API server is briefly away: the wake has its own deadline, keep trying inside it. A refusal
      // (RBAC's 403) is no such thing: the wake proxy answers it at once (wake.ts).
      maxFailures: Infinity,
      retryable: (e) => !(e instanceof KubeApiError) || isTransient(e),
      giveUp: (e) => (e instanceof Error ? e : new Error(String(e))),
    });
    return r.done ? r.value : undefined;
  }

  return {
    async ready(ns, svc, port) {
      return pickReady((await list(ns, svc)).items, port);
    },
    waitReady,
  };
}

/**
 * A ready, not terminating endpoint with the wanted port. EndpointSlices list
 * target ports under the Service port's name, so a number matches the target
 * port, or any port of a single-port Service.
 */
export function pickReady(slices: EndpointSlice[], port: number | string): Upstream | undefined {
  for (const s of slices) {
    if (s.addressType === 'FQDN') continue;
    const ports = s.ports ?? [];
    const p =
      typeof port === 'string'
        ? ports.find((x) => x.name === port)
        : (ports.find((x) => x.port === port) ?? (ports.length === 1 ? ports[0] : undefined));
    if (!p?.port) continue;
    for (const e of s.endpoints ?? []) {
      // Kubernetes: an unset `ready` means ready.
      if (e.conditions?.ready === false || e.conditions?.terminating === true) continue;
      const host = e.addresses?.[0];
      if (host) return { host, port: p.port };
    }
  }
  return undefined;
}
