// limit/continue paging over the store's sorted keys. The continue token is opaque to
// clients (base64 JSON like kube-apiserver's) and carries the list's resourceVersion and
// the last key served.

import { errors } from './errors';
import { matches, type ObjectFilter } from './selectors';
import type { ObjectStore } from './store';
import type { ResourceDef } from './resources';
import type { KubeObject } from './types';

interface ContinueToken {
  v: string;
  rv: number;
  start: string;
}

export function encodeContinue(rv: number, lastKey: string): string {
  const t: ContinueToken = { v: 'meta.k8s.io/v1', rv, start: `${lastKey}\u0000` };
  return Buffer.from(JSON.stringify(t)).toString('base64url');
}

export function decodeContinue(token: string): { rv: number; after: string } {
  let t: ContinueToken;
  try {
    t = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as ContinueToken;
  } catch {
    throw errors.badRequest('continue key is not valid: illegal base64 data at input byte 0');
  }
  if (!t || t.v !== 'meta.k8s.io/v1' || typeof t.rv !== 'number' || typeof t.start !== 'string') {
    throw errors.badRequest(
      'continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)',
    );
  }
  return { rv: t.rv, after: t.start.endsWith('\u0000') ? t.start.slice(0, -1) : t.start };
}

export interface ListPage {
  items: KubeObject[];
  resourceVersion: string;
  continue?: string;
  remainingItemCount?: number;
}

export interface ListRequest {
  namespace?: string;
  filter: ObjectFilter;
  limit?: number;
  continueToken?: string;
}

export function listPage(store: ObjectStore, r: ResourceDef, req: ListRequest): ListPage {
  let listRv = store.currentRv();
  let after: string | undefined;
  if (req.continueToken) {
    const t = decodeContinue(req.continueToken);
    if (t.rv < store.compactedResourceVersion) {
      throw errors.expired(
        'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.',
      );
    }
    listRv = t.rv;
    after = t.after;
  }
  const keys = store.sortedKeys(r);
  let i = 0;
  if (after !== undefined) {
    let lo = 0;
    let hi = keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (keys[mid] <= after) lo = mid + 1;
      else hi = mid;
    }
    i = lo;
  }
  const nsPrefix = req.namespace !== undefined ? `${req.namespace}/` : undefined;
  const limit = req.limit && req.limit > 0 ? req.limit : Infinity;
  const selective = req.filter.labels.length > 0 || req.filter.fields.length > 0;
  const items: KubeObject[] = [];
  let lastKey = '';
  let more = false;
  let remaining = 0;
  for (; i < keys.length; i++) {
    const k = keys[i];
    if (nsPrefix && !k.startsWith(nsPrefix)) continue;
    const o = store.getByKey(r, k)!;
    if (selective && !matches(req.filter, o)) continue;
    if (items.length < limit) {
      items.push(o);
      lastKey = k;
    } else {
      more = true;
      if (selective) break; // remainingItemCount is not reported for selector lists
      remaining++;
    }
  }
  const page: ListPage = { items, resourceVersion: String(listRv) };
  if (more) {
    page.continue = encodeContinue(listRv, lastKey);
    if (!selective) page.remainingItemCount = remaining;
  }
  return page;
}
