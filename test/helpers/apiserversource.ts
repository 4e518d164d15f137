import { randomUUID } from 'node:crypto';
import { CustomObjectsApi, KubeConfig, Watch } from '@kubernetes/client-node';
import type { Harness } from './harness';
import type { App } from '../../functions/app';
import type { ApiCall } from '../knative/rbac';

// What Knative's ApiServerSource adapter would send for the simulator's
// objects (mode Resource), built the way the adapter builds them, so tests can
// deliver them to virtwake like a Trigger would: when, how often and in which
// order each test decides. Read in knative/eventing (pkg/adapter/apiserver):
// - events/events.go makeEvent: type dev.knative.apiserver.resource.add |
//   .update | .delete (the ApiServerSource*EventType constants), source = the
//   adapter's `source`, subject = createSelfLink(...) =
//   /apis/<apiVersion>/namespaces/<ns>/<plural>/<name>, extensions kind,
//   apiversion, name and namespace, datacontenttype application/json, data =
//   the object;
// - adapter_injection.go: `source` is the API server's host URL (rest.Config.Host);
// - delegate.go sendCloudEvent: id = a new UUID for every send (a Broker
//   redelivery keeps it; a re-list sends the same object under a new id);
// - the informer lists first (each object an add), then watches from the
//   list's resourceVersion (ADDED add, MODIFIED update, DELETED delete).

export interface Resource {
  group: string;
  version: string;
  plural: string;
  kind: string;
  labelSelector?: string;
}

export const VMS: Resource = {
  group: 'kubevirt.io',
  version: 'v1',
  plural: 'virtualmachines',
  kind: 'VirtualMachine',
  labelSelector: 'virtwake.io/enabled=true',
};
export const SNAPSHOTS: Resource = {
  group: 'snapshot.kubevirt.io',
  version: 'v1beta1',
  plural: 'virtualmachinesnapshots',
  kind: 'VirtualMachineSnapshot',
  labelSelector: 'app.kubernetes.io/managed-by=virtwake',
};

export interface ChangeEvent {
  id: string;
  type: string;
  source: string;
  subject: string;
  extensions: Record<string, string>;
  data: { kind?: string; metadata: { name: string; namespace?: string; resourceVersion?: string } } & Record<
    string,
    unknown
  >;
}

export interface ChangeFeed {
  events: ChangeEvent[];
  /** The events about one object, oldest first. */
  about(kind: string, name: string): ChangeEvent[];
  /** The calls the feed made, in RBAC terms (compared with knative/apiserversource.yaml). */
  calls: ApiCall[];
  stop(): void;
}

const TYPES: Record<string, string> = {
  ADDED: 'dev.knative.apiserver.resource.add',
  MODIFIED: 'dev.knative.apiserver.resource.update',
  DELETED: 'dev.knative.apiserver.resource.delete',
};

export async function changeFeed(h: Harness, resources: Resource[], namespace = 'default'): Promise<ChangeFeed> {
  const kc = new KubeConfig();
  kc.loadFromFile(h.sim.kubeconfigPath);
  const source = kc.getCurrentCluster()?.server ?? h.sim.url;
  const api = kc.makeApiClient(CustomObjectsApi);
  const events: ChangeEvent[] = [];
  const calls: ApiCall[] = [];
  const aborts: AbortController[] = [];

  const toEvent = (r: Resource, phase: string, obj: ChangeEvent['data']): ChangeEvent => {
    const apiVersion = `${r.group}/${r.version}`;
    return {
      id: randomUUID(),
      type: TYPES[phase],
      source,
      subject: `/apis/${apiVersion}/namespaces/${obj.metadata.namespace}/${r.plural}/${obj.metadata.name}`,
      extensions: {
        kind: r.kind,
        apiversion: apiVersion,
        name: obj.metadata.name,
        namespace: obj.metadata.namespace ?? '',
      },
      data: { ...obj, kind: obj.kind ?? r.kind, apiVersion },
    };
  };

  for (const r of resources) {
    const list = (await api.listNamespacedCustomObject({
      group: r.group,
      version: r.version,
      namespace,
      plural: r.plural,
      labelSelector: r.labelSelector,
    })) as { metadata?: { resourceVersion?: string }; items: ChangeEvent['data'][] };
    calls.push({ verb: 'list', group: r.group, resource: r.plural });
    for (const o of list.items) events.push(toEvent(r, 'ADDED', o));
    const watch = new Watch(kc);
    calls.push({ verb: 'watch', group: r.group, resource: r.plural });
    aborts.push(
      await watch.watch(
        `/apis/${r.group}/${r.version}/namespaces/${namespace}/${r.plural}`,
        { labelSelector: r.labelSelector, resourceVersion: list.metadata?.resourceVersion },
        (phase, obj) => {
          if (TYPES[phase]) events.push(toEvent(r, phase, obj));
        },
        () => {},
      ),
    );
  }
  return {
    events,
    calls,
    about: (kind, name) => events.filter((e) => e.extensions.kind === kind && e.data.metadata.name === name),
    stop: () => aborts.forEach((a) => a.abort()),
  };
}

/** POST one change event to an instance as the Trigger would (binary mode). */
export function deliver(h: Harness, e: ChangeEvent, to?: App) {
  const headers: Record<string, string> = { 'ce-subject': e.subject };
  for (const [k, v] of Object.entries(e.extensions)) headers[`ce-${k}`] = v;
  return h.send(e.type, e.data, { id: e.id, source: e.source, headers, to });
}
