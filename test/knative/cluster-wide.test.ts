// knative/cluster-wide/: the component for VIRTWAKE_NAMESPACES='*'. It renders
// with real kustomize over knative/ into a ClusterRole and ClusterRoleBinding
// in place of the Role and RoleBinding, with the Role's rules, and sets
// VIRTWAKE_NAMESPACES='*' on every Service; the calls virtwake really makes in
// that mode (recorded by the simulator) are allowed by the ClusterRole and not
// by the namespaced Role.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CORE_SCHEMA, loadAll } from 'js-yaml';
import { replyData, startHarness } from '../helpers/harness';
import { KNATIVE_DIR, at, loadYamlFile, str, type Obj } from './manifests';
import { clusterWide, compareRoleWithCalls } from './rbac';

const COMPONENT = path.join(KNATIVE_DIR, 'cluster-wide');
const ROLE = path.join(KNATIVE_DIR, 'rbac.yaml');
const CLUSTER_ROLE = path.join(COMPONENT, 'cluster-rbac.yaml');

function render(namespace?: string): Obj[] {
  const probe = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' });
  if (probe.error) throw new Error('kubectl (Debian package kubernetes-client) is needed to render the kustomization');
  const overlay = mkdtempSync(path.join(tmpdir(), 'virtwake-cluster-wide-'));
  const rel = (p: string) => path.relative(overlay, p);
  writeFileSync(
    path.join(overlay, 'kustomization.yaml'),
    `apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n${
      namespace ? `namespace: ${namespace}\n` : ''
    }resources:\n  - ${rel(KNATIVE_DIR)}\ncomponents:\n  - ${rel(COMPONENT)}\n`,
  );
  const r = spawnSync('kubectl', ['kustomize', overlay], { encoding: 'utf8' });
  expect(r.stderr).toBe('');
  return loadAll(r.stdout, { schema: CORE_SCHEMA }) as Obj[];
}

const rulesOf = (file: string, kind: string) =>
  (loadYamlFile(file).find((d) => d.kind === kind) as Obj | undefined)?.rules;

test('the ClusterRole has exactly the Role’s rules', () => {
  expect(rulesOf(CLUSTER_ROLE, 'ClusterRole')).toEqual(rulesOf(ROLE, 'Role'));
});

test.each([[undefined], ['ops']])(
  'over knative/ (namespace %s) it renders a ClusterRole and its binding instead of the Role, and VIRTWAKE_NAMESPACES=* everywhere',
  (namespace) => {
    const docs = render(namespace);
    const kinds = docs.map((d) => `${str(d.kind)}/${str(at(d, 'metadata', 'name'))}`);
    expect(kinds).toEqual(expect.arrayContaining(['ClusterRole/virtwake', 'ClusterRoleBinding/virtwake']));
    expect(kinds).not.toContain('Role/virtwake');
    expect(kinds).not.toContain('RoleBinding/virtwake');
    const binding = docs.find((d) => d.kind === 'ClusterRoleBinding') as Obj;
    expect(at(binding, 'subjects', 0)).toEqual({
      kind: 'ServiceAccount',
      name: 'virtwake',
      namespace: namespace ?? 'virtwake',
    });
    const services = docs.filter((d) => d.kind === 'Service' && str(d.apiVersion).startsWith('serving.knative.dev/'));
    expect(services.length).toBeGreaterThan(0);
    for (const s of services) {
      const env = (at(s, 'spec', 'template', 'spec', 'containers', 0, 'env') as Obj[]).filter(
        (e) => e.name === 'VIRTWAKE_NAMESPACES',
      );
      expect([str(at(s, 'metadata', 'name')), env]).toEqual([
        str(at(s, 'metadata', 'name')),
        [{ name: 'VIRTWAKE_NAMESPACES', value: '*' }],
      ]);
    }
  },
);

test("the calls of VIRTWAKE_NAMESPACES='*' need the ClusterRole: the Role refuses them, the ClusterRole allows every one", async () => {
  const h = await startHarness({ sim: { stepMs: 5 }, env: { VIRTWAKE_NAMESPACES: '*' } });
  try {
    for (const ns of ['team-a', 'team-b'])
      h.sim.store.addVM(
        {
          metadata: {
            name: `idle-${ns}`,
            namespace: ns,
            labels: { 'virtwake.io/enabled': 'true' },
            annotations: { 'virtwake.io/idle-timeout': '1m' },
          },
          spec: { runStrategy: 'Always' },
        },
        { running: true, vmiCreatedAt: new Date(Date.now() - 3_600_000) },
      );
    await h.sim.settle();
    h.sim.resetCalls();
    const s = replyData(await h.send('dev.knative.sources.ping', {}, { source: '/any' }).expect(200));
    expect(s.stopped).toEqual(['team-a/idle-team-a', 'team-b/idle-team-b']);
    const calls = h.sim.calls.filter((c) => c.status !== 401);
    expect(calls.filter(clusterWide).length).toBeGreaterThan(0);
    expect(compareRoleWithCalls(ROLE, calls).missing).toContain('list kubevirt.io/virtualmachines');
    expect(compareRoleWithCalls(CLUSTER_ROLE, calls).missing).toEqual([]);
  } finally {
    await h.close();
  }
});
