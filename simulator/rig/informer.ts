// A shared informer as client-go's: list, then watch from the list's resourceVersion, keep
// the objects by namespace/name, and list again when the watch answers 410 Gone. KubeVirt's
// controllers read their cache this way and write through the API.

import { Kube, KubeError, type WatchEvent } from './kube';

export type Key = string;
export const keyOf = (o: { metadata: { namespace?: string; name?: string } }): Key =>
  `${o.metadata.namespace ?? ''}/${o.metadata.name ?? ''}`;

export class Informer<T extends { metadata: { resourceVersion?: string; namespace?: string; name?: string } }> {
  private readonly objects = new Map<Key, T>();
  private readonly abort = new AbortController();
  private rv = '';
  private synced?: Promise<void>;

  constructor(
    private readonly kube: Kube,
    /** Collection path across namespaces, e.g. /apis/kubevirt.io/v1/virtualmachines */
    private readonly path: string,
    private readonly onChange: (key: Key, obj: T | undefined, old: T | undefined) => void,
  ) {}

  get(key: Key): T | undefined {
    return this.objects.get(key);
  }

  list(): T[] {
    return [...this.objects.values()];
  }

  start(): Promise<void> {
    this.synced ??= this.firstList().then(() => {
      void this.loop();
    });
    return this.synced;
  }

  /** A reflector retries its first list (a new CRD answers 429 while its storage initializes). */
  private async firstList(): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.relist();
      } catch (e) {
        if (attempt >= 100 || this.abort.signal.aborted) throw e;
        await new Promise((r) => setTimeout(r, 300));
      }
    }
  }

  stop(): void {
    this.abort.abort();
  }

  private async relist(): Promise<void> {
    const list = await this.kube.request<{ metadata: { resourceVersion: string }; items: T[] }>('GET', this.path);
    const seen = new Set<Key>();
    for (const o of list.items) {
      const k = keyOf(o);
      seen.add(k);
      const old = this.objects.get(k);
      this.objects.set(k, o);
      if (old?.metadata.resourceVersion !== o.metadata.resourceVersion) this.onChange(k, o, old);
    }
    for (const [k, old] of [...this.objects]) {
      if (!seen.has(k)) {
        this.objects.delete(k);
        this.onChange(k, undefined, old);
      }
    }
    this.rv = list.metadata.resourceVersion;
  }

  private async loop(): Promise<void> {
    while (!this.abort.signal.aborted) {
      let gone = false;
      try {
        await this.kube.watch(
          this.path,
          this.rv,
          (e: WatchEvent) => {
            if (e.type === 'ERROR') {
              gone = true;
              return;
            }
            const o = e.object as T;
            if (o?.metadata?.resourceVersion) this.rv = o.metadata.resourceVersion;
            if (e.type === 'BOOKMARK') return;
            const k = keyOf(o);
            const old = this.objects.get(k);
            if (e.type === 'DELETED') this.objects.delete(k);
            else this.objects.set(k, o);
            this.onChange(k, e.type === 'DELETED' ? undefined : o, old);
          },
          this.abort.signal,
        );
      } catch (e) {
        if (this.abort.signal.aborted) return;
        gone = e instanceof KubeError && e.status === 410;
        if (!gone) await new Promise((r) => setTimeout(r, 200));
      }
      if (gone && !this.abort.signal.aborted) {
        try {
          await this.relist();
        } catch {
          await new Promise((r) => setTimeout(r, 200));
        }
      }
    }
  }
}
