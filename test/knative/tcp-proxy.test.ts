// knative/tcp-proxy/: the TCP wake proxy's Deployment, Service, routes and
// RBAC. Each document validates against its upstream schema (closed, as
// `kubectl apply` would be); the kustomization lists exactly these files and
// renders with real kustomize into another namespace with working RBAC; the
// pod runs as non-root with nothing it does not need; the ports of the routes,
// the container and the Service agree.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { load, loadAll, CORE_SCHEMA } from 'js-yaml';
import { parseAllRoutes } from '../../functions/wake-proxy/routes';
import {
  KNATIVE_DIR,
  at,
  isObj,
  kindOf,
  loadYamlFile,
  objectMetaValidator,
  schemaFileFor,
  str,
  validate,
  validatorFor,
  type Json,
  type Obj,
} from './manifests';

const DIR = path.join(KNATIVE_DIR, 'tcp-proxy');
const files = readdirSync(DIR)
  .filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml')
  .sort();
const docs = files.flatMap((f) => loadYamlFile(path.join(DIR, f)).map((doc, i) => ({ label: `${f}#${i}`, doc })));
const one = (kind: string) => {
  const found = docs.filter((d) => kindOf(d.doc) === kind);
  expect(found).toHaveLength(1);
  return found[0].doc;
};
const list = (v: Json | undefined): Json[] => (Array.isArray(v) ? v : []);

test.each(docs.map((d) => [d.label, d.doc] as const))('%s validates against its upstream schema', (_l, doc) => {
  const file = schemaFileFor(str(doc.apiVersion), str(doc.kind));
  expect(validate(validatorFor(file), doc)).toEqual([]);
  expect(validate(objectMetaValidator(), doc.metadata)).toEqual([]);
});

test('closed schemas catch a misspelt Deployment or Service field', () => {
  const dep = JSON.parse(JSON.stringify(one('apps/v1 Deployment'))) as Obj;
  (at(dep, 'spec', 'template', 'spec', 'containers', 0, 'securityContext') as Obj).runAsNonRot = true;
  expect(validate(validatorFor('apps_v1_Deployment.json'), dep).join('\n')).toMatch(/runAsNonRot/);
  const svc = JSON.parse(JSON.stringify(one('v1 Service'))) as Obj;
  (at(svc, 'spec') as Obj).ports = [{ port: 'x' }];
  expect(validate(validatorFor('core_v1_Service.json'), svc).join('\n')).toMatch(/ports\/0\/port/);
});

test('the kustomization lists exactly the files here', () => {
  const [k] = loadYamlFile(path.join(DIR, 'kustomization.yaml'));
  expect(list(k.resources).map(str).sort()).toEqual(files);
  expect(k.namespace).toBe('virtwake');
});

test('non-root, least privilege, probes on the HTTP health endpoints', () => {
  const dep = one('apps/v1 Deployment');
  const pod = at(dep, 'spec', 'template', 'spec') as Obj;
  expect(pod.serviceAccountName).toBe('virtwake-tcp-proxy');
  expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
  expect(Number(at(pod, 'securityContext', 'runAsUser'))).toBeGreaterThan(0);
  const [c, ...others] = list(pod.containers) as Obj[];
  expect(others).toHaveLength(0);
  expect(c.securityContext).toEqual({
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    privileged: false,
    capabilities: { drop: ['ALL'] },
  });
  const http = list(c.ports).find((p) => isObj(p) && p.name === 'http') as Obj;
  const env = Object.fromEntries(list(c.env).map((e) => [str(at(e, 'name')), str(at(e, 'value'))]));
  expect(env.VIRTWAKE_FUNCTIONS).toBe('wake-proxy');
  expect(Number(env.PORT)).toBe(http.containerPort);
  expect(at(c, 'readinessProbe', 'httpGet')).toEqual({ path: '/health/readiness', port: 'http' });
  expect(at(c, 'livenessProbe', 'httpGet')).toEqual({ path: '/health/liveness', port: 'http' });
  expect(at(c, 'resources', 'limits', 'memory')).toBeDefined();
  // The Role grants what a wake needs and nothing that stops, pauses or restores.
  const verbs = list(at(one('rbac.authorization.k8s.io/v1 Role'), 'rules')).flatMap((r) =>
    list(at(r, 'resources')).map((res) => `${str(res)}:${list(at(r, 'verbs')).map(str).join(',')}`),
  );
  expect(verbs.sort()).toEqual([
    'endpointslices:list,watch',
    'virtualmachines/start:update',
    'virtualmachines:get,watch,patch',
  ]);
});

test('every TCP route has a container port and a Service port, and the routes file is valid', () => {
  const cm = one('v1 ConfigMap');
  const { http, tcp } = parseAllRoutes(load(str(at(cm, 'data', 'routes.yaml'))), 'virtwake', 'configmap.yaml');
  expect(http).toEqual([]);
  expect(tcp.map((r) => r.listen.tcp).sort()).toEqual([3389, 5432]);
  const dep = one('apps/v1 Deployment');
  const c = at(dep, 'spec', 'template', 'spec', 'containers', 0) as Obj;
  const containerPorts = new Map(list(c.ports).map((p) => [str(at(p, 'name')), Number(at(p, 'containerPort'))]));
  const env = Object.fromEntries(list(c.env).map((e) => [str(at(e, 'name')), str(at(e, 'value'))]));
  expect(env.VIRTWAKE_PROXY_ROUTES).toBe(`${str(at(c, 'volumeMounts', 0, 'mountPath'))}/routes.yaml`);
  const svc = one('v1 Service');
  expect(at(svc, 'spec', 'selector')).toEqual(at(dep, 'spec', 'selector', 'matchLabels'));
  const svcPorts = list(at(svc, 'spec', 'ports')) as Obj[];
  for (const r of tcp) {
    const sp = svcPorts.find((p) => containerPorts.get(str(p.targetPort)) === r.listen.tcp);
    expect([r.label, sp?.port]).toEqual([r.label, r.listen.tcp]);
  }
  // The health port is not published through the client-facing Service.
  expect(svcPorts.map((p) => p.targetPort)).not.toContain('http');
});

test('an overlay into another namespace renders a RoleBinding that binds the proxy there (real kustomize)', () => {
  const probe = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' });
  if (probe.error) throw new Error('kubectl (Debian package kubernetes-client) is needed to render the kustomization');
  const render = (dir: string) => {
    const r = spawnSync('kubectl', ['kustomize', dir], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    return loadAll(r.stdout, { schema: CORE_SCHEMA }) as Obj[];
  };
  const overlay = mkdtempSync(path.join(tmpdir(), 'virtwake-tcp-overlay-'));
  writeFileSync(
    path.join(overlay, 'kustomization.yaml'),
    `namespace: erp\nresources:\n  - ${path.relative(overlay, DIR)}\n`,
  );
  for (const [dir, ns] of [
    [DIR, 'virtwake'],
    [overlay, 'erp'],
  ]) {
    const rendered = render(dir);
    const binding = rendered.find((d) => d.kind === 'RoleBinding') as Obj;
    expect(at(binding, 'subjects', 0)).toEqual({ kind: 'ServiceAccount', name: 'virtwake-tcp-proxy', namespace: ns });
    expect(new Set(rendered.map((d) => str(at(d, 'metadata', 'namespace'))))).toEqual(new Set([ns]));
  }
});
