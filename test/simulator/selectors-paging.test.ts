// Label/field selectors (grammar and matching) and limit/continue paging over 10,000 VMs.
import { matchesLabels, parseLabelSelector } from '../../simulator/selectors';
import { ApiError } from '../../simulator/errors';
import { request, startEnv, vmPath, type TestEnv } from './helpers';

describe('label selector grammar', () => {
  const labels = { app: 'web', tier: 'front', 'virtwake.io/enabled': 'true', n: '7' };
  test.each([
    ['app=web', true],
    ['app==web', true],
    ['app!=web', false],
    ['app!=db', true],
    ['missing!=x', true],
    ['app', true],
    ['!app', false],
    ['!missing', true],
    ['app in (web, db)', true],
    ['app in (db)', false],
    ['app notin (db)', true],
    ['missing notin (db)', true],
    ['app=web,tier=front', true],
    ['app=web,tier=back', false],
    ['virtwake.io/enabled=true', true],
    ['n>5', true],
    ['n<5', false],
    ['  app = web ,  tier in (front) ', true],
    ['', true],
    // `()` is the set holding the empty value (labels/selector.go parseValues), not an error.
    ['app in ()', false],
    ['missing notin ()', true],
  ])('%s -> %s', (sel, want) => {
    expect(matchesLabels(parseLabelSelector(sel), labels)).toBe(want);
  });
  test.each(['app=web=x', 'app in (web', 'app in web', '=web', 'app=web,', 'bad key!=x', 'app=-bad-', 'n>x'])(
    'malformed: %s',
    (sel) => {
      expect(() => parseLabelSelector(sel)).toThrow(ApiError);
    },
  );
});

describe('over HTTP with 10,000 VMs', () => {
  let env: TestEnv;
  const N = 10_000;
  beforeAll(async () => {
    env = await startEnv();
    const items = [];
    for (let i = 0; i < N; i++) {
      const name = `vm-${String(i).padStart(5, '0')}`;
      const labels: Record<string, string> = { group: `g${i % 4}` };
      if (i % 2 === 0) labels['virtwake.io/enabled'] = 'true';
      if (i % 10 === 0) labels['virtwake.io/protected'] = 'true';
      items.push({
        vm: {
          metadata: { name, namespace: i < 9000 ? 'default' : 'other', labels },
          spec: { runStrategy: i % 3 === 0 ? 'Always' : 'Halted' },
        },
        opts: { running: i % 3 === 0 },
      });
    }
    const t0 = Date.now();
    expect(env.sim.store.addVMs(items)).toBe(N);
    // Informational only (tests must not assert wall-clock time).
    if (process.env.SIM_TIMING) console.log(`seeded ${N} VMs in ${Date.now() - t0} ms`);
  });
  afterAll(() => env.sim.close());

  test('pages of 500 with continue cover every matching VM once, in namespace/name order', async () => {
    const { api } = env;
    const names: string[] = [];
    let cont: string | undefined;
    let pages = 0;
    let listRv: string | undefined;
    do {
      const page: any = await api.listNamespacedCustomObject({
        group: 'kubevirt.io',
        version: 'v1',
        namespace: 'default',
        plural: 'virtualmachines',
        labelSelector: 'virtwake.io/enabled=true,virtwake.io/protected!=true',
        limit: 500,
        _continue: cont,
      });
      pages++;
      listRv ??= page.metadata.resourceVersion;
      expect(page.metadata.resourceVersion).toBe(listRv);
      expect(page.metadata.remainingItemCount).toBeUndefined();
      names.push(...page.items.map((i: any) => i.metadata.name));
      cont = page.metadata.continue || undefined;
    } while (cont);
    const expected = [];
    for (let i = 0; i < 9000; i++) if (i % 2 === 0 && i % 10 !== 0) expected.push(`vm-${String(i).padStart(5, '0')}`);
    expect(names).toEqual(expected);
    expect(pages).toBe(Math.ceil(expected.length / 500));
  });

  test('remainingItemCount without selectors; cluster-wide order is namespace then name', async () => {
    const { kc } = env;
    const first = await request(kc, 'GET', '/apis/kubevirt.io/v1/virtualmachines?limit=1000');
    expect(first.json.items).toHaveLength(1000);
    expect(first.json.metadata.remainingItemCount).toBe(N - 1000);
    const last = await request(
      kc,
      'GET',
      `/apis/kubevirt.io/v1/virtualmachines?limit=9500&continue=${first.json.metadata.continue}`,
    );
    expect(last.json.items).toHaveLength(N - 1000);
    // A custom resource list carries an empty continue on its last page, as kube-apiserver's does.
    expect(last.json.metadata.continue).toBe('');
    expect(last.json.items.at(-1).metadata).toMatchObject({ namespace: 'other', name: 'vm-09999' });
    expect(first.json.items[0].metadata).toMatchObject({ namespace: 'default', name: 'vm-00000' });
  });

  test('set-based selectors and field selectors', async () => {
    const { kc } = env;
    const inSet = await request(
      kc,
      'GET',
      `${vmPath('other')}?labelSelector=${encodeURIComponent('group in (g1,g3),!virtwake.io/enabled')}`,
    );
    expect(inSet.json.items.length).toBe(500);
    const byName = await request(
      kc,
      'GET',
      `${vmPath()}?fieldSelector=${encodeURIComponent('metadata.name=vm-00042')}`,
    );
    expect(byName.json.items.map((i: any) => i.metadata.name)).toEqual(['vm-00042']);
    const notNs = await request(
      kc,
      'GET',
      `/apis/kubevirt.io/v1/virtualmachines?fieldSelector=${encodeURIComponent('metadata.namespace!=default')}&limit=5`,
    );
    expect(notNs.json.items.every((i: any) => i.metadata.namespace === 'other')).toBe(true);
    const running = env.sim.store.listVMs('default').filter((v) => v.status?.printableStatus === 'Running').length;
    expect(running).toBe(3000);
  });

  test('malformed selectors and continue tokens are 400; compacted tokens are 410', async () => {
    const { sim, kc } = env;
    const bad = await request(kc, 'GET', `${vmPath()}?labelSelector=${encodeURIComponent('a in (')}`);
    expect(bad.status).toBe(400);
    expect(bad.json).toMatchObject({ kind: 'Status', reason: 'BadRequest', code: 400 });
    expect(bad.json.message).toMatch(/^unable to parse requirement: /);
    const field = await request(kc, 'GET', `${vmPath()}?fieldSelector=spec.running%3Dtrue`);
    expect(field.status).toBe(400);
    expect(field.json.message).toBe('field label not supported: spec.running');
    expect((await request(kc, 'GET', `${vmPath()}?limit=10&continue=garbage`)).status).toBe(400);
    const page = await request(kc, 'GET', `${vmPath()}?limit=10`);
    sim.store.addVM({ metadata: { name: 'after-compaction' } });
    sim.store.compact();
    const expired = await request(kc, 'GET', `${vmPath()}?limit=10&continue=${page.json.metadata.continue}`);
    expect(expired.status).toBe(410);
    expect(expired.json.reason).toBe('Expired');
  });
});
