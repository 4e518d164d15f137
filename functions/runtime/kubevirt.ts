import { KubeConnection, KubeRequest } from './kube/connection';
import { collectionStream, watchLoop } from './kube/watch-loop';
import { KubeApiError } from './kube/errors';
import { Action, judge, isTransient, Verdict } from './kubevirt-answers';
import { pathSegment } from './names';
import { Transient } from './retry';
import { ObjectList, VirtualMachine, VirtualMachineInstance } from './kubevirt-types';

// The KubeVirt API as virtwake uses it: each call is one method here, with the
// URL built from checked names, failures classified once (Transient or not).

export type Resource =
  'virtualmachines' | 'virtualmachineinstances' | 'virtualmachinesnapshots' | 'virtualmachinerestores';

const GROUP_PATH: Record<Resource, string> = {
  virtualmachines: '/apis/kubevirt.io/v1',
  virtualmachineinstances: '/apis/kubevirt.io/v1',
  virtualmachinesnapshots: '/apis/snapshot.kubevirt.io/v1beta1',
  virtualmachinerestores: '/apis/snapshot.kubevirt.io/v1beta1',
};

export function collectionPath(resource: Resource, namespace: string): string {
  return `${GROUP_PATH[resource]}/namespaces/${pathSegment('namespace', namespace)}/${resource}`;
}

export function objectPath(resource: Resource, namespace: string, name: string): string {
  return `${collectionPath(resource, namespace)}/${pathSegment('name', name)}`;
}

export interface CallObserver {
  call(verb: string, resource: string, code: string, seconds: number): void;
  wait(resource: string, result: 'observed' | 'timeout', seconds: number): void;
}

const IGNORE: CallObserver = { call: () => {}, wait: () => {} };

export interface ListOptions {
  labelSelector?: string;
  limit?: number;
  continueToken?: string;
}

/** KubeVirt's refusal of a lifecycle call, judged, with its message verbatim. */
export type Refusal = Exclude<Verdict, { kind: 'transient' }> & { message: string };

export type WatchResult<T> = { done: true; object: T } | { done: false };

export interface KubeVirt {
  get<T>(resource: Resource, namespace: string, name: string): Promise<T | undefined>;
  list<T>(resource: Resource, namespace: string, opts?: ListOptions): Promise<ObjectList<T>>;
  create<T>(resource: Resource, namespace: string, body: unknown, dryRun?: boolean): Promise<T>;
  delete(resource: Resource, namespace: string, name: string): Promise<void>;
  /** JSON merge patch (never strategic merge: API servers answer 415 on custom resources). */
  mergePatch<T>(resource: Resource, namespace: string, name: string, patch: unknown, dryRun?: boolean): Promise<T>;
  /** A lifecycle subresource PUT; answers 'ok' or what KubeVirt's refusal means (Transient is thrown). */
  lifecycle(action: Action, namespace: string, name: string, body: Record<string, unknown>): Promise<'ok' | Refusal>;
  /**
   * Watch one object until `test` accepts it or `deadline` (epoch ms) passes.
   * Resumes dropped streams from the last resourceVersion; re-reads on 410 Gone.
   */
  waitFor<T extends { metadata: { resourceVersion?: string } }>(
    resource: Resource,
    namespace: string,
    name: string,
    test: (obj: T | undefined) => boolean,
    deadline: number,
    signal?: AbortSignal,
  ): Promise<WatchResult<T | undefined>>;
  getVM(namespace: string, name: string): Promise<VirtualMachine | undefined>;
  getVMI(namespace: string, name: string): Promise<VirtualMachineInstance | undefined>;
  /** Users the guest agent reports logged in (GET …/virtualmachineinstances/{name}/userlist); KubeVirt answers 409 without a running VMI or a connected agent. */
  userList?(namespace: string, name: string): Promise<{ userName: string; domain?: string; loginTime?: number }[]>;
  /** One page of a list across all namespaces (VIRTWAKE_NAMESPACES='*'; optional so test fakes need not grow it), e.g. GET /apis/kubevirt.io/v1/virtualmachines. */
  listAllNamespaces?<T>(resource: Resource, opts?: ListOptions): Promise<ObjectList<T>>;
}

export function kubevirtClient(conn: KubeConnection, observe: CallObserver = IGNORE): KubeVirt {
  async function call<T>(verb: string, resource: string, req: KubeRequest): Promise<T> {
    const started = process.hrtime.bigint();
    let code = 'error';
    try {
      const out = await conn.request<T>(req);
      code = '2xx';
      return out;
    } catch (e) {
      if (e instanceof KubeApiError) code = String(e.status);
      throw e;
    } finally {
      observe.call(verb, resource, code, Number(process.hrtime.bigint() - started) / 1e9);
    }
  }

  function transientOr(e: unknown): never {
    throw isTransient(e) ? new Transient(e) : e;
  }

  const dry = (dryRun?: boolean) => (dryRun ? { dryRun: 'All' } : undefined);

  const kv: KubeVirt = {
    async get<T>(resource: Resource, namespace: string, name: string) {
      try {
        return await call<T>('get', resource, { method: 'GET', path: objectPath(resource, namespace, name) });
      } catch (e) {
        // The object is missing, unless the whole API is (snapshot.kubevirt.io before KubeVirt 1.3): say that instead.
        if (e instanceof KubeApiError && e.status === 404 && !apiNotServed(e)) return undefined;
        return transientOr(e);
      }
    },
    async list<T>(resource: Resource, namespace: string, opts: ListOptions = {}) {
      try {
        return await call<ObjectList<T>>('list', resource, {
          method: 'GET',
          path: collectionPath(resource, namespace),
          query: { labelSelector: opts.labelSelector || undefined, limit: opts.limit, continue: opts.continueToken },
        });
      } catch (e) {
        return transientOr(e);
      }
    },
    async create<T>(resource: Resource, namespace: string, body: unknown, dryRun?: boolean) {
      try {
        return await call<T>('create', resource, {
          method: 'POST',
          path: collectionPath(resource, namespace),
          body,
          query: dry(dryRun),
        });
      } catch (e) {
        return transientOr(e);
      }
    },
    async delete(resource: Resource, namespace: string, name: string) {
      try {
        await call('delete', resource, { method: 'DELETE', path: objectPath(resource, namespace, name) });
      } catch (e) {
        if (e instanceof KubeApiError && e.status === 404) return;
        transientOr(e);
      }
    },
    async mergePatch<T>(resource: Resource, namespace: string, name: string, patch: unknown, dryRun?: boolean) {
      try {
        return await call<T>('patch', resource, {
          method: 'PATCH',
          path: objectPath(resource, namespace, name),
          body: patch,
          contentType: 'application/merge-patch+json',
          query: dry(dryRun),
        });
      } catch (e) {
        return transientOr(e);
      }
    },
    async lifecycle(action: Action, namespace: string, name: string, body: Record<string, unknown>) {
      const onVMI = action === 'pause' || action === 'unpause';
      const resource = onVMI ? 'virtualmachineinstances' : 'virtualmachines';
      const path = `/apis/subresources.kubevirt.io/v1/namespaces/${pathSegment('namespace', namespace)}/${resource}/${pathSegment('name', name)}/${action}`;
      try {
        await call('update', `${resource}/${action}`, { method: 'PUT', path, body });
        return 'ok';
      } catch (e) {
        const verdict = judge(action, e);
        if (verdict.kind === 'transient') throw new Transient(e);
        return { ...verdict, message: (e as Error).message };
      }
    },
    async waitFor(resource, namespace, name, test, deadline, signal) {
      const started = Date.now();
      const r = await watchUntil(conn, kv, resource, namespace, name, test, deadline, signal);
      observe.wait(resource, r.done ? 'observed' : 'timeout', (Date.now() - started) / 1000);
      return r;
    },
    getVM: (ns, name) => kv.get<VirtualMachine>('virtualmachines', ns, name),
    getVMI: (ns, name) => kv.get<VirtualMachineInstance>('virtualmachineinstances', ns, name),
    async userList(ns, name) {
      const path = `/apis/subresources.kubevirt.io/v1/namespaces/${pathSegment('namespace', ns)}/virtualmachineinstances/${pathSegment('name', name)}/userlist`;
      const list = await call<{ items?: { userName: string; domain?: string; loginTime?: number }[] | null }>(
        'get',
        'virtualmachineinstances/userlist',
        { method: 'GET', path },
      );
      return list.items ?? [];
    },
    async listAllNamespaces<T>(resource: Resource, opts: ListOptions = {}) {
      try {
        return await call<ObjectList<T>>('list', resource, {
          method: 'GET',
          path: `${GROUP_PATH[resource]}/${resource}`,
          query: { labelSelector: opts.labelSelector || undefined, limit: opts.limit, continue: opts.continueToken },
        });
      } catch (e) {
        return transientOr(e);
      }
    },
  };
  return kv;
}

/** kube-apiserver's 404 for a path no API serves, as opposed to a missing object of a served resource. */
export function apiNotServed(e: KubeApiError): boolean {
  return e.status === 404 && e.message === 'the server could not find the requested resource';
}

async function watchUntil<T extends { metadata: { resourceVersion?: string } }>(
  conn: KubeConnection,
  kv: KubeVirt,
  resource: Resource,
  namespace: string,
  name: string,
  test: (obj: T | undefined) => boolean,
  deadline: number,
  signal?: AbortSignal,
): Promise<WatchResult<T | undefined>> {
  const hit = (o: T | undefined) => (test(o) ? { value: o } : undefined);
  const r = await watchLoop<T | undefined, T | undefined>({
    async read() {
      const current = await kv.get<T>(resource, namespace, name);
      return { state: current, resourceVersion: current?.metadata.resourceVersion };
    },
    apply: (_, type, obj) => (type === 'DELETED' ? undefined : (obj as T)),
    pick: hit,
    stream: collectionStream(conn, collectionPath(resource, namespace), {
      fieldSelector: `metadata.name=${name}`,
    }),
    deadline,
    signal,
    maxFailures: 5,
    retryable: (e) => e instanceof Transient,
    giveUp: (e) => new Transient(e, `watching ${resource} ${namespace}/${name} keeps failing`),
  });
  return r.done ? { done: true, object: r.value } : { done: false };
}
