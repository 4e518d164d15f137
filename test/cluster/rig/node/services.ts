// Three stand-ins that follow Services and the node's pods:
// - kube-proxy: a TCP listener on each ClusterIP:port (an address of the bridge, network.ts)
//   that forwards every connection to a Ready pod selected by the Service, at its targetPort;
//   a Service with no Ready pod refuses the connection, as kube-proxy's REJECT rule does;
// - the endpoints and EndpointSlice controllers: Endpoints and an EndpointSlice for each
//   Service that selects the node's pods (Knative's reconcilers read Endpoints for the Broker's
//   ingress and filter and for the InMemoryChannel dispatcher);
// - cluster DNS: the names of every Service (ClusterIP, and ExternalName pointing at one) in
//   each pod's /etc/hosts.

import net from 'node:net';
import type { Kube } from '../../../../simulator/rig/kube';
import { KubeError } from '../../../../simulator/rig/kube';
import { apply } from '../manifests';
import { addClusterIP, hostIP, writeDns, type NetworkSpec } from './network';
import type { Pod } from './pods';

const matches = (selector: Record<string, string> | undefined, labels: Record<string, string>) =>
  !!selector && Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels[k] === v);

export class ServiceNetwork {
  private readonly services = new Map<string, any>();
  private readonly listeners = new Map<string, net.Server>();
  private readonly written = new Map<string, string>();
  private next = 0;

  constructor(
    private readonly kube: Kube,
    private readonly net: NetworkSpec,
    private readonly pods: () => Pod[],
    private readonly log: (m: string) => void,
    /** Where default/kubernetes leads: the API server (its Endpoints are the apiserver's own, not a pod). */
    private readonly api: { host: string; port: number },
  ) {}

  serviceChanged(key: string, svc: any | undefined): void {
    if (svc) this.services.set(key, svc);
    else this.services.delete(key);
    const ip = svc?.spec?.clusterIP;
    if (!svc || svc.spec.type === 'ExternalName' || !ip || ip === 'None') return;
    addClusterIP(this.net, ip);
    for (const p of svc.spec.ports ?? []) this.listen(key, ip, p.port);
  }

  /** After any change to Services or pods: endpoints and DNS follow. */
  async sync(): Promise<void> {
    this.writeDns();
    for (const [key, svc] of this.services) {
      const selected = this.selected(svc);
      if (selected.length === 0) continue;
      await this.writeEndpoints(
        key,
        svc,
        selected.filter((p) => p.ready),
      ).catch((e) => this.log(`endpoints ${key}: ${(e as Error).message}`));
    }
  }

  /** The node's pods a Service selects (Ready or not). */
  private selected(svc: any): Pod[] {
    return this.pods().filter((p) => p.namespace === svc.metadata.namespace && matches(svc.spec.selector, p.labels));
  }

  close(): void {
    for (const s of this.listeners.values()) s.close();
  }

  private listen(key: string, ip: string, port: number): void {
    const id = `${ip}:${port}`;
    if (this.listeners.has(id)) return;
    const server = net.createServer((client) => this.forward(key, port, client));
    server.on('error', (e) => this.log(`kube-proxy ${key} ${id}: ${e.message}`));
    server.listen(port, ip);
    this.listeners.set(id, server);
  }

  private forward(key: string, port: number, client: net.Socket): void {
    const svc = this.services.get(key);
    const sp = svc?.spec?.ports?.find((p: any) => p.port === port);
    const ready = svc ? this.selected(svc).filter((p) => p.ready) : [];
    const toApi = key === 'default/kubernetes';
    if (!sp || (ready.length === 0 && !toApi)) {
      client.resetAndDestroy();
      return;
    }
    const pod = ready[this.next++ % ready.length];
    const upstream = pod
      ? net.connect(pod.port(sp.targetPort ?? sp.port, sp.port), pod.net.ip)
      : net.connect(this.api.port, this.api.host);
    client.pipe(upstream).pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end);
    upstream.on('error', end);
    client.on('close', end);
    upstream.on('close', end);
  }

  private async writeEndpoints(key: string, svc: any, ready: Pod[]): Promise<void> {
    const ns = svc.metadata.namespace;
    const name = svc.metadata.name;
    const ports = (svc.spec.ports ?? []).map((p: any) => ({
      name: p.name,
      protocol: p.protocol ?? 'TCP',
      port: ready[0] ? ready[0].port(p.targetPort ?? p.port, p.port) : p.port,
    }));
    const addresses = ready.map((p) => ({ ip: p.net.ip, nodeName: 'rig-node-1' }));
    const state = JSON.stringify([addresses, ports]);
    if (this.written.get(key) === state) return;
    const endpoints = {
      apiVersion: 'v1',
      kind: 'Endpoints',
      metadata: { name, namespace: ns, labels: { 'kubernetes.io/service-name': name } },
      subsets: addresses.length ? [{ addresses, ports }] : [],
    };
    const slice = {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: {
        name: `${name}-rig`,
        namespace: ns,
        labels: { 'kubernetes.io/service-name': name, 'endpointslice.kubernetes.io/managed-by': 'rig-node' },
      },
      addressType: 'IPv4',
      endpoints: ready.map((p) => ({ addresses: [p.net.ip], conditions: { ready: true }, nodeName: 'rig-node-1' })),
      ports,
    };
    await this.put(`/api/v1/namespaces/${ns}/endpoints`, endpoints);
    await this.put(`/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`, slice);
    this.written.set(key, state);
  }

  /** Written in full each time; a conflict means a newer write of the same state raced it. */
  private async put(collection: string, obj: any): Promise<void> {
    await apply(this.kube, collection, obj).catch((e) => {
      if (!(e instanceof KubeError && e.status === 409)) throw e;
    });
  }

  /** Synchronously, so that a pod about to start finds its hosts file (ip netns exec mounts it only if it exists). */
  writeDns(): void {
    const ipOf = new Map<string, string>();
    for (const svc of this.services.values()) {
      const ip = svc.spec?.clusterIP;
      if (ip && ip !== 'None' && svc.spec.type !== 'ExternalName')
        ipOf.set(`${svc.metadata.name}.${svc.metadata.namespace}.svc.cluster.local`, ip);
    }
    const lines: Array<[string, string, string]> = [];
    for (const svc of this.services.values()) {
      const fqdn = `${svc.metadata.name}.${svc.metadata.namespace}.svc.cluster.local`;
      const ip =
        svc.spec.type === 'ExternalName' ? ipOf.get(String(svc.spec.externalName).replace(/\.$/, '')) : ipOf.get(fqdn);
      if (ip) lines.push([ip, svc.metadata.namespace, svc.metadata.name]);
    }
    for (const pod of this.pods()) {
      const hosts = lines
        .map(
          ([ip, ns, name]) =>
            `${ip} ${name}.${ns}.svc.cluster.local ${name}.${ns}.svc ${name}.${ns}${ns === pod.namespace ? ` ${name}` : ''}\n`,
        )
        .join('');
      writeDns(pod.net.netns, pod.namespace, hosts, hostIP(this.net));
    }
  }
}
