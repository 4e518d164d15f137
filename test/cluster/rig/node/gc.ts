// kube-controller-manager's garbage collector, for the kinds Knative creates with owners: an
// object whose owners are all gone is deleted (pkg/controller/garbagecollector). Knative relies
// on it: a deleted Trigger's Subscription stays in the InMemoryChannel otherwise, and the
// dispatcher's fan-out then fails every event posted to the Broker (500 to the producer).
// A poll, not the real dependency graph: enough for the few hundred objects of the rig.

import type { Kube } from '../../../../simulator/rig/kube';
import { KubeError } from '../../../../simulator/rig/kube';

const DEPENDENTS = [
  '/apis/messaging.knative.dev/v1/subscriptions',
  '/apis/messaging.knative.dev/v1/inmemorychannels',
  '/apis/apps/v1/deployments',
  '/api/v1/services',
  '/apis/rbac.authorization.k8s.io/v1/rolebindings',
];

export class GarbageCollector {
  private readonly plural = new Map<string, string>();
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly kube: Kube,
    private readonly log: (m: string) => void,
  ) {}

  start(everyMs = 1000): void {
    const tick = async () => {
      for (const coll of DEPENDENTS)
        await this.sweep(coll).catch((e) => this.log(`gc ${coll}: ${(e as Error).message}`));
      this.timer = setTimeout(() => void tick(), everyMs);
    };
    void tick();
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  private async sweep(collection: string): Promise<void> {
    const list: any = await this.kube.get(collection);
    for (const o of list?.items ?? []) {
      const owners: any[] = o.metadata.ownerReferences ?? [];
      if (owners.length === 0 || o.metadata.deletionTimestamp) continue;
      let alive = false;
      for (const ref of owners) if (await this.exists(ref, o.metadata.namespace)) alive = true;
      if (alive) continue;
      this.log(`gc: deleting ${collection}/${o.metadata.namespace}/${o.metadata.name} (owners gone)`);
      await this.kube
        .request('DELETE', `${this.at(collection, o.metadata.namespace)}/${o.metadata.name}`)
        .catch((e) => {
          if (!(e instanceof KubeError && e.status === 404)) throw e;
        });
    }
  }

  private at(collection: string, ns: string | undefined): string {
    if (!ns) return collection;
    const i = collection.lastIndexOf('/');
    return `${collection.slice(0, i)}/namespaces/${ns}${collection.slice(i)}`;
  }

  private async exists(ref: any, ns: string | undefined): Promise<boolean> {
    const base = String(ref.apiVersion).includes('/') ? `/apis/${ref.apiVersion}` : `/api/${ref.apiVersion}`;
    const key = `${ref.apiVersion}/${ref.kind}`;
    let plural = this.plural.get(key);
    if (!plural) {
      const res: any = await this.kube.get(base);
      const r = (res?.resources ?? []).find((x: any) => x.kind === ref.kind && !String(x.name).includes('/'));
      // An owner whose kind the API does not serve cannot be judged: keep the dependent.
      if (!r) return true;
      plural = `${r.name}|${r.namespaced}`;
      this.plural.set(key, plural);
    }
    const [name, ns2] = plural.split('|');
    const namespaced = ns2 === 'true';
    const path = namespaced ? `${base}/namespaces/${ns}/${name}/${ref.name}` : `${base}/${name}/${ref.name}`;
    const owner: any = await this.kube.get(path);
    return !!owner && owner.metadata.uid === ref.uid;
  }
}
