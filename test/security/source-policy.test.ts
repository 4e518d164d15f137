import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, loadConfig } from '../../functions/runtime/config';
import { Denied } from '../../functions/runtime/errors';
import { Problem, problemOf } from '../../functions/runtime/problems';
import {
  checkRequest,
  checkVm,
  globMatcher,
  parseSourcePolicy,
  POLICY_ACTIONS,
  PolicyFileError,
  requiredActions,
  SourcePolicy,
  SourceRequest,
} from '../../functions/runtime/source-policy';

// The per-source policy file (docs/policy.md): its format, its checks at
// start-up, and how a request and a VM are judged. HTTP behaviour is in
// policy-http.test.ts.

const CI_RULE = {
  name: 'ci-may-start-and-snapshot',
  sources: ['/ci/*'],
  actions: ['start', 'snapshot'],
  namespaces: ['ci'],
  selector: 'ci=true',
};
const policyOf = (...rules: object[]): SourcePolicy => parseSourcePolicy(JSON.stringify({ rules }), 'policy.json');
const vm = (name: string, labels: Record<string, string> = {}) => ({ metadata: { name, labels } });

/** A denial as the event server answers it (problems.ts maps the runtime's Denied to a 403). */
function denial(fn: () => void): Problem {
  try {
    fn();
  } catch (e) {
    if (e instanceof Denied) return problemOf(e) as Problem;
    throw e;
  }
  throw new Error('expected a denial');
}

describe('the policy file is checked at start-up', () => {
  const bad: Array<[string, string, RegExp]> = [
    ['neither YAML nor JSON', '{"rules": [', /policy\.json is neither YAML nor JSON: unexpected end of the stream/],
    [
      'not a policy (YAML now parses it; the schema names the field)',
      'sources: []',
      /top level: unknown field "sources" \(allowed: rules, description\)/,
    ],
    [
      'YAML is accepted and checked like JSON',
      'rules:\n  - name: x\n',
      /rules\[0\] \("x"\)\.sources: must be a non-empty array of strings/,
    ],
    ['not an object', '[]', /top level: must be an object/],
    ['no rules', '{}', /rules: must be an array/],
    ['unknown top-level field', '{"rules": [], "default": "allow"}', /unknown field "default"/],
    [
      'rule without a name',
      '{"rules": [{"sources": ["*"], "actions": ["*"], "namespaces": ["*"]}]}',
      /rules\[0\]: needs a "name"/,
    ],
    [
      'duplicate names',
      JSON.stringify({ rules: [CI_RULE, CI_RULE] }),
      /rules\[1\] \("ci-may-start-and-snapshot"\): another rule has the same name/,
    ],
    ['misspelt field', JSON.stringify({ rules: [{ ...CI_RULE, namespace: ['ci'] }] }), /unknown field "namespace"/],
    [
      '__proto__ key',
      '{"rules": [{"name": "p", "sources": ["*"], "actions": ["*"], "namespaces": ["*"], "__proto__": {"x": 1}}]}',
      /unknown field "__proto__"/,
    ],
    [
      'missing sources',
      JSON.stringify({ rules: [{ ...CI_RULE, sources: undefined }] }),
      /\.sources: must be a non-empty array/,
    ],
    ['empty actions', JSON.stringify({ rules: [{ ...CI_RULE, actions: [] }] }), /\.actions: must be a non-empty array/],
    [
      'unknown action',
      JSON.stringify({ rules: [{ ...CI_RULE, actions: ['start', 'delete'] }] }),
      /unknown action "delete"/,
    ],
    [
      'bad namespace',
      JSON.stringify({ rules: [{ ...CI_RULE, namespaces: ['CI/../x'] }] }),
      /"CI\/..\/x" is not a namespace name/,
    ],
    [
      'bad selector',
      JSON.stringify({ rules: [{ ...CI_RULE, selector: 'ci=not valid!' }] }),
      /\.selector: invalid label value/,
    ],
    [
      'selector not a string',
      JSON.stringify({ rules: [{ ...CI_RULE, selector: { matchLabels: { ci: 'true' } } }] }),
      /must be a label selector string/,
    ],
    ['empty source', JSON.stringify({ rules: [{ ...CI_RULE, sources: [''] }] }), /"" is not a non-empty string/],
    // YAML's own ways to be wrong.
    ['an empty file', '', /policy\.json: top level: must be an object such as \{"rules": \[\.\.\.\]\}/],
    ['only comments', '# nothing yet\n', /top level: must be an object/],
    ['a YAML list', '- name: x\n', /top level: must be an object/],
    ['a key twice', 'rules: []\nrules: []\n', /is neither YAML nor JSON: duplicated mapping key \(2:1\)/],
    [
      'a bare * in YAML',
      'rules:\n  - name: x\n    sources: [*]\n    actions: ["*"]\n    namespaces: ["*"]\n',
      /is neither YAML nor JSON: .*alias.* \(3:16\) \(a bare \* starts a YAML alias: write "\*"\)$/,
    ],
    ['a tab for indentation', 'rules:\n\t- name: x\n', /is neither YAML nor JSON: /],
    [
      'YAML 1.1 booleans are strings here: on is not an action',
      'rules:\n  - name: x\n    sources: ["*"]\n    actions: [on]\n    namespaces: ["*"]\n',
      /rules\[0\] \("x"\)\.actions\[0\]: unknown action "on"/,
    ],
    ['a date is not a string', 'description: 2030-03-01\nrules: []\n', /description: must be a string/],
    [
      'the ConfigMap pasted instead of its policy.json',
      'apiVersion: v1\nkind: ConfigMap\ndata:\n  policy.json: "{}"\n',
      /top level: unknown field "apiVersion"/,
    ],
    [
      'every problem at once, each at its place',
      'rules:\n  - name: a\n    sources: ["/ci/*", 7]\n    actions: [start, delete]\n    namespaces: [ci]\n    namespace: [ci]\n  - sources: ["*"]\n    actions: ["*"]\n    namespaces: [Prod]\n',
      /^policy\.json: rules\[0\] \("a"\): unknown field "namespace" \(allowed: name, description, sources, actions, namespaces, selector\); rules\[0\] \("a"\)\.sources\[1\]: 7 is not a non-empty string up to 1024 characters; rules\[0\] \("a"\)\.actions\[1\]: unknown action "delete" \(known: start, stop, restart, pause, unpause, snapshot, restore, activity, or "\*"\); rules\[1\]: needs a "name" \(a non-empty string up to 253 characters\); rules\[1\]\.namespaces\[0\]: "Prod" is not a namespace name \(or "\*"\)$/,
    ],
    [
      'a long bad value is quoted short',
      JSON.stringify({ rules: [{ ...CI_RULE, namespaces: ['x'.repeat(5000)] }] }),
      /namespaces\[0\]: "x{76}\.\.\. is not a namespace name/,
    ],
    [
      'duplicate names and a bad selector, both reported',
      JSON.stringify({ rules: [CI_RULE, { ...CI_RULE, selector: 'a=b=c' }] }),
      /rules\[1\] \("ci-may-start-and-snapshot"\): another rule has the same name; rules\[1\] \("ci-may-start-and-snapshot"\)\.selector: /,
    ],
  ];
  test.each(bad)('%s → a PolicyFileError that says where', (_what, text, message) => {
    expect(() => parseSourcePolicy(text, 'policy.json')).toThrow(PolicyFileError);
    expect(() => parseSourcePolicy(text, 'policy.json')).toThrow(message);
  });

  test('VIRTWAKE_POLICY_FILE: a bad or missing file is a ConfigError naming the variable (main exits 2)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'virtwake-policy-'));
    const file = path.join(dir, 'policy.json');
    fs.writeFileSync(file, '{"rules": [{"name": "x"}]}');
    expect(() => loadConfig({ VIRTWAKE_POLICY_FILE: file })).toThrow(ConfigError);
    expect(() => loadConfig({ VIRTWAKE_POLICY_FILE: file })).toThrow(
      /^VIRTWAKE_POLICY_FILE: .*policy\.json: rules\[0\] \("x"\)\.sources/,
    );
    expect(() => loadConfig({ VIRTWAKE_POLICY_FILE: path.join(dir, 'missing.json') })).toThrow(
      /VIRTWAKE_POLICY_FILE: cannot read/,
    );
    fs.writeFileSync(file, JSON.stringify({ rules: [CI_RULE] }));
    expect(loadConfig({ VIRTWAKE_POLICY_FILE: file }).policy?.rules.map((r) => r.name)).toEqual([
      'ci-may-start-and-snapshot',
    ]);
    expect(loadConfig({}).policy).toBeUndefined();
  });

  test('a YAML file reads as the same policy as its JSON', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'virtwake-policy-'));
    const file = path.join(dir, 'policy.yaml');
    fs.writeFileSync(
      file,
      [
        '# CI may start and snapshot its own VMs',
        'rules:',
        '  - name: ci-may-start-and-snapshot',
        '    sources: [/ci/*]',
        '    actions: [start, snapshot]',
        '    namespaces: [ci]',
        '    selector: ci=true',
        '',
      ].join('\n'),
    );
    const fromYaml = loadConfig({ VIRTWAKE_POLICY_FILE: file }).policy!;
    const fromJson = policyOf(CI_RULE);
    const plain = (p: SourcePolicy) => p.rules.map(({ sourceMatchers: _m, ...rule }) => rule);
    expect(plain(fromYaml)).toEqual(plain(fromJson));
    expect(fromYaml.file).toBe(file);
    fs.writeFileSync(
      file,
      'rules:\n  - name: x\n    sources: [/ci/*]\n    actions: [stop]\n    namespaces: [ci]\n    selector: "ci=not valid!"\n',
    );
    expect(() => loadConfig({ VIRTWAKE_POLICY_FILE: file })).toThrow(
      /^VIRTWAKE_POLICY_FILE: .*policy\.yaml: rules\[0\] \("x"\)\.selector: /,
    );
  });

  test('the schema and the code know the same actions', () => {
    const schema = JSON.parse(fs.readFileSync(path.join(__dirname, '../../schemas/config/policy.json'), 'utf8'));
    expect(schema.$defs.rule.properties.actions.items.enum).toEqual([...POLICY_ACTIONS, '*']);
  });

  test('the shipped ConfigMap holds a valid policy that allows what the environment allows', () => {
    const yaml = fs.readFileSync(path.join(__dirname, '../../knative/configmaps.yaml'), 'utf8');
    // The block scalar under policy.json, de-indented.
    const block = /policy\.json: \|\n((?: {4}.*\n|\n)+)/.exec(yaml)?.[1] ?? '';
    const policy = parseSourcePolicy(block.replace(/^ {4}/gm, ''), 'configmaps.yaml');
    for (const action of ['start', 'stop', 'restart', 'pause', 'unpause', 'snapshot', 'restore', 'activity'] as const) {
      expect(() =>
        checkRequest(policy, { source: '/anything', actions: [action], namespace: 'virtwake' }),
      ).not.toThrow();
      expect(() =>
        checkVm(policy, { source: '/anything', actions: [action], namespace: 'virtwake' }, vm('x')),
      ).not.toThrow();
    }
  });
});

describe('source patterns', () => {
  test.each([
    ['/ci/*', '/ci/nightly', true],
    ['/ci/*', '/ci/', true],
    ['/ci/*', '/ci', false],
    ['/ci/*', '/cid/x', false],
    ['/ci/*', 'x/ci/y', false],
    ['*', 'https://example.com/anything', true],
    ['https://ci.example.com/job/*/run', 'https://ci.example.com/job/a/b/run', true],
    ['/exact', '/exact', true],
    ['/exact', '/exact/more', false],
    ['/a.b', '/aXb', false],
    ['/a+(b)?', '/a+(b)?', true],
    ['*ci*nightly*', 'https://ci.example/nightly/1', true],
    ['*ab*ba*', 'xaby', false],
    ['a*a', 'a', false],
    ['a*a', 'aa', true],
    ['**', '', true],
  ])('%s ~ %s → %s', (glob, source, expected) => {
    expect(globMatcher(glob)(source)).toBe(expected);
  });

  test('a long hostile source against a many-star pattern is a scan, not a backtracking search', () => {
    const source = `/${'a'.repeat(1024 * 1024)}`;
    expect(globMatcher('/*a*a*a*a*a*a*b')(source)).toBe(false);
    expect(globMatcher('*a*a*a*a*a*a*')(source)).toBe(true);
  });
});

describe('what a command may cause', () => {
  test.each([
    ['start', {}, ['start']],
    ['stop', { gracePeriodSeconds: 0 }, ['stop']],
    ['activity', {}, ['activity']],
    ['activity', { wake: true }, ['activity', 'start']],
    ['restore', { snapshotName: 's' }, ['restore']],
    ['restore', { snapshotName: 's', stopFirst: true, startAfter: true }, ['restore', 'stop', 'start']],
    ['reaper', {}, []],
  ])('%s %j needs %j', (fn, command, actions) => {
    expect(requiredActions(fn, command)).toEqual(actions);
  });
});

describe('evaluation: rules only grant', () => {
  const ops = { name: 'ops-everything', sources: ['/ops'], actions: ['*'], namespaces: ['*'] };
  const policy = policyOf(CI_RULE, ops);
  const req = (source: string, action: SourceRequest['actions'][number], namespace = 'ci'): SourceRequest => ({
    source,
    actions: [action],
    namespace,
  });

  test('the CI source may start and snapshot in its namespace, VMs labelled ci=true', () => {
    expect(() => checkRequest(policy, req('/ci/nightly', 'start'))).not.toThrow();
    expect(() => checkRequest(policy, req('/ci/nightly', 'snapshot'))).not.toThrow();
    expect(() => checkVm(policy, req('/ci/nightly', 'start'), vm('build-1', { ci: 'true' }))).not.toThrow();
  });

  test('…never stop: 403 naming the rule and what it allows', () => {
    const p = denial(() => checkRequest(policy, req('/ci/nightly', 'stop')));
    expect(p.status).toBe(403);
    expect(p.detail).toBe(
      'policy rule "ci-may-start-and-snapshot" does not allow source "/ci/nightly" to stop in namespace "ci": it allows only start, snapshot (policy file policy.json)',
    );
    expect(p.errors).toEqual(['rule "ci-may-start-and-snapshot": it allows only start, snapshot']);
  });

  test('…not in another namespace', () => {
    const p = denial(() => checkRequest(policy, req('/ci/nightly', 'start', 'prod')));
    expect(p.detail).toMatch(
      /^policy rule "ci-may-start-and-snapshot" does not allow source "\/ci\/nightly" to start in namespace "prod": it covers only namespace\(s\) ci/,
    );
  });

  test('…not a VM without the label: 403 naming the rule and the missing label', () => {
    const p = denial(() => checkVm(policy, req('/ci/nightly', 'start'), vm('db-1', { app: 'db' })));
    expect(p.detail).toBe(
      'policy rule "ci-may-start-and-snapshot" does not allow source "/ci/nightly" to start VM ci/db-1: it selects ci=true: label ci=true is missing (policy file policy.json)',
    );
    expect(() => checkVm(policy, req('/ci/nightly', 'start'), vm('db-2', { ci: 'false' }))).toThrow(Denied);
  });

  test('a source no rule names may do nothing', () => {
    const p = denial(() => checkRequest(policy, req('/someone/else', 'start')));
    expect(p.detail).toBe(
      'no policy rule allows source "/someone/else" to start in namespace "ci" (policy file policy.json)',
    );
    expect(p.errors).toEqual(['no rule names source "/someone/else"']);
  });

  test('an empty policy denies everything', () => {
    expect(() => checkRequest(policyOf(), req('/ops', 'start'))).toThrow(/no policy rule allows/);
  });

  test('grants add up across rules, order does not matter', () => {
    const extra = {
      name: 'ci-may-stop-scratch',
      sources: ['/ci/nightly'],
      actions: ['stop'],
      namespaces: ['ci'],
      selector: 'scratch',
    };
    for (const p of [policyOf(CI_RULE, extra), policyOf(extra, CI_RULE)]) {
      expect(() => checkRequest(p, req('/ci/nightly', 'stop'))).not.toThrow();
      expect(() => checkVm(p, req('/ci/nightly', 'stop'), vm('tmp', { scratch: 'yes' }))).not.toThrow();
      // The start grant's selector does not carry over to stop.
      const d = denial(() => checkVm(p, req('/ci/nightly', 'stop'), vm('build', { ci: 'true' })));
      expect(d.detail).toMatch(
        /^policy rule "ci-may-stop-scratch" does not allow source "\/ci\/nightly" to stop VM ci\/build: it selects scratch: label scratch is missing/,
      );
      // Another CI source gets nothing from a rule for /ci/nightly only.
      expect(() => checkRequest(p, req('/ci/weekly', 'stop'))).toThrow(
        /"ci-may-start-and-snapshot" does not allow source "\/ci\/weekly" to stop/,
      );
    }
  });

  test('several rules in play: the 403 lists what each lacks', () => {
    const other = { name: 'ci-pause-in-staging', sources: ['/ci/*'], actions: ['pause'], namespaces: ['staging'] };
    const p = denial(() => checkRequest(policyOf(CI_RULE, other), req('/ci/nightly', 'stop')));
    expect(p.detail).toMatch(/^no policy rule allows source "\/ci\/nightly" to stop in namespace "ci"/);
    expect(p.errors).toEqual([
      'rule "ci-may-start-and-snapshot": it allows only start, snapshot',
      'rule "ci-pause-in-staging": it allows only pause; it covers only namespace(s) staging',
    ]);
  });

  test('every action a command may cause must be allowed: restore with stopFirst needs stop', () => {
    const restorer = policyOf({ name: 'restore-only', sources: ['/dr'], actions: ['restore'], namespaces: ['*'] });
    expect(() => checkRequest(restorer, { source: '/dr', actions: ['restore'], namespace: 'x' })).not.toThrow();
    expect(() => checkRequest(restorer, { source: '/dr', actions: ['restore', 'stop'], namespace: 'x' })).toThrow(
      /does not allow source "\/dr" to stop/,
    );
  });

  test('labels are looked up as own properties only', () => {
    const p = policyOf({ name: 'c', sources: ['*'], actions: ['*'], namespaces: ['*'], selector: 'constructor' });
    expect(() => checkVm(p, req('/x', 'start'), vm('plain', {}))).toThrow(/label constructor is missing/);
    expect(() => checkVm(p, req('/x', 'start'), vm('labelled', { constructor: 'yes' }))).not.toThrow();
  });
});
