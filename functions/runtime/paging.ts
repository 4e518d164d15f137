import { KubeApiError } from './kube/errors';
import type { ObjectList } from './kubevirt-types';

// The one way to read a whole list: page by page with the continue token. An
// expired token (410 Gone, the API server compacted past it) lists again from
// the start, once, as kubectl does; objects already visited are not visited again.

interface Named {
  metadata: { namespace?: string; name: string };
}

export async function eachPage<T extends Named>(
  fetch: (continueToken: string | undefined) => Promise<ObjectList<T>>,
  visit: (items: T[]) => void | Promise<void>,
  onRestart?: () => void,
): Promise<void> {
  const seen = new Set<string>();
  for (let attempt = 1; ; attempt++) {
    let continueToken: string | undefined;
    try {
      do {
        const page = await fetch(continueToken);
        const fresh = (page.items ?? []).filter((item) => {
          const key = `${item.metadata.namespace}/${item.metadata.name}`;
          if (seen.has(key)) return false;
          seen.add(key);
          return true;
        });
        await visit(fresh);
        continueToken = page.metadata?.continue || undefined;
      } while (continueToken);
      return;
    } catch (e) {
      if (!isGone(e) || attempt > 1) throw e;
      onRestart?.();
    }
  }
}

/** Every object of a list, read with eachPage. */
export async function listAll<T extends Named>(
  fetch: (continueToken: string | undefined) => Promise<ObjectList<T>>,
): Promise<T[]> {
  const out: T[] = [];
  await eachPage(fetch, (items) => void out.push(...items));
  return out;
}

export function isGone(e: unknown): boolean {
  return e instanceof KubeApiError && e.status === 410;
}
