// Two controllers' stand-ins that turn objects into pods (pods.ts):
// - kube-controller-manager's Deployment controller: one pod per Deployment with replicas > 0
//   (more replicas are run as one: nothing in the rig needs two), replaced when the pod
//   template changes (Recreate), and the Deployment's status written as that controller writes it;
// - Knative Serving, for the Knative Services virtwake ships: one pod per Service (no
//   activator, no queue-proxy, no scale to zero), a ClusterIP Service of the same name in front
//   of it, and status.address.url / Ready as Serving's route reports them.
// Only templates whose image has a program (the built Eventing programs, virtwake's bundle)
// are run; others are left alone.

import { createHash } from 'node:crypto';
import { KubeError } from '../../../../simulator/rig/kube';
import { createPodNet, removePodNet, type NetworkSpec } from './network';
import { Pod, type NodeContext, type PodOptions } from './pods';

interface Running {
  pod: Pod;
  hash: string;
}

const hashOf = (v: unknown) => createHash('sha256').update(JSON.stringify(v)).digest('hex').slice(0, 10);

export class Workloads {
  private readonly running = new Map<string, Running>();
  private readonly freeSlots = Array.from({ length: 200 }, (_, i) => 250 - i);
  private readonly slotOf = new Map<Pod, number>();
  /** Called when a pod appears, goes or changes readiness (the endpoints and DNS follow). */
  onPodsChanged: () => void = () => undefined;

  constructor(
    private readonly ctx: NodeContext,
    private readonly net: NetworkSpec,
  ) {}

  pods(): Pod[] {
    return [...this.running.values()].map((r) => r.pod);
  }

  /** Pod templates the node would run: the Services that select them get endpoints from it. */
  async deploymentChanged(key: string, d: any | undefined): Promise<void> {
    const owner = `Deployment:${key}`;
    const replicas = d?.spec?.replicas ?? 1;
    if (!d || replicas === 0 || !this.runnable(d.spec.template)) {
      this.stopPod(owner);
      if (d && this.runnable(d.spec.template)) await this.deploymentStatus(d, false);
      return;
    }
    const hash = hashOf(d.spec.template);
    await this.ensurePod(owner, hash, {
      name: `${d.metadata.name}-${hash.slice(0, 5)}-rig`,
      namespace: d.metadata.namespace,
      template: d.spec.template,
    });
    await this.deploymentStatus(d, this.running.get(owner)?.pod.ready ?? false);
  }

  async serviceChanged(key: string, ksvc: any | undefined): Promise<void> {
    const owner = `KnativeService:${key}`;
    if (!ksvc || !this.runnable(ksvc.spec.template)) {
      this.stopPod(owner);
      return;
    }
    const name = ksvc.metadata.name as string;
    const ns = ksvc.metadata.namespace as string;
    const container = ksvc.spec.template.spec.containers[0];
    const port = container.ports?.[0]?.containerPort ?? 8080;
    const revision = `${name}-${String(ksvc.metadata.generation ?? 1).padStart(5, '0')}`;
    const hash = hashOf(ksvc.spec.template);
    // Serving's Service stays as long as the Knative Service: made once, with the first pod.
    if (this.running.get(owner)?.hash !== hash) await this.ensureService(ksvc, port);
    await this.ensurePod(owner, hash, {
      name: `${revision}-deployment-rig`,
      namespace: ns,
      template: ksvc.spec.template,
      labels: { 'serving.knative.dev/service': name, 'serving.knative.dev/revision': revision },
      // What Serving puts into every user container (serving's pkg/reconciler/revision/resources/deploy.go).
      env: { PORT: String(port), K_SERVICE: name, K_CONFIGURATION: name, K_REVISION: revision },
    });
    await this.ksvcStatus(ksvc, revision, this.running.get(owner)?.pod.ready ?? false);
  }

  stopAll(): void {
    for (const owner of [...this.running.keys()]) this.stopPod(owner);
  }

  owners(): string[] {
    return [...this.running.keys()];
  }

  netnses(): string[] {
    return this.pods().map((p) => p.net.netns);
  }

  private runnable(template: any): boolean {
    const cs = template?.spec?.containers ?? [];
    return cs.length === 1 && this.ctx.programFor(cs[0].image) !== undefined;
  }

  private async ensurePod(owner: string, hash: string, opts: PodOptions): Promise<void> {
    const cur = this.running.get(owner);
    if (cur?.hash === hash) return;
    if (cur) this.stopPod(owner);
    const slot = this.freeSlots.pop();
    if (slot === undefined) throw new Error('rig node: no pod addresses left');
    const net = createPodNet(this.net, slot);
    const pod = new Pod(this.ctx, opts, net, () => this.onPodsChanged());
    this.slotOf.set(pod, slot);
    this.running.set(owner, { pod, hash });
    this.onPodsChanged();
    try {
      await pod.start();
    } catch (e) {
      this.ctx.log(`pod ${opts.namespace}/${opts.name} not started: ${(e as Error).message}`);
    }
  }

  private stopPod(owner: string): void {
    const cur = this.running.get(owner);
    if (!cur) return;
    this.running.delete(owner);
    cur.pod.stop();
    const slot = this.slotOf.get(cur.pod);
    this.slotOf.delete(cur.pod);
    // The address is reused only after the process is surely gone.
    setTimeout(() => {
      removePodNet(cur.pod.net.netns);
      if (slot !== undefined) this.freeSlots.unshift(slot);
    }, 6000).unref();
    this.onPodsChanged();
  }

  private async deploymentStatus(d: any, ready: boolean): Promise<void> {
    const n = ready ? 1 : 0;
    const running = this.running.has(`Deployment:${d.metadata.namespace}/${d.metadata.name}`) ? 1 : 0;
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const status = {
      observedGeneration: d.metadata.generation,
      replicas: running,
      updatedReplicas: running,
      readyReplicas: n,
      availableReplicas: n,
      unavailableReplicas: running - n,
      conditions: [
        {
          type: 'Available',
          status: ready ? 'True' : 'False',
          reason: ready ? 'MinimumReplicasAvailable' : 'MinimumReplicasUnavailable',
          lastUpdateTime: now,
          lastTransitionTime: now,
        },
        {
          type: 'Progressing',
          status: 'True',
          reason: ready ? 'NewReplicaSetAvailable' : 'ReplicaSetUpdated',
          lastUpdateTime: now,
          lastTransitionTime: now,
        },
      ],
    };
    const same = (a: any) =>
      a?.observedGeneration === status.observedGeneration &&
      a?.readyReplicas === status.readyReplicas &&
      a?.replicas === status.replicas;
    if (same(d.status)) return;
    await this.patchStatus(
      `/apis/apps/v1/namespaces/${d.metadata.namespace}/deployments/${d.metadata.name}/status`,
      status,
    );
  }

  private async ensureService(ksvc: any, port: number): Promise<void> {
    const ns = ksvc.metadata.namespace;
    const name = ksvc.metadata.name;
    const existing = await this.ctx.kube.get(`/api/v1/namespaces/${ns}/services/${name}`);
    if (existing) return;
    await this.ctx.kube
      .request('POST', `/api/v1/namespaces/${ns}/services`, {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: {
          name,
          namespace: ns,
          labels: { 'serving.knative.dev/service': name },
          ownerReferences: [
            { apiVersion: 'serving.knative.dev/v1', kind: 'Service', name, uid: ksvc.metadata.uid, controller: true },
          ],
        },
        spec: {
          selector: { 'serving.knative.dev/service': name },
          ports: [{ name: 'http', port: 80, targetPort: port, protocol: 'TCP' }],
        },
      })
      .catch((e) => {
        if (!(e instanceof KubeError && e.status === 409)) throw e;
      });
  }

  private async ksvcStatus(ksvc: any, revision: string, ready: boolean): Promise<void> {
    const url = `http://${ksvc.metadata.name}.${ksvc.metadata.namespace}.svc.cluster.local`;
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const cond = (type: string) => ({
      type,
      status: ready ? 'True' : 'Unknown',
      ...(ready ? {} : { reason: 'Deploying' }),
      lastTransitionTime: now,
    });
    const cur = ksvc.status ?? {};
    if (
      cur.observedGeneration === ksvc.metadata.generation &&
      cur.conditions?.find((c: any) => c.type === 'Ready')?.status === (ready ? 'True' : 'Unknown')
    )
      return;
    await this.patchStatus(
      `/apis/serving.knative.dev/v1/namespaces/${ksvc.metadata.namespace}/services/${ksvc.metadata.name}/status`,
      {
        observedGeneration: ksvc.metadata.generation,
        url,
        address: { url },
        latestCreatedRevisionName: revision,
        latestReadyRevisionName: ready ? revision : undefined,
        conditions: [cond('ConfigurationsReady'), cond('Ready'), cond('RoutesReady')],
      },
    );
  }

  private async patchStatus(path: string, status: unknown): Promise<void> {
    try {
      await this.ctx.kube.request('PATCH', path, { status }, 'application/merge-patch+json');
    } catch (e) {
      if (!(e instanceof KubeError && e.status === 404)) this.ctx.log(`status ${path}: ${(e as Error).message}`);
    }
  }
}
