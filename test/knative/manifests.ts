// Loading and validating the deploy files (knative/*.yaml, func.yaml) against
// the upstream schemas in test/fixtures/upstream-schemas (see test/fixtures/SOURCES.md).
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import path from 'node:path';
import { CORE_SCHEMA, loadAll } from 'js-yaml';
import Ajv04 from 'ajv-draft-04';
import addFormats from 'ajv-formats';
import type { ValidateFunction } from 'ajv';

export const ROOT = path.resolve(__dirname, '../..');
export const KNATIVE_DIR = path.join(ROOT, 'knative');
export const SCHEMA_DIR = path.join(ROOT, 'test/fixtures/upstream-schemas');

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type Obj = { [key: string]: Json };

export interface Manifest {
  file: string; // relative to ROOT
  index: number; // position of the document in its file
  doc: Obj;
}

export const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Every non-empty YAML document of a file (CORE_SCHEMA: timestamps stay strings). */
export function loadYamlFile(file: string): Obj[] {
  const docs = loadAll(readFileSync(file, 'utf8'), { schema: CORE_SCHEMA });
  return docs
    .filter((d) => d !== null && d !== undefined)
    .map((d, i) => {
      if (!isObj(d)) throw new Error(`${file}: document ${i} is not a mapping`);
      return d;
    });
}

/** The *.yaml / *.yml files in knative/, by name. */
export function knativeYamlFiles(): string[] {
  return readdirSync(KNATIVE_DIR)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort();
}

/** Every document of every knative/*.yaml except kustomization.yaml. */
export function loadManifests(): Manifest[] {
  const out: Manifest[] = [];
  for (const f of knativeYamlFiles()) {
    if (f === 'kustomization.yaml') continue;
    loadYamlFile(path.join(KNATIVE_DIR, f)).forEach((doc, index) => out.push({ file: `knative/${f}`, index, doc }));
  }
  return out;
}

export const str = (v: Json | undefined): string => (typeof v === 'string' ? v : '');
export const kindOf = (d: Obj) => `${str(d.apiVersion)} ${str(d.kind)}`;
export const nameOf = (d: Obj) => (isObj(d.metadata) ? str(d.metadata.name) : '');
export const label = (m: Manifest) => `${m.file}#${m.index} ${str(m.doc.kind)}/${nameOf(m.doc)}`;

/** Walk an object by keys / array indexes; undefined when a step is missing. */
export function at(v: Json | undefined, ...keys: (string | number)[]): Json | undefined {
  let cur: Json | undefined = v;
  for (const k of keys) {
    if (typeof k === 'number') cur = Array.isArray(cur) ? cur[k] : undefined;
    else cur = isObj(cur) ? cur[k] : undefined;
    if (cur === undefined) return undefined;
  }
  return cur;
}

/** upstream-schemas file name for an apiVersion + kind: <group|core>_<version>_<Kind>.json */
export function schemaFileFor(apiVersion: string, kind: string): string {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['core', apiVersion];
  return `${group}_${version}_${kind}.json`;
}

// --- strict structural validation -------------------------------------------
// The upstream schemas do not say `additionalProperties: false`, but the API
// server does not keep unknown fields: for a CRD it prunes them (kubectl's
// default --validate=strict turns that into an error), for a built-in kind it
// rejects them. So every object schema that lists `properties` and does not
// preserve unknown fields is closed here, and a typo such as `spec.delivery.retires`
// inside a closed object fails the test instead of vanishing at apply time.

const SCHEMA_LISTS = ['allOf', 'anyOf', 'oneOf'] as const;
const SCHEMA_MAPS = ['properties', 'patternProperties', 'definitions'] as const;

function closeObjects(schema: Json): Json {
  if (Array.isArray(schema)) return schema.map(closeObjects);
  if (!isObj(schema)) return schema;
  const out: Obj = { ...schema };
  for (const k of SCHEMA_MAPS) {
    const m = out[k];
    if (isObj(m)) out[k] = Object.fromEntries(Object.entries(m).map(([n, s]) => [n, closeObjects(s)]));
  }
  for (const k of SCHEMA_LISTS) {
    const l = out[k];
    if (Array.isArray(l)) out[k] = l.map(closeObjects);
  }
  for (const k of ['items', 'not', 'additionalProperties']) {
    if (isObj(out[k]) || Array.isArray(out[k])) out[k] = closeObjects(out[k] as Json);
  }
  if (
    isObj(out.properties) &&
    out.additionalProperties === undefined &&
    out['x-kubernetes-preserve-unknown-fields'] !== true
  ) {
    out.additionalProperties = false;
  }
  return out;
}

/** CRD schemas leave out the fields every object has; add them before closing. */
function withObjectFields(schema: Obj): Obj {
  const props = isObj(schema.properties) ? schema.properties : {};
  return {
    ...schema,
    properties: {
      apiVersion: { type: 'string' },
      kind: { type: 'string' },
      metadata: { type: 'object' },
      ...props,
    },
  };
}

const ajv = new Ajv04({ strict: false, allErrors: true });
addFormats(ajv);
const cache = new Map<string, ValidateFunction>();

function readSchema(file: string): Obj {
  const p = path.join(SCHEMA_DIR, file);
  if (!existsSync(p)) throw new Error(`no upstream schema ${file} in ${SCHEMA_DIR}`);
  const s = JSON.parse(readFileSync(p, 'utf8')) as Json;
  if (!isObj(s)) throw new Error(`${file} is not a JSON object`);
  return s;
}

/** Compiled, closed validator for an upstream schema file. */
export function validatorFor(file: string): ValidateFunction {
  let v = cache.get(file);
  if (!v) {
    const raw = readSchema(file);
    // func.yaml's schema is already closed (draft-04, additionalProperties: false).
    const schema = file === 'func_yaml-schema.json' ? raw : closeObjects(withObjectFields(raw));
    v = ajv.compile(schema as object);
    cache.set(file, v);
  }
  return v;
}

/** ObjectMeta as the core API defines it, to check the metadata of custom resources. */
export function objectMetaValidator(): ValidateFunction {
  const key = 'ObjectMeta';
  let v = cache.get(key);
  if (!v) {
    const core = readSchema('core_v1_ConfigMap.json');
    const schema = closeObjects({
      definitions: core.definitions ?? {},
      $ref: '#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta',
    });
    v = ajv.compile(schema as object);
    cache.set(key, v);
  }
  return v;
}

/** Human-readable ajv errors, or [] when valid. */
export function validate(v: ValidateFunction, data: unknown): string[] {
  if (v(data)) return [];
  return (v.errors ?? []).map((e) => {
    const extra =
      e.keyword === 'additionalProperties'
        ? ` (${String((e.params as { additionalProperty?: string }).additionalProperty)})`
        : '';
    return `${e.instancePath || '/'} ${e.message ?? e.keyword}${extra}`;
  });
}

/** ISO-8601 duration (as Knative accepts for delivery: PnDTnHnMnS) in seconds. */
export function isoDurationSeconds(d: string): number {
  const m = /^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$/.exec(d);
  if (!m || d === 'P' || d.endsWith('T')) throw new Error(`not an ISO-8601 duration: ${d}`);
  const [, days, hours, minutes, seconds] = m;
  return Number(days ?? 0) * 86400 + Number(hours ?? 0) * 3600 + Number(minutes ?? 0) * 60 + Number(seconds ?? 0);
}

/** kustomize v5, as `kustomize build` or `kubectl kustomize`; which one, and why not, said plainly. */
export function kustomizeCommand(): [string, string[]] {
  if (spawnSync('kustomize', ['version'], { encoding: 'utf8' }).status === 0) return ['kustomize', ['build']];
  const probe = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) {
    throw new Error(
      'neither kustomize nor kubectl is installed: run `apt-get update && apt-get install -y kubernetes-client` (.ci/run does it)',
    );
  }
  const version = /Kustomize Version: v(\d+)/.exec(probe.stdout);
  // `labels:` and the rewriting of `default` subjects need kustomize v5 (kubectl 1.27 and later).
  if (!version || Number(version[1]) < 5) {
    throw new Error(
      `kubectl's kustomize is too old for knative/ (need v5, kubectl >= 1.27); put kustomize v5 on PATH: go install sigs.k8s.io/kustomize/kustomize/v5@v5.5.0 (.ci/run does it)\n${probe.stdout}`,
    );
  }
  return ['kubectl', ['kustomize']];
}
