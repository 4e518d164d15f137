// KubeVirt's CustomResourceDefinitions for the rig, their schemas derived from KubeVirt's
// OpenAPI document (test/fixtures/kubevirt/openapi-spec.json): every $ref inlined, metav1
// types mapped as apiextensions wants them (Time → date-time string, Quantity and
// IntOrString → x-kubernetes-int-or-string), an embedded ObjectMeta kept open as KubeVirt's
// own CRDs keep it, and only the keywords a structural schema accepts. The status
// subresource is on, as in KubeVirt's CRDs, so the main endpoint ignores status.

import { readFileSync } from 'node:fs';
import path from 'node:path';

type Schema = Record<string, any>;

const OPENAPI = path.join(__dirname, '../../fixtures/kubevirt/openapi-spec.json');

/** JSONSchemaProps fields a CRD schema may carry (others are dropped). */
const KEEP = new Set([
  'type',
  'format',
  'properties',
  'items',
  'additionalProperties',
  'required',
  'enum',
  'x-kubernetes-list-type',
  'x-kubernetes-list-map-keys',
  'x-kubernetes-map-type',
  'minimum',
  'maximum',
  'minLength',
  'maxLength',
  'minItems',
  'maxItems',
  'pattern',
  'nullable',
]);

const INT_OR_STRING: Schema = { 'x-kubernetes-int-or-string': true, anyOf: [{ type: 'integer' }, { type: 'string' }] };
const SPECIAL: Record<string, Schema> = {
  'k8s.io.apimachinery.pkg.api.resource.Quantity': INT_OR_STRING,
  'k8s.io.apimachinery.pkg.util.intstr.IntOrString': INT_OR_STRING,
  'k8s.io.apimachinery.pkg.apis.meta.v1.Time': { type: 'string', format: 'date-time' },
  'k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime': { type: 'string', format: 'date-time' },
  'k8s.io.apimachinery.pkg.apis.meta.v1.Duration': { type: 'string' },
  'k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta': {
    type: 'object',
    'x-kubernetes-preserve-unknown-fields': true,
    nullable: true,
  },
  'k8s.io.apimachinery.pkg.runtime.RawExtension': { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
};

export function structural(defs: Record<string, Schema>, root: string): Schema {
  const walk = (s: Schema, stack: string[]): Schema => {
    if (s.$ref) {
      const name = String(s.$ref).replace('#/definitions/', '');
      if (SPECIAL[name]) return { ...SPECIAL[name] };
      // A recursive type cannot be inlined: keep it open below the first repetition.
      if (stack.includes(name)) return { type: 'object', 'x-kubernetes-preserve-unknown-fields': true };
      return walk(defs[name], [...stack, name]);
    }
    if (s.format === 'int-or-string') return { ...INT_OR_STRING };
    // KubeVirt's document writes some types as lists: ["string","null"] is a nullable string,
    // ["string","number"] an int-or-string (apiextensions takes one type per schema).
    if (Array.isArray(s.type)) {
      const types = (s.type as string[]).filter((t) => t !== 'null');
      const nullable = types.length < (s.type as string[]).length ? { nullable: true } : {};
      if (types.length > 1) return { ...INT_OR_STRING, ...nullable };
      return walk({ ...s, type: types[0], ...nullable }, stack);
    }
    const out: Schema = {};
    for (const [k, v] of Object.entries(s)) {
      if (!KEEP.has(k)) continue;
      if (k === 'properties')
        out.properties = Object.fromEntries(
          Object.entries(v as Schema).map(([p, ps]) => [p, walk(ps as Schema, stack)]),
        );
      else if (k === 'items') out.items = walk(v as Schema, stack);
      else if (k === 'additionalProperties')
        out.additionalProperties = typeof v === 'object' ? walk(v as Schema, stack) : v;
      else out[k] = v;
    }
    if (!out.type && out.properties) out.type = 'object';
    // A schema that says nothing about its type must say it keeps what it is given.
    if (!out.type && !out['x-kubernetes-int-or-string'] && !out['x-kubernetes-preserve-unknown-fields'])
      out['x-kubernetes-preserve-unknown-fields'] = true;
    if (out.type === 'object' && !out.properties && !out.additionalProperties)
      out['x-kubernetes-preserve-unknown-fields'] = true;
    return out;
  };
  const schema = walk(defs[root], [root]);
  // The root's metadata is the apiserver's own; a CRD schema may only say it is an object.
  schema.properties.metadata = { type: 'object' };
  delete schema.properties.apiVersion?.nullable;
  return schema;
}

interface Kind {
  group: string;
  version: string;
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  definition: string;
}

export const KUBEVIRT_KINDS: Kind[] = [
  {
    group: 'kubevirt.io',
    version: 'v1',
    kind: 'VirtualMachine',
    plural: 'virtualmachines',
    singular: 'virtualmachine',
    shortNames: ['vm', 'vms'],
    definition: 'v1.VirtualMachine',
  },
  {
    group: 'kubevirt.io',
    version: 'v1',
    kind: 'VirtualMachineInstance',
    plural: 'virtualmachineinstances',
    singular: 'virtualmachineinstance',
    shortNames: ['vmi', 'vmis'],
    definition: 'v1.VirtualMachineInstance',
  },
  {
    group: 'snapshot.kubevirt.io',
    version: 'v1beta1',
    kind: 'VirtualMachineSnapshot',
    plural: 'virtualmachinesnapshots',
    singular: 'virtualmachinesnapshot',
    shortNames: ['vmsnapshot', 'vmsnapshots'],
    definition: 'v1beta1.VirtualMachineSnapshot',
  },
  {
    group: 'snapshot.kubevirt.io',
    version: 'v1beta1',
    kind: 'VirtualMachineSnapshotContent',
    plural: 'virtualmachinesnapshotcontents',
    singular: 'virtualmachinesnapshotcontent',
    shortNames: ['vmsnapshotcontent', 'vmsnapshotcontents'],
    definition: 'v1beta1.VirtualMachineSnapshotContent',
  },
  {
    group: 'snapshot.kubevirt.io',
    version: 'v1beta1',
    kind: 'VirtualMachineRestore',
    plural: 'virtualmachinerestores',
    singular: 'virtualmachinerestore',
    shortNames: ['vmrestore', 'vmrestores'],
    definition: 'v1beta1.VirtualMachineRestore',
  },
];

export function kubevirtCRDs(): Schema[] {
  const defs = (JSON.parse(readFileSync(OPENAPI, 'utf8')) as { definitions: Record<string, Schema> }).definitions;
  return KUBEVIRT_KINDS.map((k) => ({
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${k.plural}.${k.group}` },
    spec: {
      group: k.group,
      scope: 'Namespaced',
      names: {
        kind: k.kind,
        listKind: `${k.kind}List`,
        plural: k.plural,
        singular: k.singular,
        shortNames: k.shortNames,
        categories: ['all'],
      },
      versions: [
        {
          name: k.version,
          served: true,
          storage: true,
          schema: { openAPIV3Schema: structural(defs, k.definition) },
          subresources: { status: {} },
        },
      ],
    },
  }));
}
