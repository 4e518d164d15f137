import { createVM, eventually, NS, OPT_IN, rig, send, startVirtwake, vmiPath, vmPath, type Virtwake } from './helpers';

// The reaper over a few hundred VMs on the real apiserver: real paging (limit/continue),
// real label selectors, real claims (PATCH) and stops through the aggregator.

const { state, kube } = rig();
const PING = 'dev.knative.sources.ping';
const IDLE = 200;
const PROTECTED = 50;
const BUSY = 50;
let vw: Virtwake;

const fleet = `reap-${process.pid}`;
const labelsFor = (extra: Record<string, string> = {}) => ({ ...OPT_IN, fleet, ...extra });

beforeAll(async () => {
  vw = await startVirtwake(state, {
    VIRTWAKE_FUNCTIONS: 'reaper',
    VIRTWAKE_REAPER_PAGE_SIZE: '40',
    VIRTWAKE_REAPER_REPORT_MAX: '1000',
  });
  const idleSince = { 'virtwake.io/idle-timeout': '1s', 'virtwake.io/last-activity': '2020-01-01T00:00:00Z' };
  const jobs: Array<() => Promise<unknown>> = [];
  for (let i = 0; i < IDLE; i++)
    jobs.push(() => createVM(kube, `${fleet}-idle-${i}`, 'Always', labelsFor(), idleSince));
  for (let i = 0; i < PROTECTED; i++)
    jobs.push(() =>
      createVM(kube, `${fleet}-protected-${i}`, 'Always', labelsFor({ 'virtwake.io/protected': 'true' }), idleSince),
    );
  for (let i = 0; i < BUSY; i++)
    jobs.push(() => createVM(kube, `${fleet}-busy-${i}`, 'Always', labelsFor(), { 'virtwake.io/idle-timeout': '24h' }));
  // A few at a time, as a client would.
  for (let i = 0; i < jobs.length; i += 10) await Promise.all(jobs.slice(i, i + 10).map((j) => j()));
  await eventually(
    'every VM Running',
    async () => {
      const list = await kube.request('GET', `${vmPath()}?labelSelector=fleet%3D${fleet}`);
      return list.items.filter((v: any) => v.status?.printableStatus === 'Running').length === IDLE + PROTECTED + BUSY;
    },
    300_000,
  );
  // Idle for longer than the 1 s timeout, counted from each VMI's start.
  await new Promise((r) => setTimeout(r, 2000));
}, 400_000);
afterAll(() => vw?.stop());

test('one tick stops exactly the idle, unprotected VMs, paging through the real list', async () => {
  const res = await send(vw, PING, {});
  expect(res.status).toBe(200);
  expect(res.type).toBe('io.virtwake.reaper.completed');
  const mine = (names: string[]) => names.filter((n) => n.includes(fleet));
  const stopped = mine(res.data.stopped.map((s: string) => s.replace(`${NS}/`, '')));
  expect(stopped.length).toBe(IDLE);
  expect(new Set(stopped).size).toBe(IDLE);
  expect(stopped.every((s) => s.includes('-idle-'))).toBe(true);
  expect(res.data.failed).toEqual([]);
  expect(res.data.pages).toBeGreaterThan(1);
  await eventually(
    'idle VMs stopped',
    async () => {
      const list = await kube.request('GET', `${vmiPath()}?labelSelector=kubevirt.io%2Fvm`);
      return list.items.filter((v: any) => v.metadata.name.startsWith(`${fleet}-idle-`)).length === 0;
    },
    300_000,
  );
  const protectedVmi = await kube.get(vmiPath(`${fleet}-protected-0`));
  expect(protectedVmi?.status?.phase).toBe('Running');
}, 400_000);
