// The object store: one resourceVersion counter for everything (like etcd), watch events
// for every write, a bounded event history for watch resumption, and finalizer-aware
// deletion. Stored objects are treated as immutable: writers hand in fresh copies.

import { randomUUID } from 'node:crypto';
import type { Clock } from './clock';
import { formatTime } from './clock';
import { errors } from './errors';
import { deepEqual, objectKey } from './objects';
import { apiVersionOf, type ResourceDef } from './resources';
import type { KubeObject } from './types';

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface StoreEvent {
  type: EventType;
  resource: ResourceDef;
  object: KubeObject;
  /** The previous version, so selector-filtered watches can turn label changes into ADDED/DELETED. */
  old?: KubeObject;
  rv: number;
}

export interface WriteOptions {
  dryRun?: boolean;
}

export type StoreListener = (e: StoreEvent) => void;

function bucketKey(r: ResourceDef): string {
  return `${r.plural}.${r.group}`;
}

export class ObjectStore {
  private rv = 0;
  private readonly buckets = new Map<string, Map<string, KubeObject>>();
  private readonly sorted = new Map<string, string[]>();
  private history: StoreEvent[] = [];
  /** Watches from a resourceVersion below this cannot be served any more (410). */
  private historyFloor = 0;
  /** Like etcd compaction: continue tokens older than this are expired. */
  private compactedRv = 0;
  private readonly listeners = new Set<StoreListener>();

  constructor(
    private readonly clock: Clock,
    private readonly historyCapacity = 20_000,
  ) {}

  currentRv(): number {
    return this.rv;
  }

  get compactedResourceVersion(): number {
    return this.compactedRv;
  }

  subscribe(l: StoreListener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  get(r: ResourceDef, namespace: string | undefined, name: string): KubeObject | undefined {
    return this.bucket(r).get(objectKey(namespace, name));
  }

  getByKey(r: ResourceDef, key: string): KubeObject | undefined {
    return this.bucket(r).get(key);
  }

  /** Keys in etcd byte order of "namespace/name", which is the order kube-apiserver lists in. */
  sortedKeys(r: ResourceDef): string[] {
    const k = bucketKey(r);
    let keys = this.sorted.get(k);
    if (!keys) {
      keys = [...this.bucket(r).keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      this.sorted.set(k, keys);
    }
    return keys;
  }

  list(r: ResourceDef, namespace?: string): KubeObject[] {
    const b = this.bucket(r);
    const out: KubeObject[] = [];
    for (const k of this.sortedKeys(r)) {
      const o = b.get(k)!;
      if (namespace === undefined || o.metadata.namespace === namespace) out.push(o);
    }
    return out;
  }

  count(r: ResourceDef): number {
    return this.bucket(r).size;
  }

  create(r: ResourceDef, input: KubeObject, opts: WriteOptions = {}): KubeObject {
    const name = input.metadata.name ?? '';
    const b = this.bucket(r);
    const key = objectKey(input.metadata.namespace, name);
    if (b.has(key)) throw errors.alreadyExists({ group: r.group, resource: r.plural }, name);
    const obj: KubeObject = {
      ...input,
      apiVersion: apiVersionOf(r),
      kind: r.kind,
      metadata: {
        ...input.metadata,
        uid: input.metadata.uid ?? randomUUID(),
        creationTimestamp: input.metadata.creationTimestamp ?? formatTime(this.clock.now()),
        generation: 1,
      },
    };
    if (opts.dryRun) {
      delete obj.metadata.resourceVersion;
      return obj;
    }
    obj.metadata.resourceVersion = String(++this.rv);
    b.set(key, obj);
    this.sorted.delete(bucketKey(r));
    this.emit({ type: 'ADDED', resource: r, object: obj, rv: this.rv });
    return obj;
  }

  /**
   * Replace an existing object. Bumps generation when the spec changed, and completes a
   * pending deletion once the last finalizer is gone.
   */
  update(r: ResourceDef, next: KubeObject, opts: WriteOptions = {}): KubeObject {
    const name = next.metadata.name ?? '';
    const key = objectKey(next.metadata.namespace, name);
    const b = this.bucket(r);
    const old = b.get(key);
    if (!old) throw errors.notFound({ group: r.group, resource: r.plural }, name);
    const obj: KubeObject = { ...next, apiVersion: apiVersionOf(r), kind: r.kind, metadata: { ...next.metadata } };
    obj.metadata.uid = old.metadata.uid;
    obj.metadata.creationTimestamp = old.metadata.creationTimestamp;
    if (old.metadata.deletionTimestamp) obj.metadata.deletionTimestamp = old.metadata.deletionTimestamp;
    if (old.metadata.generation !== undefined) {
      obj.metadata.generation = deepEqual(old.spec, obj.spec) ? old.metadata.generation : old.metadata.generation + 1;
    }
    if (deepEqual(stripRv(old), stripRv(obj))) {
      return old; // no-op writes do not bump the resourceVersion, as in kube-apiserver
    }
    if (opts.dryRun) {
      obj.metadata.resourceVersion = old.metadata.resourceVersion;
      return obj;
    }
    obj.metadata.resourceVersion = String(++this.rv);
    if (obj.metadata.deletionTimestamp && !obj.metadata.finalizers?.length) {
      b.delete(key);
      this.sorted.delete(bucketKey(r));
      this.emit({ type: 'DELETED', resource: r, object: obj, old, rv: this.rv });
      return obj;
    }
    b.set(key, obj);
    this.emit({ type: 'MODIFIED', resource: r, object: obj, old, rv: this.rv });
    return obj;
  }

  /** Delete, or mark for deletion while finalizers remain. Returns the object as answered by DELETE. */
  delete(
    r: ResourceDef,
    namespace: string | undefined,
    name: string,
    opts: WriteOptions & { force?: boolean } = {},
  ): { object: KubeObject; gone: boolean } {
    const key = objectKey(namespace, name);
    const b = this.bucket(r);
    const old = b.get(key);
    if (!old) throw errors.notFound({ group: r.group, resource: r.plural }, name);
    if (old.metadata.finalizers?.length && !opts.force) {
      if (old.metadata.deletionTimestamp) return { object: old, gone: false };
      const marked: KubeObject = {
        ...old,
        metadata: { ...old.metadata, deletionTimestamp: formatTime(this.clock.now()), deletionGracePeriodSeconds: 0 },
      };
      if (opts.dryRun) return { object: marked, gone: false };
      marked.metadata.resourceVersion = String(++this.rv);
      b.set(key, marked);
      this.emit({ type: 'MODIFIED', resource: r, object: marked, old, rv: this.rv });
      return { object: marked, gone: false };
    }
    if (opts.dryRun) return { object: old, gone: true };
    const gone: KubeObject = { ...old, metadata: { ...old.metadata, resourceVersion: String(++this.rv) } };
    b.delete(key);
    this.sorted.delete(bucketKey(r));
    this.emit({ type: 'DELETED', resource: r, object: gone, old, rv: this.rv });
    return { object: gone, gone: true };
  }

  /**
   * Events after `rv` for a watch to replay, or 'expired' when they fell out of the
   * retained window (the client must relist: 410).
   */
  eventsSince(rv: number): StoreEvent[] | 'expired' {
    if (rv < this.historyFloor || rv < this.compactedRv) return 'expired';
    let lo = 0;
    let hi = this.history.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.history[mid].rv <= rv) lo = mid + 1;
      else hi = mid;
    }
    return this.history.slice(lo);
  }

  /**
   * The resource's objects as they were at `rv` (etcd's read at a revision), by undoing the
   * later events; undefined when those events are no longer held (the history was trimmed).
   */
  stateAt(r: ResourceDef, rv: number): { keys: string[]; get(key: string): KubeObject | undefined } | undefined {
    if (rv >= this.rv) return { keys: this.sortedKeys(r), get: (k) => this.getByKey(r, k) };
    if (rv < this.historyFloor || rv < this.compactedRv) return undefined;
    const later = this.eventsSince(rv);
    if (later === 'expired') return undefined;
    const bucket = bucketKey(r);
    const state = new Map(this.bucket(r));
    for (let i = later.length - 1; i >= 0; i--) {
      const e = later[i];
      if (bucketKey(e.resource) !== bucket) continue;
      const key = objectKey(e.object.metadata.namespace, e.object.metadata.name ?? '');
      if (e.type === 'ADDED') state.delete(key);
      else if (e.old) state.set(key, e.old);
    }
    const keys = [...state.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return { keys, get: (k) => state.get(k) };
  }

  oldestWatchableRv(): number {
    return Math.max(this.historyFloor, this.compactedRv);
  }

  /** Drop all history, as etcd compaction plus a fresh watch cache would. */
  compact(): void {
    this.history = [];
    this.historyFloor = this.rv;
    this.compactedRv = this.rv;
  }

  private bucket(r: ResourceDef): Map<string, KubeObject> {
    const k = bucketKey(r);
    let b = this.buckets.get(k);
    if (!b) {
      b = new Map();
      this.buckets.set(k, b);
    }
    return b;
  }

  private emit(e: StoreEvent): void {
    this.history.push(e);
    if (this.history.length > this.historyCapacity * 1.25) {
      const drop = this.history.length - this.historyCapacity;
      this.historyFloor = this.history[drop - 1].rv;
      this.history = this.history.slice(drop);
    }
    for (const l of [...this.listeners]) l(e);
  }
}

function stripRv(o: KubeObject): KubeObject {
  return { ...o, metadata: { ...o.metadata, resourceVersion: undefined } };
}
