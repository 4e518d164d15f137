// A list as kube-apiserver's etcd3 store answers it: the resourceVersion rules of
// k8s.io/apiserver pkg/storage/interfaces.go (ValidateListOptions: which reads are at a
// given revision), pkg/storage/etcd3/store.go (GetList: a revision in the future is a 504,
// one compacted away a 410) and pkg/storage/etcd3/errors.go (the 410 texts, and the token a
// paged list's 410 offers), with limit/continue paging over the store's sorted keys.
//
// A read at an older revision is answered from the store's event history; a real cluster's
// watch cache may serve some of those from its own snapshots instead (then an Exact read
// below the compaction can still succeed), but a VirtualMachine list without the watch
// cache, as the rig runs it, answers as here.

import { BadContinueToken, decodeContinue, encodeContinue } from './continue-token';
import { errors } from './errors';
import { matches, type ObjectFilter } from './selectors';
import type { ObjectStore } from './store';
import type { ResourceDef } from './resources';
import type { KubeObject } from './types';

export { decodeContinue, encodeContinue } from './continue-token';

const LIST_TOO_OLD = 'The resourceVersion for the provided list is too old.';
const CONTINUE_TOO_OLD =
  'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.';

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
  resourceVersion?: string;
  resourceVersionMatch?: string;
}

/** metav1 ListOptions validation (apimachinery internalversion/validation ValidateListOptions): 422 naming each cause. */
export function validateListOptions(
  req: Pick<ListRequest, 'continueToken' | 'resourceVersion' | 'resourceVersionMatch'>,
) {
  const match = req.resourceVersionMatch;
  if (!match) return;
  const causes: Array<{ field: string; type: string; detail: string }> = [];
  const forbidden = (detail: string) =>
    causes.push({ field: 'resourceVersionMatch', type: 'FieldValueForbidden', detail: `Forbidden: ${detail}` });
  if (!req.resourceVersion) forbidden('resourceVersionMatch is forbidden unless resourceVersion is provided');
  if (req.continueToken) forbidden('resourceVersionMatch is forbidden when continue is provided');
  if (match !== 'Exact' && match !== 'NotOlderThan') {
    causes.push({
      field: 'resourceVersionMatch',
      type: 'FieldValueNotSupported',
      detail: `Unsupported value: ${JSON.stringify(match)}: supported values: "Exact", "NotOlderThan", ""`,
    });
  }
  if (match === 'Exact' && req.resourceVersion === '0')
    forbidden('resourceVersionMatch "exact" is forbidden for resourceVersion "0"');
  if (causes.length) throw errors.invalid('ListOptions', 'meta.k8s.io', '', causes);
}

function parseResourceVersion(rv: string): number {
  if (rv === '0') return 0;
  if (!/^\d+$/.test(rv) || BigInt(rv) >= 2n ** 64n) {
    const why = /^\d+$/.test(rv) ? 'value out of range' : 'invalid syntax';
    throw errors.badRequest(
      `invalid resource version: resourceVersion: Invalid value: ${JSON.stringify(rv)}: strconv.ParseUint: parsing ${JSON.stringify(rv)}: ${why}`,
    );
  }
  return Number(rv);
}

interface ReadPlan {
  /** The revision to read at; 0 means the latest. */
  atRv: number;
  after?: string;
  /** What a compacted `atRv` answers: a plain 410, or one offering a token from `after`. */
  paging: boolean;
  minimumRv?: number;
}

function plan(req: ListRequest): ReadPlan {
  if (req.continueToken) {
    let t;
    try {
      t = decodeContinue(req.continueToken);
    } catch (e) {
      if (e instanceof BadContinueToken) throw errors.badRequest(`invalid continue token: ${e.message}`);
      throw e;
    }
    if (req.resourceVersion && req.resourceVersion !== '0')
      throw errors.badRequest('specifying resource version is not allowed when using continue');
    return { atRv: t.rv > 0 ? t.rv : 0, after: t.after, paging: true };
  }
  if (!req.resourceVersion) return { atRv: 0, paging: false };
  const asked = parseResourceVersion(req.resourceVersion);
  const match = req.resourceVersionMatch ?? '';
  // Exact reads at the revision; so does the legacy form with a limit (a paged list's first page).
  const exact = match === 'Exact' || (match === '' && req.limit !== undefined && req.limit > 0 && asked > 0);
  return { atRv: exact ? asked : 0, paging: false, minimumRv: asked };
}

export function listPage(store: ObjectStore, r: ResourceDef, req: ListRequest): ListPage {
  const p = plan(req);
  const current = store.currentRv();
  if (p.atRv > current) throw errors.tooLargeResourceVersion(p.atRv, current);
  if (p.minimumRv !== undefined && p.minimumRv > current) throw errors.tooLargeResourceVersion(p.minimumRv, current);
  const listRv = p.atRv || current;
  const state = store.stateAt(r, listRv);
  if (!state) {
    if (listRv < store.compactedResourceVersion) {
      if (p.paging) throw errors.expired(CONTINUE_TOO_OLD, encodeContinue(-1, p.after ?? ''));
      throw errors.expired(LIST_TOO_OLD);
    }
    // History trimmed by its capacity (not compaction): etcd would still have it; the latest is the nearest.
  }
  // Tokens hold the key relative to the list's prefix (the namespace for a namespaced list), as etcd3 does.
  const nsPrefix = req.namespace !== undefined ? `${req.namespace}/` : '';
  const after = p.after !== undefined ? nsPrefix + p.after : undefined;
  const keys = state?.keys ?? store.sortedKeys(r);
  const get = state ? state.get : (k: string) => store.getByKey(r, k);
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
  const limit = req.limit && req.limit > 0 ? req.limit : Infinity;
  const selective = req.filter.labels.length > 0 || req.filter.fields.length > 0;
  const items: KubeObject[] = [];
  let lastKey = '';
  let more = false;
  let remaining = 0;
  for (; i < keys.length; i++) {
    const k = keys[i];
    if (nsPrefix && !k.startsWith(nsPrefix)) continue;
    const o = get(k)!;
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
    page.continue = encodeContinue(listRv, lastKey.slice(nsPrefix.length));
    if (!selective) page.remainingItemCount = remaining;
  }
  return page;
}
