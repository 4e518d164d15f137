import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import request from 'supertest';
import { Harness, replyData, startHarness } from '../helpers/harness';

// Per-source policy over HTTP (docs/policy.md): "the CI source may start and
// snapshot VMs labelled ci=true, never stop". Denials are 403 naming the rule,
// before any API call when the source, action or namespace is not allowed, and
// before any write when the VM's labels are not. Unit cases: source-policy.test.ts.

const OPT_IN = { 'virtwake.io/enabled': 'true' };
const POLICY = {
  rules: [
    {
      name: 'ci-may-start-and-snapshot',
      sources: ['/ci/*'],
      actions: ['start', 'snapshot'],
      namespaces: ['ci'],
      selector: 'ci=true',
    },
    { name: 'ops-anything', sources: ['/ops'], actions: ['*'], namespaces: ['*'] },
    { name: 'dr-restores', sources: ['/dr'], actions: ['restore'], namespaces: ['ci'] },
  ],
};

let h: Harness;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'virtwake-policy-http-'));

beforeAll(async () => {
  const file = path.join(dir, 'policy.json');
  fs.writeFileSync(file, JSON.stringify(POLICY));
  h = await startHarness({
    sim: { stepMs: 5 },
    env: { VIRTWAKE_POLICY_FILE: file, VIRTWAKE_NAMESPACES: 'default,ci' },
  });
});
afterAll(() => h.close());

let n = 0;
function addVM(labels: Record<string, string>, namespace = 'ci', runStrategy = 'Halted', running = false): string {
  const name = `pol-${++n}`;
  h.sim.store.addVM(
    { metadata: { name, namespace, labels: { ...OPT_IN, ...labels } }, spec: { runStrategy } },
    { running },
  );
  return name;
}

const writes = () => h.sim.calls.filter((c) => !['get', 'list', 'watch'].includes(c.verb));
const problem = (res: request.Response) => {
  expect(res.headers['content-type']).toBe('application/problem+json');
  return JSON.parse(res.text) as { status: number; detail: string; errors?: string[] };
};

beforeEach(() => h.sim.resetCalls());

test('the CI source may start a VM labelled ci=true in namespace ci', async () => {
  const name = addVM({ ci: 'true' });
  const res = await h.send('io.virtwake.vm.start', { name, namespace: 'ci' }, { source: '/ci/nightly' }).expect(200);
  expect(replyData(res)).toMatchObject({ outcome: 'accepted', name });
  expect(writes().map((c) => c.subresource)).toContain('start');
});

test('…never stop: 403 naming the rule, and no API call at all', async () => {
  const name = addVM({ ci: 'true' }, 'ci', 'Always', true);
  const res = await h.send('io.virtwake.vm.stop', { name, namespace: 'ci' }, { source: '/ci/nightly' }).expect(403);
  expect(problem(res).detail).toMatch(
    /^policy rule "ci-may-start-and-snapshot" does not allow source "\/ci\/nightly" to stop in namespace "ci": it allows only start, snapshot/,
  );
  expect(h.sim.calls).toEqual([]);
});

test('…not in another namespace', async () => {
  const name = addVM({ ci: 'true' }, 'default');
  const res = await h
    .send('io.virtwake.vm.start', { name, namespace: 'default' }, { source: '/ci/nightly' })
    .expect(403);
  expect(problem(res).detail).toMatch(
    /"ci-may-start-and-snapshot" does not allow .* namespace "default": it covers only namespace\(s\) ci/,
  );
  expect(h.sim.calls).toEqual([]);
});

test('…not a VM without ci=true: 403 naming the rule and the label, the VM read but nothing written', async () => {
  const name = addVM({ app: 'db' });
  const res = await h.send('io.virtwake.vm.start', { name, namespace: 'ci' }, { source: '/ci/nightly' }).expect(403);
  const p = problem(res);
  expect(p.detail).toMatch(
    new RegExp(
      `^policy rule "ci-may-start-and-snapshot" does not allow source "/ci/nightly" to start VM ci/${name}: it selects ci=true: label ci=true is missing`,
    ),
  );
  expect(writes()).toEqual([]);
  expect(h.sim.store.getVM('ci', name)?.spec?.runStrategy).toBe('Halted');
});

test('a source no rule names may do nothing', async () => {
  const name = addVM({ ci: 'true' });
  const res = await h.send('io.virtwake.vm.start', { name, namespace: 'ci' }, { source: '/someone-else' }).expect(403);
  expect(problem(res)).toMatchObject({
    detail: expect.stringMatching(/^no policy rule allows source "\/someone-else" to start in namespace "ci"/),
    errors: ['no rule names source "/someone-else"'],
  });
  expect(h.sim.calls).toEqual([]);
});

test('a selector command acts only on the VMs the rule covers; the others are failed/Forbidden, untouched', async () => {
  const fleet = `fleet-${++n}`;
  const covered = addVM({ fleet, ci: 'true' });
  const other = addVM({ fleet, team: 'prod' });
  const res = await h
    .send('io.virtwake.vm.start', { namespace: 'ci', selector: { matchLabels: { fleet } } }, { source: '/ci/nightly' })
    .expect(200);
  const data = replyData(res);
  expect(res.headers['ce-type']).toBe('io.virtwake.vm.start.failed');
  expect(data.results).toEqual(
    expect.arrayContaining([
      { name: covered, outcome: 'accepted' },
      {
        name: other,
        outcome: 'failed',
        reason: 'Forbidden',
        message: expect.stringMatching(/policy rule "ci-may-start-and-snapshot" .* label ci=true is missing/),
      },
    ]),
  );
  expect(
    writes()
      .filter((c) => c.subresource === 'start')
      .map((c) => c.name),
  ).toEqual([covered]);
  expect(writes().filter((c) => c.name === other)).toEqual([]);
  expect(h.sim.store.getVM('ci', other)?.spec?.runStrategy).toBe('Halted');
});

test('a batch with one denied event is refused whole, before any API call', async () => {
  const name = addVM({ ci: 'true' });
  const batch = [
    {
      specversion: '1.0',
      id: 'pb-1',
      source: '/ci/nightly',
      type: 'io.virtwake.vm.start',
      data: { name, namespace: 'ci' },
    },
    {
      specversion: '1.0',
      id: 'pb-2',
      source: '/ci/nightly',
      type: 'io.virtwake.vm.stop',
      data: { name, namespace: 'ci' },
    },
  ];
  const res = await request(h.app.server)
    .post('/')
    .set('content-type', 'application/cloudevents-batch+json')
    .send(JSON.stringify(batch))
    .expect(403);
  expect(problem(res).errors?.join('\n')).toMatch(/events\[1\].*ci-may-start-and-snapshot/);
  expect(h.sim.calls).toEqual([]);
});

test('restore with stopFirst also needs stop: a restore-only source is denied before any call', async () => {
  const name = addVM({}, 'ci', 'Always', true);
  const res = await h
    .send('io.virtwake.vm.restore', { name, namespace: 'ci', snapshotName: 'snap', stopFirst: true }, { source: '/dr' })
    .expect(403);
  expect(problem(res).detail).toMatch(/"dr-restores" does not allow source "\/dr" to stop in namespace "ci"/);
  expect(h.sim.calls).toEqual([]);
});

test('a dry run is judged like the real thing', async () => {
  const name = addVM({ ci: 'true' }, 'ci', 'Always', true);
  await h.send('io.virtwake.vm.stop', { name, namespace: 'ci', dryRun: true }, { source: '/ci/nightly' }).expect(403);
  expect(h.sim.calls).toEqual([]);
});

test('the policy only narrows: the environment limits still apply to a source allowed everything', async () => {
  const notOptedIn = `pol-${++n}`;
  h.sim.store.addVM({
    metadata: { name: notOptedIn, namespace: 'ci', labels: { ci: 'true' } },
    spec: { runStrategy: 'Halted' },
  });
  const res = await h
    .send('io.virtwake.vm.start', { name: notOptedIn, namespace: 'ci' }, { source: '/ops' })
    .expect(403);
  expect(problem(res).detail).toMatch(/has not opted in/);
  await h.send('io.virtwake.vm.start', { name: 'x', namespace: 'elsewhere' }, { source: '/ops' }).expect(403);
  // …and the ops source may stop what CI may not.
  const name = addVM({ ci: 'true' }, 'ci', 'Always', true);
  const ok = await h.send('io.virtwake.vm.stop', { name, namespace: 'ci' }, { source: '/ops' }).expect(200);
  expect(replyData(ok).outcome).toBe('accepted');
});

test('without a policy file any source may act (contract §4 only)', async () => {
  const open = await h.replica({ VIRTWAKE_POLICY_FILE: '' });
  const name = addVM({}, 'default', 'Always', true);
  const res = await h.send('io.virtwake.vm.stop', { name }, { source: '/someone-else', to: open }).expect(200);
  expect(replyData(res).outcome).toBe('accepted');
});

test('a bad policy file stops the program at start: exit 2, the place and the fix, no stack trace', async () => {
  const file = path.join(dir, 'bad-policy.yaml');
  fs.writeFileSync(
    file,
    'rules:\n  - name: ci\n    sources: [/ci/*]\n    actions: [start, delete]\n    namespaces: [ci]\n',
  );
  const proc = spawn(process.execPath, ['--import', 'tsx', 'functions/main.ts'], {
    cwd: path.resolve(__dirname, '../..'),
    env: { PATH: process.env.PATH, HOME: process.env.HOME, PORT: '0', VIRTWAKE_POLICY_FILE: file, LOG_LEVEL: 'silent' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  proc.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  // A file it accepted would leave it serving: stop it, so that shows as a wrong code, not a hang.
  const guard = setTimeout(() => proc.kill('SIGTERM'), 50_000);
  const code = await new Promise<number | null>((resolve) => proc.on('exit', resolve));
  clearTimeout(guard);
  expect(stderr).toBe(
    `virtwake: configuration error: VIRTWAKE_POLICY_FILE: ${file}: rules[0] ("ci").actions[1]: unknown action "delete" (known: start, stop, restart, pause, unpause, snapshot, restore, activity, or "*")\n`,
  );
  expect(code).toBe(2);
}, 60_000);
