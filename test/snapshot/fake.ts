import type { CloudEvent } from '../../functions/runtime/cloudevents/event';
import type { VmCommand, VmContext } from '../../functions/runtime/function';
import { KubeApiError } from '../../functions/runtime/kube/errors';
import type { KubeVirt, Resource } from '../../functions/runtime/kubevirt';
import type { VirtualMachine } from '../../functions/runtime/kubevirt-types';
import { matches, parseSelector } from '../../functions/runtime/labels';
import { requestKey } from '../../functions/runtime/reply';

// An in-memory KubeVirt for unit tests of the snapshot and restore functions:
// objects by resource and name, every call recorded, and hooks where a test
// plays KubeVirt (admission on create, progress while a function waits).

type Obj = { metadata: { name: string; [k: string]: unknown }; [k: string]: unknown };

export interface Fake {
  kubevirt: KubeVirt;
  objects: Map<Resource, Map<string, Obj>>;
  calls: string[];
  put(resource: Resource, obj: Obj): void;
  all(resource: Resource): Obj[];
  /** Runs on create before storing; throw a KubeApiError to refuse. */
  admit?: (resource: Resource, body: Obj) => void;
  /** Runs when a function starts waiting: change objects as KubeVirt would. */
  progress?: (resource: Resource, name: string) => void;
  lifecycleAnswer?: Awaited<ReturnType<KubeVirt['lifecycle']>>;
}

let stamp = 0;

export function fakeKubeVirt(): Fake {
  const objects = new Map<Resource, Map<string, Obj>>();
  const calls: string[] = [];
  const bucket = (r: Resource) => {
    let b = objects.get(r);
    if (!b) objects.set(r, (b = new Map()));
    return b;
  };
  const copy = <T>(o: unknown): T => structuredClone(o) as T;
  const fake: Fake = {
    objects,
    calls,
    put(resource, obj) {
      const meta = obj.metadata as Record<string, unknown>;
      meta.creationTimestamp ??= new Date(Date.UTC(2025, 0, 1, 0, 0, ++stamp)).toISOString().replace('.000', '');
      meta.resourceVersion = String(++stamp);
      bucket(resource).set(obj.metadata.name, obj);
    },
    all: (resource) => [...bucket(resource).values()],
    kubevirt: {
      async get<T>(resource: Resource, _ns: string, name: string) {
        calls.push(`get ${resource} ${name}`);
        const o = bucket(resource).get(name);
        return o ? copy<T>(o) : undefined;
      },
      async list<T>(resource: Resource, _ns: string, opts: { labelSelector?: string } = {}) {
        calls.push(`list ${resource}${opts.labelSelector ? ` ${opts.labelSelector}` : ''}`);
        const reqs = parseSelector(opts.labelSelector ?? '');
        const items = [...bucket(resource).values()].filter((o) =>
          matches(reqs, (o.metadata as { labels?: Record<string, string> }).labels),
        );
        return { items: copy<T[]>(items), metadata: {} };
      },
      async create<T>(resource: Resource, _ns: string, body: unknown, dryRun?: boolean) {
        calls.push(`create ${resource}${dryRun ? ' dryRun' : ''}`);
        const obj = copy<Obj>(body);
        fake.admit?.(resource, obj);
        if (bucket(resource).has(obj.metadata.name)) {
          throw new KubeApiError(409, 'AlreadyExists', `${resource} "${obj.metadata.name}" already exists`);
        }
        if (!dryRun) fake.put(resource, obj);
        return copy<T>(obj);
      },
      async delete(resource: Resource, _ns: string, name: string) {
        calls.push(`delete ${resource} ${name}`);
        bucket(resource).delete(name);
      },
      async mergePatch() {
        throw new Error('not used by snapshot or restore');
      },
      async lifecycle(action, _ns, name) {
        calls.push(`${action} ${name}`);
        return fake.lifecycleAnswer ?? 'ok';
      },
      async waitFor<T>(resource: Resource, _ns: string, name: string, test: (o: T | undefined) => boolean) {
        calls.push(`watch ${resource} ${name}`);
        fake.progress?.(resource, name);
        const o = bucket(resource).get(name);
        const current = o ? copy<T>(o) : undefined;
        return test(current) ? { done: true as const, object: current } : { done: false as const };
      },
      async getVM(_ns: string, name: string) {
        return fake.kubevirt.get<VirtualMachine>('virtualmachines', 'default', name);
      },
      async getVMI(_ns: string, name: string) {
        return fake.kubevirt.get('virtualmachineinstances', 'default', name);
      },
    } as KubeVirt,
  };
  return fake;
}

export function vmObject(
  name: string,
  status: VirtualMachine['status'] = { printableStatus: 'Stopped' },
): VirtualMachine {
  return {
    metadata: { name, namespace: 'default', labels: { 'virtwake.io/enabled': 'true' } },
    spec: { runStrategy: 'Halted' },
    status,
  };
}

export interface CtxOptions {
  id?: string;
  source?: string;
  vm?: VirtualMachine;
  wait?: boolean;
  now?: Date;
}

export function context<C extends VmCommand>(fake: Fake, command: C, o: CtxOptions = {}): VmContext<C> {
  const name = command.name ?? 'vm-1';
  const event: CloudEvent = {
    specversion: '1.0',
    id: o.id ?? 'evt-1',
    source: o.source ?? '/test/unit',
    type: 'io.virtwake.vm.snapshot',
    extensions: {},
  };
  const vm = o.vm ?? (fake.objects.get('virtualmachines')?.get(name) as VirtualMachine | undefined) ?? vmObject(name);
  return {
    command,
    namespace: 'default',
    name,
    vm,
    event,
    requestKey: requestKey(event),
    deliveryId: `delivery-${o.id ?? 'evt-1'}`,
    kubevirt: fake.kubevirt,
    now: () => o.now ?? new Date('2025-01-01T12:00:00.123Z'),
    waitUntil: o.wait ? Number.MAX_SAFE_INTEGER : undefined,
    signal: new AbortController().signal,
  };
}
