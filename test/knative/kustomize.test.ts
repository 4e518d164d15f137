// knative/ rendered by real kustomize (`kubectl kustomize`, or a `kustomize`
// binary on PATH), as `kubectl apply -k` would: the base into `virtwake`, and
// the example overlay examples/overlay into `other`. The RBAC must follow
// the namespace, or every KubeVirt call from the pods is 403.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CORE_SCHEMA, loadAll } from 'js-yaml';
import { loadSourcePolicy } from '../../functions/runtime/source-policy';
import { at, isObj, kindOf, kustomizeCommand, nameOf, Obj, ROOT, str } from './manifests';

/** The kinds that have no namespace (everything else in knative/ is namespaced). */
const CLUSTER_SCOPED = new Set(['v1 Namespace']);
const FUNC_LABEL = 'virtwake.io/kn-func';

function render(dir: string): Obj[] {
  const [cmd, args] = kustomizeCommand();
  const r = spawnSync(cmd, [...args, path.join(ROOT, dir)], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} ${dir} failed:\n${r.stderr}`);
  return loadAll(r.stdout, { schema: CORE_SCHEMA }).filter(isObj);
}

const id = (d: Obj) => `${kindOf(d)}/${nameOf(d)}`;

describe.each([
  ['knative', 'virtwake'],
  ['examples/overlay', 'other'],
])('kustomize %s', (dir, namespace) => {
  const docs = render(dir);

  test(`every namespaced object lands in ${namespace}`, () => {
    expect(docs.length).toBeGreaterThan(40);
    const wrong = docs
      .filter((d) => !CLUSTER_SCOPED.has(kindOf(d)))
      .filter((d) => at(d, 'metadata', 'namespace') !== namespace)
      .map((d) => `${id(d)} in ${String(at(d, 'metadata', 'namespace'))}`);
    expect(wrong).toEqual([]);
    expect(docs.filter((d) => kindOf(d) === 'v1 Namespace').map(nameOf)).toEqual([namespace]);
  });

  test(`every RoleBinding subject is a ServiceAccount in ${namespace} that the render creates`, () => {
    const bindings = docs.filter((d) => kindOf(d) === 'rbac.authorization.k8s.io/v1 RoleBinding');
    expect(bindings.length).toBeGreaterThan(0);
    const accounts = new Set(docs.filter((d) => kindOf(d) === 'v1 ServiceAccount').map(nameOf));
    for (const b of bindings) {
      const subjects = at(b, 'subjects');
      expect(Array.isArray(subjects) && subjects.length > 0).toBe(true);
      for (const s of subjects as Obj[]) {
        expect([nameOf(b), s.kind, s.namespace, accounts.has(str(s.name))]).toEqual([
          nameOf(b),
          'ServiceAccount',
          namespace,
          true,
        ]);
      }
      // The Role it names is rendered too, in the same namespace.
      const role = docs.find(
        (d) => kindOf(d) === 'rbac.authorization.k8s.io/v1 Role' && nameOf(d) === str(at(b, 'roleRef', 'name')),
      );
      expect(at(role, 'metadata', 'namespace')).toBe(namespace);
    }
  });

  test(`the reaper Trigger listens to the PingSource in ${namespace}`, () => {
    const trigger = docs.find((d) => id(d) === 'eventing.knative.dev/v1 Trigger/virtwake-on-reaper');
    expect(at(trigger, 'spec', 'filters', 0, 'exact', 'source')).toBe(
      `/apis/v1/namespaces/${namespace}/pingsources/virtwake-reaper`,
    );
  });

  test('the kn func path gets the Namespace, the same RBAC and the policy (-l virtwake.io/kn-func=prerequisite)', () => {
    const picked = docs.filter((d) => at(d, 'metadata', 'labels', FUNC_LABEL) === 'prerequisite').map(id);
    expect(picked.sort()).toEqual(
      [
        'v1 Namespace/' + namespace,
        'v1 ServiceAccount/virtwake',
        'rbac.authorization.k8s.io/v1 Role/virtwake',
        'rbac.authorization.k8s.io/v1 RoleBinding/virtwake',
        'v1 ConfigMap/virtwake-policy',
      ].sort(),
    );
  });
});

test('the overlay sets the image of every Service', () => {
  const images = render('examples/overlay')
    .filter((d) => kindOf(d) === 'serving.knative.dev/v1 Service')
    .map((d) => str(at(d, 'spec', 'template', 'spec', 'containers', 0, 'image')));
  expect(images.length).toBe(5);
  expect(new Set(images)).toEqual(new Set(['registry.example.com/virtwake:v0.1.0']));
});

describe('knative/README.md: exposing a function deliberately', () => {
  const readme = readFileSync(path.join(ROOT, 'knative/README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('**To expose a function deliberately**'));
  const overlay = /```yaml\n(# overlay\/kustomization\.yaml[\s\S]*?)```/.exec(section)![1];
  const policy = /```json\n([\s\S]*?)```/.exec(section)![1];

  test('its policy file is one virtwake accepts', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'virtwake-expose-'));
    writeFileSync(path.join(dir, 'policy.json'), policy);
    expect(() => loadSourcePolicy(path.join(dir, 'policy.json'))).not.toThrow();
  });

  test('its overlay makes virtwake-vm public, keeps the rest cluster-local, and mounts that policy', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'virtwake-expose-'));
    writeFileSync(path.join(dir, 'policy.json'), policy);
    writeFileSync(
      path.join(dir, 'kustomization.yaml'),
      overlay.replace('../../knative', path.relative(dir, path.join(ROOT, 'knative'))),
    );
    const docs = render(path.relative(ROOT, dir));
    const visibility = Object.fromEntries(
      docs
        .filter((d) => kindOf(d) === 'serving.knative.dev/v1 Service')
        .map((d) => [nameOf(d), at(d, 'metadata', 'labels', 'networking.knative.dev/visibility') ?? 'public']),
    );
    expect(visibility).toEqual({
      'virtwake-vm': 'public',
      'virtwake-snapshot': 'cluster-local',
      'virtwake-reaper': 'cluster-local',
      'virtwake-deadletter': 'cluster-local',
      'virtwake-wake-proxy': 'public',
    });
    const cm = docs.find((d) => id(d) === 'v1 ConfigMap/virtwake-policy');
    expect(str(at(cm, 'data', 'policy.json'))).toBe(policy);
  });
});
