// Services and EndpointSlices for VMs fronted by an HTTP proxy. The slice follows the VM's
// launcher pod: no pod (no VMI) means no endpoints; a pod exists while a VMI does, and its
// endpoint is ready while the pod is: KubeVirt copies pod readiness into the VMI's Ready
// condition (pkg/virt-controller/watch/vmi/lifecycle.go), so the endpoint stays ready while
// the VM is Migrating and goes unready while it is paused (readiness gate, template.go).
// Without a readinessProbe (template.go) the pod is ready when the domain starts, not when the
// guest's service listens: a simulator-run guest (addService `guest: true`) opens its port
// only `simulator.virtwake.io/guest-listen-delay-seconds` (VM annotation, default 0) after its
// VMI reached Running, by the simulator clock, and closes it when the VMI goes. The address is
// 127.0.0.1, so a test can also serve the guest itself (`upstreamPort`).

import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { SimContext } from './context';
import { deepEqual, hasConditionTrue } from './objects';
import { ENDPOINT_SLICE, SERVICE, VM, VMI } from './resources';
import type { EndpointSlice, Service, VirtualMachine, VirtualMachineInstance } from './types';

export const VM_SELECTOR_LABEL = 'kubevirt.io/vm';
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

export interface ServiceSpecInput {
  vmName: string;
  port: number;
  /** Port the endpoint listens on (the loopback upstream); defaults to `port`. */
  upstreamPort?: number;
  /** The simulator serves the guest's HTTP service itself, on a port it picks, listening as the guest would. */
  guest?: boolean;
}

/** Seconds after its VMI reached Running before a simulator-run guest's service listens. */
export const GUEST_LISTEN_DELAY_ANNOTATION = 'simulator.virtwake.io/guest-listen-delay-seconds';

interface Guest {
  namespace: string;
  vmName: string;
  port: number;
  server?: Server;
  /** VMI uid the open server belongs to. */
  uid?: string;
}

export function sliceNameFor(serviceName: string): string {
  return `${serviceName}-sim`;
}

export class ServiceController {
  private readonly unsubscribe: () => void;
  /** Simulator-run guests by Service key. */
  private readonly guests = new Map<string, Guest>();

  constructor(private readonly ctx: SimContext) {
    this.unsubscribe = ctx.store.subscribe((e) => {
      if (e.resource !== VM && e.resource !== VMI) return;
      for (const svc of this.servicesFor(e.object.metadata.namespace, e.object.metadata.name ?? '')) {
        const guest = this.guests.get(`${svc.metadata.namespace}/${svc.metadata.name}`);
        if (guest) this.syncGuest(guest);
        const key = `endpoints:${svc.metadata.namespace}/${svc.metadata.name}`;
        ctx.scheduler.schedule(key, 0, () =>
          this.reconcile(svc.metadata.namespace ?? 'default', svc.metadata.name ?? ''),
        );
      }
    });
  }

  close(): void {
    this.unsubscribe();
    for (const g of this.guests.values()) g.server?.close();
    this.guests.clear();
  }

  /** Open or close guest services whose listen delay ran out (the clock moved or time passed). */
  recheck(): void {
    for (const g of this.guests.values()) this.syncGuest(g);
  }

  /** Where a simulator-run guest of this Service listens (once it does). */
  guestPort(namespace: string, serviceName: string): number | undefined {
    return this.guests.get(`${namespace}/${serviceName}`)?.port;
  }

  private async reservePort(): Promise<number> {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    return port;
  }

  private syncGuest(g: Guest): void {
    const vm = this.ctx.store.get(VM, g.namespace, g.vmName) as VirtualMachine | undefined;
    const vmi = this.ctx.store.get(VMI, g.namespace, g.vmName) as VirtualMachineInstance | undefined;
    const ranAt = vmi?.status?.phaseTransitionTimestamps?.filter((t) => t.phase === 'Running').at(-1);
    const delay = Number(vm?.metadata.annotations?.[GUEST_LISTEN_DELAY_ANNOTATION] ?? 0) || 0;
    const up =
      !!vmi &&
      !!ranAt &&
      vmi.status?.phase === 'Running' &&
      !vmi.metadata.deletionTimestamp &&
      this.ctx.clock.now().getTime() >= Date.parse(ranAt.phaseTransitionTimestamp) + delay * 1000;
    if (up && g.server && g.uid === vmi!.metadata.uid) return;
    if (g.server) {
      g.server.close();
      g.server.closeAllConnections?.();
      g.server = undefined;
      g.uid = undefined;
    }
    if (!up) return;
    const uid = vmi!.metadata.uid;
    const server = createServer((req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end(`guest ${g.vmName} (vmi ${uid}) ${req.method} ${req.url}\n`);
    });
    server.on('error', () => undefined);
    server.listen(g.port, '127.0.0.1');
    g.server = server;
    g.uid = uid;
  }

  private servicesFor(namespace: string | undefined, vmName: string): Service[] {
    if (this.ctx.store.count(SERVICE) === 0) return [];
    return (this.ctx.store.list(SERVICE, namespace) as Service[]).filter(
      (s) => s.spec?.selector?.[VM_SELECTOR_LABEL] === vmName,
    );
  }

  /** A Service whose guest the simulator runs; resolves once its port is chosen. */
  async addWithGuest(namespace: string, name: string, input: ServiceSpecInput): Promise<Service> {
    const port = await this.reservePort();
    const guest: Guest = { namespace, vmName: input.vmName, port };
    this.guests.set(`${namespace}/${name}`, guest);
    const svc = this.add(namespace, name, { ...input, upstreamPort: port, guest: false });
    this.syncGuest(guest);
    return svc;
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
      const ready = !vmi.metadata.deletionTimestamp && hasConditionTrue(vmi.status?.conditions, 'Ready');
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
