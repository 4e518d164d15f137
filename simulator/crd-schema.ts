// KubeVirt's CRDs as kube-apiserver validates them: the structural schema of each kind, read
// from KubeVirt's OpenAPI document (test/fixtures/kubevirt/openapi-spec.json, the document the
// rig derives its CRDs from), checked the way k8s.io/apiextensions-apiserver
// pkg/apiserver/validation/validation.go does (kubeOpenAPIResultToFieldErrors over
// k8s.io/kube-openapi pkg/validation/validate: type_validator.go, object_validator.go; texts
// from pkg/validation/errors/schema.go). Checked: types, required properties and enums. Not
// checked: formats (int32/int64/byte...), int-or-string values, numeric and length bounds.
// Nulls are skipped: a CRD drops a null in a field that is not nullable before validating.
// An update is ratcheted (pkg/apiserver/validation/ratcheting.go, GA since 1.33): a part of
// the object equal to what was stored is not checked again.
//
// The real validator walks Go maps, so the order of several causes varies from one request to
// the next; here it is the object's own order, each object's required properties last.

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { deepEqual } from './objects';

/** The OpenAPI keywords read here (the document has more). */
interface Schema {
  $ref?: string;
  type?: string | string[];
  format?: string;
  properties?: Record<string, Schema>;
  items?: Schema;
  additionalProperties?: Schema | boolean;
  required?: string[];
  enum?: unknown[];
}

export interface SchemaCause {
  field: string;
  type: 'FieldValueTypeInvalid' | 'FieldValueRequired' | 'FieldValueNotSupported';
  detail: string;
}

const OPENAPI = path.join(__dirname, '../test/fixtures/kubevirt/openapi-spec.json');

const DEFINITION: Record<string, string> = {
  VirtualMachine: 'v1.VirtualMachine',
  VirtualMachineInstance: 'v1.VirtualMachineInstance',
  VirtualMachineSnapshot: 'v1beta1.VirtualMachineSnapshot',
  VirtualMachineSnapshotContent: 'v1beta1.VirtualMachineSnapshotContent',
  VirtualMachineRestore: 'v1beta1.VirtualMachineRestore',
};

/** apimachinery types a CRD schema states differently: open, or a plain string. */
const OPEN = new Set([
  'k8s.io.apimachinery.pkg.api.resource.Quantity',
  'k8s.io.apimachinery.pkg.util.intstr.IntOrString',
  'k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta',
  'k8s.io.apimachinery.pkg.runtime.RawExtension',
]);
const STRINGS = new Set([
  'k8s.io.apimachinery.pkg.apis.meta.v1.Time',
  'k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime',
  'k8s.io.apimachinery.pkg.apis.meta.v1.Duration',
]);

let definitions: Record<string, Schema> | undefined;

function defs(): Record<string, Schema> {
  definitions ??= (JSON.parse(readFileSync(OPENAPI, 'utf8')) as { definitions: Record<string, Schema> }).definitions;
  return definitions;
}

/** kube-openapi's name for a decoded JSON value's type (integral numbers are integers). */
function typeOf(v: unknown): string {
  if (Array.isArray(v)) return 'array';
  if (v === null) return 'null';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  if (typeof v === 'boolean') return 'boolean';
  return typeof v;
}

function fits(type: string, v: unknown): boolean {
  const t = typeOf(v);
  return t === type || (type === 'number' && t === 'integer');
}

class Checker {
  readonly causes: SchemaCause[] = [];

  /** `stack`: the definitions being walked; a recursive type is open below its first repetition. */
  check(schema: Schema, v: unknown, at: string, stack: string[], old?: unknown): void {
    if (old !== undefined && deepEqual(old, v)) return;
    if (schema.$ref) {
      const name = schema.$ref.replace('#/definitions/', '');
      if (OPEN.has(name) || stack.includes(name)) return;
      if (STRINGS.has(name)) return this.check({ type: 'string' }, v, at, stack, old);
      return this.check(defs()[name], v, at, [...stack, name], old);
    }
    if (v === null || v === undefined || schema.format === 'int-or-string') return;
    let type = schema.type;
    if (Array.isArray(type)) {
      const types = type.filter((t) => t !== 'null');
      if (types.length !== 1) return; // several types: an int-or-string in the CRD
      type = types[0];
    }
    if (!type && schema.properties) type = 'object';
    if (!type) return;
    if (!fits(type, v)) {
      const name = at.replace(/^\./, '');
      this.causes.push({
        field: name,
        type: 'FieldValueTypeInvalid',
        detail: `Invalid value: "${typeOf(v)}": ${name} in body must be of type ${type}: "${typeOf(v)}"`,
      });
      return;
    }
    if (Array.isArray(schema.enum) && !schema.enum.includes(v)) {
      const allowed = schema.enum.map((e) => (typeof e === 'string' ? `"${e}"` : JSON.stringify(e)));
      this.causes.push({
        field: at.replace(/^\./, ''),
        type: 'FieldValueNotSupported',
        detail: `Unsupported value: ${JSON.stringify(v)}: supported values: ${allowed.join(', ')}`,
      });
    }
    const items = schema.items;
    if (type === 'array' && items) {
      (v as unknown[]).forEach((item, i) => this.check(items, item, `${at}[${i}]`, stack));
    } else if (type === 'object') {
      const o = v as Record<string, unknown>;
      const was = typeOf(old) === 'object' ? (old as Record<string, unknown>) : undefined;
      const props = schema.properties ?? {};
      const extra =
        typeof schema.additionalProperties === 'object' ? (schema.additionalProperties as Schema) : undefined;
      for (const [k, value] of Object.entries(o)) {
        const s = Object.prototype.hasOwnProperty.call(props, k) ? props[k] : extra;
        if (s) this.check(s, value, `${at}.${k}`, stack, was?.[k]);
      }
      for (const k of schema.required ?? []) {
        if (o[k] === undefined || o[k] === null)
          this.causes.push({
            field: `${at}.${k}`.replace(/^\./, ''),
            type: 'FieldValueRequired',
            detail: 'Required value',
          });
      }
    }
  }
}

/**
 * What the CRD's schema says is wrong with an object written through the main endpoint (its
 * status is not checked there: the status subresource owns it). Empty when it validates.
 */
export function crdSchemaCauses(
  kind: string,
  obj: Record<string, unknown>,
  old?: Record<string, unknown>,
): SchemaCause[] {
  const root = DEFINITION[kind];
  if (!root) return [];
  const schema = defs()[root];
  const checker = new Checker();
  // apiVersion, kind and metadata are the apiserver's own; status is not this endpoint's.
  const strip = (o: Record<string, unknown>) => {
    const { apiVersion: _a, kind: _k, metadata: _m, status: _s, ...rest } = o;
    return rest;
  };
  const props = Object.fromEntries(
    Object.entries(schema.properties ?? {}).filter(([k]) => !['apiVersion', 'kind', 'metadata', 'status'].includes(k)),
  );
  checker.check(
    { ...schema, properties: props, required: (schema.required ?? []).filter((k) => k !== 'status') },
    strip(obj),
    '',
    [root],
    old && strip(old),
  );
  return checker.causes;
}
