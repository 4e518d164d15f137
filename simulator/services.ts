// Services and EndpointSlices for VMs fronted by an HTTP proxy. The slice follows the VM's
// launcher pod: no pod (no VMI) means no endpoints; a pod exists while a VMI does, and its
// endpoint is ready only while the VM is Running and ready. The address is 127.0.0.1 so a
// test can serve the "guest" from a real loopback server.

import { randomBytes } from 'node:crypto';
import type { SimContext } from './context';
import { deepEqual } from './objects';
import { ENDPOINT_SLICE, SERVICE, VM, VMI } from './resources';
import type { EndpointSlice, Service, VirtualMachine, VirtualMachineInstance } from './types';

export const VM_SELECTOR_LABEL = 'kubevirt.io/vm';
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

export interface ServiceSpecInput {
  vmName: string;
  port: number;
  /** Port the endpoint listens on (the loopback upstream); defaults to `port`. */
  upstreamPort?: number;
}

export function sliceNameFor(serviceName: string): string {
  return `${serviceName}-sim`;
}

export class ServiceController {
  private readonly unsubscribe: () => void;

  constructor(private readonly ctx: SimContext) {
    this.unsubscribe = ctx.store.subscribe((e) => {
      if (e.resource !== VM && e.resource !== VMI) return;
      for (const svc of this.servicesFor(e.object.metadata.namespace, e.object.metadata.name ?? '')) {
        const key = `endpoints:${svc.metadata.namespace}/${svc.metadata.name}`;
        ctx.scheduler.schedule(key, 0, () =>
          this.reconcile(svc.metadata.namespace ?? 'default', svc.metadata.name ?? ''),
        );
      }
    });
  }

  close(): void {
    this.unsubscribe();
  }

  private servicesFor(namespace: string | undefined, vmName: string): Service[] {
    if (this.ctx.store.count(SERVICE) === 0) return [];
    return (this.ctx.store.list(SERVICE, namespace) as Service[]).filter(
      (s) => s.spec?.selector?.[VM_SELECTOR_LABEL] === vmName,
    );
  }

  add(namespace: string, name: string, input: ServiceSpecInput): Service {
    const octet = () => 1 + (randomBytes(1)[0] % 250);
    const svc = this.ctx.store.create(SERVICE, {
      metadata: { name, namespace, labels: { app: name } },
      spec: {
        type: 'ClusterIP',
        clusterIP: `10.96.${octet()}.${octet()}`,
        selector: { [VM_SELECTOR_LABEL]: input.vmName },
        ports: [{ name: 'http', port: input.port, targetPort: input.upstreamPort ?? input.port, protocol: 'TCP' }],
        sessionAffinity: 'None',
      },
      status: { loadBalancer: {} },
    }) as Service;
    this.ctx.store.create(ENDPOINT_SLICE, this.sliceFor(svc, []));
    this.reconcile(namespace, name);
    return svc;
  }

  private sliceFor(svc: Service, endpoints: EndpointSlice['endpoints']): EndpointSlice {
    const port = svc.spec.ports?.[0];
    return {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: {
        name: sliceNameFor(svc.metadata.name ?? ''),
        namespace: svc.metadata.namespace,
        labels: {
          [SERVICE_NAME_LABEL]: svc.metadata.name ?? '',
          'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io',
        },
        ownerReferences: [
          {
            apiVersion: 'v1',
            kind: 'Service',
            name: svc.metadata.name ?? '',
            uid: svc.metadata.uid ?? '',
            controller: true,
            blockOwnerDeletion: true,
          },
        ],
      },
      addressType: 'IPv4',
      endpoints,
      ports: [{ name: port?.name ?? 'http', port: port?.targetPort ?? port?.port ?? 80, protocol: 'TCP' }],
    };
  }

  reconcile(namespace: string, name: string): void {
    const svc = this.ctx.store.get(SERVICE, namespace, name) as Service | undefined;
    if (!svc) return;
    const vmName = svc.spec.selector?.[VM_SELECTOR_LABEL] ?? '';
    const vm = this.ctx.store.get(VM, namespace, vmName) as VirtualMachine | undefined;
    const vmi = this.ctx.store.get(VMI, namespace, vmName) as VirtualMachineInstance | undefined;
    const endpoints: EndpointSlice['endpoints'] = [];
    if (vm && vmi && !['Succeeded', 'Failed'].includes(vmi.status?.phase ?? '')) {
      const ready =
        !vmi.metadata.deletionTimestamp && vm.status?.printableStatus === 'Running' && vm.status?.ready === true;
      endpoints.push({
        addresses: ['127.0.0.1'],
        conditions: { ready, serving: ready, terminating: !!vmi.metadata.deletionTimestamp },
        targetRef: { kind: 'Pod', name: `virt-launcher-${vmName}-${(vmi.metadata.uid ?? '').slice(0, 5)}`, namespace },
      });
    }
    const sliceName = sliceNameFor(name);
    const cur = this.ctx.store.get(ENDPOINT_SLICE, namespace, sliceName) as EndpointSlice | undefined;
    const next = this.sliceFor(svc, endpoints);
    if (!cur) {
      this.ctx.store.create(ENDPOINT_SLICE, next);
      return;
    }
    if (!deepEqual(cur.endpoints, next.endpoints))
      this.ctx.store.update(ENDPOINT_SLICE, { ...cur, endpoints: next.endpoints });
  }
}
