// Every deploy document validates against its upstream schema (closed: unknown
// fields fail, as they would at `kubectl apply`), and kustomization.yaml lists
// exactly the YAML files of knative/.
import { existsSync } from 'node:fs';
import path from 'node:path';
import {
  KNATIVE_DIR,
  ROOT,
  at,
  isObj,
  kindOf,
  knativeYamlFiles,
  label,
  loadManifests,
  loadYamlFile,
  objectMetaValidator,
  schemaFileFor,
  str,
  validate,
  validatorFor,
} from './manifests';

const manifests = loadManifests();

describe('knative/*.yaml against the upstream schemas', () => {
  test('there is something to check', () => {
    expect(manifests.length).toBeGreaterThan(0);
  });

  test.each(manifests.map((m) => [label(m), m] as const))('%s', (_name, m) => {
    const { doc } = m;
    expect(typeof doc.apiVersion).toBe('string');
    expect(typeof doc.kind).toBe('string');
    expect(str(at(doc, 'metadata', 'name'))).not.toBe('');
    // Throws (fails) when a kind has no schema in upstream-schemas.
    const file = schemaFileFor(str(doc.apiVersion), str(doc.kind));
    expect(validate(validatorFor(file), doc)).toEqual([]);
    expect(validate(objectMetaValidator(), doc.metadata)).toEqual([]);
  });

  test('a kind without an upstream schema is an error, not a pass', () => {
    expect(() => validatorFor(schemaFileFor('example.com/v1', 'Nothing'))).toThrow(/no upstream schema/);
  });

  test('closed schemas catch a misspelt field', () => {
    const trigger = manifests.find((m) => kindOf(m.doc) === 'eventing.knative.dev/v1 Trigger');
    expect(trigger).toBeDefined();
    const bad = JSON.parse(JSON.stringify(trigger!.doc));
    bad.spec.subscriber.reff = bad.spec.subscriber.ref;
    expect(validate(validatorFor('eventing.knative.dev_v1_Trigger.json'), bad).join('\n')).toMatch(/reff/);
    const ksvc = manifests.find((m) => kindOf(m.doc) === 'serving.knative.dev/v1 Service');
    const badSvc = JSON.parse(JSON.stringify(ksvc!.doc));
    badSvc.spec.template.spec.containers[0].securityContext.runAsUserr = 1;
    expect(validate(validatorFor('serving.knative.dev_v1_Service.json'), badSvc).join('\n')).toMatch(/runAsUserr/);
  });
});

describe('func.yaml', () => {
  const [func, ...rest] = loadYamlFile(path.join(ROOT, 'func.yaml'));

  test('is one document valid against knative/func schema/func_yaml-schema.json', () => {
    expect(rest).toHaveLength(0);
    expect(validate(validatorFor('func_yaml-schema.json'), func)).toEqual([]);
  });

  test('has the settings we rely on', () => {
    expect(func.specVersion).toBe('0.36.0');
    expect(func.name).toBe('virtwake');
    expect(func.runtime).toBe('typescript');
    expect(func.invoke).toBe('cloudevent');
    expect(at(func, 'build', 'builder')).toBe('pack');
    expect(at(func, 'build', 'buildEnvs')).toEqual(
      expect.arrayContaining([{ name: 'BP_NODE_RUN_SCRIPTS', value: 'build' }]),
    );
    expect(at(func, 'deploy', 'namespace')).toBeUndefined();
    expect(at(func, 'namespace')).toBeUndefined();
    expect(at(func, 'deploy', 'serviceAccountName')).toBe('virtwake');
    expect(at(func, 'deploy', 'healthEndpoints')).toEqual({
      liveness: '/health/liveness',
      readiness: '/health/readiness',
    });
    expect(at(func, 'deploy', 'options', 'scale', 'min')).toBe(0);
    expect(typeof at(func, 'deploy', 'options', 'resources', 'limits', 'concurrency')).toBe('number');
    const envs = at(func, 'run', 'envs');
    const names = Array.isArray(envs) ? envs.map((e) => str(at(e, 'name'))) : [];
    expect(names).not.toContain('VIRTWAKE_FUNCTIONS');
  });
});

describe('knative/kustomization.yaml', () => {
  const [k, ...rest] = loadYamlFile(path.join(KNATIVE_DIR, 'kustomization.yaml'));
  const resources = Array.isArray(k.resources) ? k.resources.map(str) : [];

  test('is one Kustomization with only the keys we use', () => {
    expect(rest).toHaveLength(0);
    expect(k.apiVersion).toBe('kustomize.config.k8s.io/v1beta1');
    expect(k.kind).toBe('Kustomization');
    expect(Object.keys(k).sort()).toEqual(['apiVersion', 'images', 'kind', 'labels', 'namespace', 'resources']);
    expect(k.namespace).toBe('virtwake');
  });

  test('every listed resource exists, once', () => {
    expect(resources.length).toBeGreaterThan(0);
    expect(new Set(resources).size).toBe(resources.length);
    for (const r of resources) expect([r, existsSync(path.join(KNATIVE_DIR, r))]).toEqual([r, true]);
  });

  test('every YAML file in knative/ is listed', () => {
    const files = knativeYamlFiles().filter((f) => f !== 'kustomization.yaml');
    expect([...resources].sort()).toEqual(files);
  });

  test('the image override entry names the image every Service uses', () => {
    const images = Array.isArray(k.images) ? k.images : [];
    expect(images).toHaveLength(1);
    const image = images[0];
    expect(isObj(image) && typeof image.name === 'string').toBe(true);
    const used = new Set(
      manifests
        .filter((m) => kindOf(m.doc) === 'serving.knative.dev/v1 Service')
        .flatMap((m) => {
          const cs = at(m.doc, 'spec', 'template', 'spec', 'containers');
          return Array.isArray(cs) ? cs.map((c) => str(at(c, 'image'))) : [];
        }),
    );
    expect([...used]).toEqual([str(at(image, 'name'))]);
  });
});
