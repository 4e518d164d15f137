import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { dump } from 'js-yaml';
import { KNATIVE_DIR, loadYamlFile } from './manifests';
import { ApiCall, callKey, compareRoleWithCalls } from './rbac';

const ROLE_FILE = path.join(KNATIVE_DIR, 'rbac.yaml');

// What the functions are expected to call (contract §1, §5): a hand-made stand-in
// for the simulator's recording. The lead wires the real recording in.
const KV = 'kubevirt.io';
const SUB = 'subresources.kubevirt.io';
const SNAP = 'snapshot.kubevirt.io';
const EXPECTED_CALLS: ApiCall[] = [
  ...['get', 'list', 'watch', 'patch'].map((verb) => ({ verb, group: KV, resource: 'virtualmachines' })),
  ...['get', 'list', 'watch', 'delete'].map((verb) => ({ verb, group: KV, resource: 'virtualmachineinstances' })),
  ...['start', 'stop', 'restart'].map((subresource) => ({
    verb: 'update',
    group: SUB,
    resource: 'virtualmachines',
    subresource,
  })),
  ...['pause', 'unpause'].map((subresource) => ({
    verb: 'update',
    group: SUB,
    resource: 'virtualmachineinstances',
    subresource,
  })),
  ...['create', 'get', 'list', 'watch', 'delete'].map((verb) => ({
    verb,
    group: SNAP,
    resource: 'virtualmachinesnapshots',
  })),
  ...['create', 'get', 'list', 'watch', 'delete'].map((verb) => ({
    verb,
    group: SNAP,
    resource: 'virtualmachinerestores',
  })),
  ...['list', 'watch'].map((verb) => ({ verb, group: 'discovery.k8s.io', resource: 'endpointslices' })),
];

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'virtwake-rbac-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

type Rule = { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] };

/** Write a copy of knative/rbac.yaml whose Role rules went through `edit`. */
function roleVariant(name: string, edit: (rules: Rule[]) => Rule[]): string {
  const docs = loadYamlFile(ROLE_FILE).map((d) =>
    d.kind === 'Role' ? { ...d, rules: edit(JSON.parse(JSON.stringify(d.rules)) as Rule[]) } : d,
  );
  const file = path.join(dir, `${name}.yaml`);
  writeFileSync(file, docs.map((d) => dump(d)).join('---\n'));
  return file;
}

/** A file holding only a Role with these rules. */
function roleFile(name: string, rules: Rule[]): string {
  const file = path.join(dir, `${name}.yaml`);
  writeFileSync(file, dump({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name }, rules }));
  return file;
}

describe('compareRoleWithCalls on knative/rbac.yaml', () => {
  test('the shipped Role allows exactly the expected calls', () => {
    expect(compareRoleWithCalls(ROLE_FILE, EXPECTED_CALLS)).toEqual({ missing: [], unused: [] });
  });

  test('removing a verb from the Role makes the call missing', () => {
    const file = roleVariant('no-patch', (rules) =>
      rules.map((r) =>
        r.resources.includes('virtualmachines') && r.apiGroups.includes(KV)
          ? { ...r, verbs: r.verbs.filter((v) => v !== 'patch') }
          : r,
      ),
    );
    expect(compareRoleWithCalls(file, EXPECTED_CALLS)).toEqual({
      missing: ['patch kubevirt.io/virtualmachines'],
      unused: [],
    });
  });

  test('removing a subresource makes the PUT missing', () => {
    const file = roleVariant('no-restart', (rules) =>
      rules.map((r) => ({ ...r, resources: r.resources.filter((x) => x !== 'virtualmachines/restart') })),
    );
    expect(compareRoleWithCalls(file, EXPECTED_CALLS).missing).toEqual([
      'update subresources.kubevirt.io/virtualmachines/restart',
    ]);
  });

  test('adding a verb nobody uses makes it unused', () => {
    const file = roleVariant('extra-delete', (rules) =>
      rules.map((r) =>
        r.resources.includes('virtualmachines') && r.apiGroups.includes(KV)
          ? { ...r, verbs: [...r.verbs, 'delete'] }
          : r,
      ),
    );
    expect(compareRoleWithCalls(file, EXPECTED_CALLS)).toEqual({
      missing: [],
      unused: ['delete kubevirt.io/virtualmachines'],
    });
  });

  test('a call outside the Role is missing, and a call list without it leaves grants unused', () => {
    const calls = [
      ...EXPECTED_CALLS.filter((c) => c.resource !== 'endpointslices'),
      { verb: 'get', group: '', resource: 'pods' },
    ];
    expect(compareRoleWithCalls(ROLE_FILE, calls)).toEqual({
      missing: ['get core/pods'],
      unused: ['list discovery.k8s.io/endpointslices', 'watch discovery.k8s.io/endpointslices'],
    });
  });

  test('duplicate calls are reported once', () => {
    const call = { verb: 'create', group: '', resource: 'configmaps' };
    expect(compareRoleWithCalls(ROLE_FILE, [...EXPECTED_CALLS, call, call]).missing).toEqual([
      'create core/configmaps',
    ]);
  });
});

describe('RBAC matching rules', () => {
  const start = { verb: 'update', group: SUB, resource: 'virtualmachines', subresource: 'start' };
  const pause = { verb: 'update', group: SUB, resource: 'virtualmachineinstances', subresource: 'pause' };

  test('`*` verbs, groups and resources match everything', () => {
    const file = roleFile('star', [{ apiGroups: ['*'], resources: ['*'], verbs: ['*'] }]);
    expect(compareRoleWithCalls(file, [start, pause])).toEqual({ missing: [], unused: [] });
  });

  test('`res/*` covers every subresource of res, not res itself', () => {
    const file = roleFile('res-star', [{ apiGroups: [SUB], resources: ['virtualmachines/*'], verbs: ['update'] }]);
    expect(
      compareRoleWithCalls(file, [start, { verb: 'update', group: SUB, resource: 'virtualmachines' }]).missing,
    ).toEqual(['update subresources.kubevirt.io/virtualmachines']);
  });

  test('`*/sub` covers that subresource of any resource', () => {
    const file = roleFile('star-sub', [{ apiGroups: [SUB], resources: ['*/pause'], verbs: ['update'] }]);
    expect(compareRoleWithCalls(file, [pause, start]).missing).toEqual([
      'update subresources.kubevirt.io/virtualmachines/start',
    ]);
  });

  test('a subresource grant does not cover the parent resource, nor the reverse', () => {
    const file = roleFile('parent', [{ apiGroups: [SUB], resources: ['virtualmachines'], verbs: ['update'] }]);
    expect(compareRoleWithCalls(file, [start])).toEqual({
      missing: ['update subresources.kubevirt.io/virtualmachines/start'],
      unused: ['update subresources.kubevirt.io/virtualmachines'],
    });
  });

  test('the group must match', () => {
    const file = roleFile('group', [{ apiGroups: [KV], resources: ['virtualmachines/start'], verbs: ['update'] }]);
    expect(compareRoleWithCalls(file, [start]).missing).toEqual([
      'update subresources.kubevirt.io/virtualmachines/start',
    ]);
  });

  test('resourceNames limit a rule to requests naming one of them', () => {
    const file = roleFile('names', [
      { apiGroups: [KV], resources: ['virtualmachines'], verbs: ['get', 'list'], resourceNames: ['a'] },
    ]);
    const calls = [
      { verb: 'get', group: KV, resource: 'virtualmachines', name: 'a' },
      { verb: 'get', group: KV, resource: 'virtualmachines', name: 'b' },
      { verb: 'list', group: KV, resource: 'virtualmachines' },
    ];
    expect(compareRoleWithCalls(file, calls)).toEqual({
      missing: ['get kubevirt.io/virtualmachines', 'list kubevirt.io/virtualmachines'],
      unused: ['list kubevirt.io/virtualmachines'],
    });
  });

  test('a file without a Role is an error', () => {
    const file = path.join(dir, 'empty.yaml');
    writeFileSync(file, 'apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: x}\n');
    expect(() => compareRoleWithCalls(file, [])).toThrow(/no Role/);
  });

  test('callKey', () => {
    expect(callKey(start)).toBe('update subresources.kubevirt.io/virtualmachines/start');
    expect(callKey({ verb: 'list', group: '', resource: 'pods' })).toBe('list core/pods');
  });
});
