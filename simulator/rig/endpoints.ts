// EndpointSlices for Services that select a VM's virt-launcher pod, as kube-controller-manager's
// EndpointSlice controller writes them from the pod (the in-memory simulator's ../services.ts
// does the same). A pod exists while the VMI does, and it is ready while the VMI's Ready
// condition is True (KubeVirt copies pod readiness into it). There are no pods on the rig:
// the address is the rig's stand-in pod IP, an address in a network namespace the rig made,
// because the real apiserver refuses loopback addresses in an EndpointSlice.

import type { VirtualMachineInstance } from '../types';
import { Informer, keyOf, type Key } from './informer';
import { Kube, KubeError } from './kube';
import { KeyQueue } from './queue';

interface Service {
  metadata: { name?: string; namespace?: string; resourceVersion?: string };
  spec?: {
    selector?: Record<string, string>;
    ports?: Array<{ name?: string; port: number; targetPort?: number | string; protocol?: string }>;
  };
}

export const MANAGED_BY = 'rig.virtwake.test';

export class RigEndpoints {
  private readonly services: Informer<Service>;
  private readonly queue: KeyQueue;

  constructor(
    private readonly kube: Kube,
    private readonly vmis: Informer<VirtualMachineInstance>,
    private readonly podIP: string,
    stepMs: number,
    log: (m: string) => void,
  ) {
    this.queue = new KeyQueue(
      stepMs,
      (k) => this.sync(k),
      (k, e) => log(`endpoints ${k}: ${String(e)}`),
    );
    this.services = new Informer<Service>(kube, '/api/v1/services', (k) => this.queue.add(k));
  }

  start(): Promise<void> {
    return this.services.start();
  }

  stop(): void {
    this.services.stop();
    this.queue.close();
  }

  /** A VMI changed: every Service in its namespace that selects it is synced again. */
  vmiChanged(key: Key): void {
    const ns = key.slice(0, key.indexOf('/'));
    for (const s of this.services.list()) if (s.metadata.namespace === ns && s.spec?.selector) this.queue.add(keyOf(s));
  }

  private async sync(key: Key): Promise<void> {
    const svc = this.services.get(key);
    if (!svc?.spec?.selector || Object.keys(svc.spec.selector).length === 0) return;
    const ns = svc.metadata.namespace!;
    const selector = svc.spec.selector;
    const pods = this.vmis
      .list()
      .filter(
        (v) =>
          v.metadata.namespace === ns && Object.entries(selector).every(([k, val]) => v.metadata.labels?.[k] === val),
      )
      .filter((v) => !['Succeeded', 'Failed'].includes(v.status?.phase ?? ''));
    const ready = (v: VirtualMachineInstance) =>
      !v.metadata.deletionTimestamp &&
      v.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
    const name = `${svc.metadata.name}-rig`;
    const slice = {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: {
        name,
        namespace: ns,
        labels: {
          'kubernetes.io/service-name': svc.metadata.name,
          'endpointslice.kubernetes.io/managed-by': MANAGED_BY,
        },
      },
      addressType: 'IPv4',
      endpoints: pods.map((v) => ({
        addresses: [this.podIP],
        conditions: { ready: ready(v), serving: ready(v), terminating: !!v.metadata.deletionTimestamp },
        targetRef: { kind: 'Pod', namespace: ns, name: `virt-launcher-${v.metadata.name}` },
      })),
      ports: (svc.spec.ports ?? []).map((p) => ({
        name: p.name ?? '',
        port: typeof p.targetPort === 'number' ? p.targetPort : p.port,
        protocol: p.protocol ?? 'TCP',
      })),
    };
    const path = `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`;
    const cur = await this.kube.get<{ metadata: { resourceVersion: string }; endpoints?: unknown; ports?: unknown }>(
      `${path}/${name}`,
    );
    if (!cur) {
      await this.kube.request('POST', path, slice);
      return;
    }
    if (
      JSON.stringify(cur.endpoints ?? []) === JSON.stringify(slice.endpoints) &&
      JSON.stringify(cur.ports) === JSON.stringify(slice.ports)
    )
      return;
    try {
      await this.kube.request('PUT', `${path}/${name}`, {
        ...slice,
        metadata: { ...slice.metadata, resourceVersion: cur.metadata.resourceVersion },
      });
    } catch (e) {
      if (!(e instanceof KubeError && e.status === 409)) throw e;
      this.queue.add(key);
    }
  }
}
