// JSON merge patch (RFC 7386) and JSON patch (RFC 6902), failing the way kube-apiserver
// does: undecodable patches are 400, operations that do not apply (including a failed
// `test`) are 422.

import { errors } from './errors';
import { clone, deepEqual } from './objects';

export const MERGE_PATCH = 'application/merge-patch+json';
export const JSON_PATCH = 'application/json-patch+json';
export const STRATEGIC_MERGE_PATCH = 'application/strategic-merge-patch+json';
export const APPLY_PATCH = 'application/apply-patch+yaml';

export function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return clone(patch);
  const base: Record<string, unknown> =
    target !== null && typeof target === 'object' && !Array.isArray(target)
      ? { ...(target as Record<string, unknown>) }
      : {};
  for (const [k, v] of Object.entries(patch as Record<string, unknown>)) {
    if (v === null) delete base[k];
    else base[k] = mergePatch(base[k], v);
  }
  return base;
}

export interface JsonPatchOp {
  op: 'add' | 'remove' | 'replace' | 'move' | 'copy' | 'test';
  path: string;
  from?: string;
  value?: unknown;
}

export function decodeJsonPatch(body: unknown): JsonPatchOp[] {
  if (!Array.isArray(body)) {
    throw errors.badRequest('json: cannot unmarshal object into Go value of type jsonpatch.Patch');
  }
  for (const op of body) {
    if (!op || typeof op !== 'object' || typeof (op as JsonPatchOp).op !== 'string') {
      throw errors.badRequest('json: cannot unmarshal into Go value of type jsonpatch.Operation');
    }
  }
  return body as JsonPatchOp[];
}

function parsePointer(path: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) throw errors.unprocessable();
  return path
    .slice(1)
    .split('/')
    .map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

type Container = Record<string, unknown> | unknown[];

function resolveParent(doc: unknown, tokens: string[]): { parent: Container; key: string } {
  let cur: unknown = doc;
  for (const t of tokens.slice(0, -1)) {
    if (Array.isArray(cur)) {
      const idx = Number(t);
      if (!/^\d+$/.test(t) || idx >= cur.length) throw errors.unprocessable();
      cur = cur[idx];
    } else if (cur && typeof cur === 'object') {
      if (!Object.prototype.hasOwnProperty.call(cur, t)) throw errors.unprocessable();
      cur = (cur as Record<string, unknown>)[t];
    } else {
      throw errors.unprocessable();
    }
  }
  if (!cur || typeof cur !== 'object') throw errors.unprocessable();
  return { parent: cur as Container, key: tokens[tokens.length - 1] };
}

function getAt(doc: unknown, path: string): unknown {
  const tokens = parsePointer(path);
  if (tokens.length === 0) return doc;
  const { parent, key } = resolveParent(doc, tokens);
  if (Array.isArray(parent)) {
    if (!/^\d+$/.test(key) || Number(key) >= parent.length) throw errors.unprocessable();
    return parent[Number(key)];
  }
  if (!Object.prototype.hasOwnProperty.call(parent, key)) throw errors.unprocessable();
  return parent[key];
}

function addAt(doc: unknown, path: string, value: unknown): unknown {
  const tokens = parsePointer(path);
  if (tokens.length === 0) return value;
  const { parent, key } = resolveParent(doc, tokens);
  if (Array.isArray(parent)) {
    if (key === '-') parent.push(value);
    else {
      const idx = Number(key);
      if (!/^\d+$/.test(key) || idx > parent.length) throw errors.unprocessable();
      parent.splice(idx, 0, value);
    }
  } else {
    parent[key] = value;
  }
  return doc;
}

function removeAt(doc: unknown, path: string): unknown {
  const tokens = parsePointer(path);
  if (tokens.length === 0) throw errors.unprocessable();
  const { parent, key } = resolveParent(doc, tokens);
  if (Array.isArray(parent)) {
    const idx = Number(key);
    if (!/^\d+$/.test(key) || idx >= parent.length) throw errors.unprocessable();
    parent.splice(idx, 1);
  } else {
    if (!Object.prototype.hasOwnProperty.call(parent, key)) throw errors.unprocessable();
    delete parent[key];
  }
  return doc;
}

export function applyJsonPatch(target: unknown, ops: JsonPatchOp[]): unknown {
  let doc = clone(target);
  for (const op of ops) {
    switch (op.op) {
      case 'add':
        doc = addAt(doc, op.path, clone(op.value));
        break;
      case 'remove':
        doc = removeAt(doc, op.path);
        break;
      case 'replace':
        getAt(doc, op.path); // replace requires the path to exist
        doc = removeAt(doc, op.path);
        doc = addAt(doc, op.path, clone(op.value));
        break;
      case 'move': {
        const v = getAt(doc, op.from ?? '');
        doc = removeAt(doc, op.from ?? '');
        doc = addAt(doc, op.path, v);
        break;
      }
      case 'copy':
        doc = addAt(doc, op.path, clone(getAt(doc, op.from ?? '')));
        break;
      case 'test': {
        // A test against null also passes for a missing member, as in evanphx/json-patch.
        let actual: unknown;
        try {
          actual = getAt(doc, op.path);
        } catch (e) {
          if (op.value === null || op.value === undefined) break;
          throw e;
        }
        if (!deepEqual(actual ?? null, op.value ?? null)) throw errors.unprocessable();
        break;
      }
      default:
        throw errors.badRequest(`Unexpected kind: ${String((op as { op: unknown }).op)}`);
    }
  }
  return doc;
}
