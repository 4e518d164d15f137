// Small object helpers shared by the store and the controllers.

import type { Condition, KubeObject } from './types';

export function clone<T>(o: T): T {
  return o === undefined ? o : (JSON.parse(JSON.stringify(o)) as T);
}

export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((v, i) => deepEqual(v, bb[i]));
  }
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  const ak = Object.keys(ao).filter((k) => ao[k] !== undefined);
  const bk = Object.keys(bo).filter((k) => bo[k] !== undefined);
  return ak.length === bk.length && ak.every((k) => deepEqual(ao[k], bo[k]));
}

export function objectKey(namespace: string | undefined, name: string): string {
  return `${namespace ?? ''}/${name}`;
}

export function keyOf(o: KubeObject): string {
  return objectKey(o.metadata.namespace, o.metadata.name ?? '');
}

export function getCondition(conditions: Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

export function hasConditionTrue(conditions: Condition[] | undefined, type: string): boolean {
  return getCondition(conditions, type)?.status === 'True';
}

/**
 * Replace a condition only when what it says changed, so repeated reconciles leave
 * lastTransitionTime (and the object's resourceVersion) alone.
 */
export function upsertCondition(conditions: Condition[], next: Condition): Condition[] {
  const i = conditions.findIndex((c) => c.type === next.type);
  if (i < 0) return [...conditions, next];
  const cur = conditions[i];
  if (
    cur.status === next.status &&
    (cur.reason ?? '') === (next.reason ?? '') &&
    (cur.message ?? '') === (next.message ?? '')
  ) {
    return conditions;
  }
  const copy = [...conditions];
  copy[i] = next;
  return copy;
}

export function removeCondition(conditions: Condition[], type: string): Condition[] {
  return conditions.some((c) => c.type === type) ? conditions.filter((c) => c.type !== type) : conditions;
}

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function isDns1123Subdomain(s: string): boolean {
  return s.length > 0 && s.length <= 253 && DNS1123_SUBDOMAIN.test(s);
}
