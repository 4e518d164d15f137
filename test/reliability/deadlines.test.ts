import { Harness, replyData, startHarness } from '../helpers/harness';

// Issue 12 §3: deadlines are deadlines. Whatever the API does (here: never
// answers), a `wait` is answered by its deadline plus a small margin, and a
// command without one by the end of its retry budget, not the API client's
// (much longer) per-call timeout. The bounds below are liveness checks, far
// from the 30 s per-call timeout the old behaviour would show, not speed claims.

const OPT_IN = { 'virtwake.io/enabled': 'true' };
const KUBE_TIMEOUT_S = 30;
let h: Harness;

beforeAll(async () => {
  // A VMI that never gets past its first phase: no wait is met by the simulator by accident.
  h = await startHarness({
    sim: { stepMs: 60_000 },
    env: { VIRTWAKE_KUBE_TIMEOUT: `${KUBE_TIMEOUT_S}s`, VIRTWAKE_RETRY_BUDGET_MS: '1000' },
  });
});
afterAll(() => h.close());

let n = 0;
function addVM(): string {
  const name = `dl-${++n}`;
  h.sim.store.addVM({ metadata: { name, namespace: 'default', labels: OPT_IN }, spec: { runStrategy: 'Halted' } });
  return name;
}

async function timed<T>(work: () => PromiseLike<T>): Promise<{ value: T; seconds: number }> {
  const begun = Date.now();
  const value = await work();
  return { value, seconds: (Date.now() - begun) / 1000 };
}

describe('an 8 s wait against a hung API answers by about 8 s', () => {
  test.concurrent('every read of the VM hangs: 503 + Retry-After, nothing started', async () => {
    const name = addVM();
    h.sim.faults.add({ method: 'GET', path: new RegExp(`/virtualmachines/${name}$`), hang: true });
    const { value: res, seconds } = await timed(() =>
      h.send('io.virtwake.vm.start', { name, wait: { timeoutSeconds: 8 } }),
    );
    expect(res.status).toBe(503);
    expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(JSON.parse(res.text).detail).toMatch(/KubeVirt API unavailable after retries.*timed out/);
    expect(seconds).toBeLessThan(14);
    expect(h.sim.store.getVM('default', name)?.spec?.runStrategy).toBe('Halted');
  });

  test.concurrent('the start PUT hangs: 503 + Retry-After by the deadline', async () => {
    const name = addVM();
    h.sim.faults.add({ method: 'PUT', path: new RegExp(`/virtualmachines/${name}/start$`), hang: true });
    const { value: res, seconds } = await timed(() =>
      h.send('io.virtwake.vm.start', { name, wait: { timeoutSeconds: 8 } }),
    );
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBeDefined();
    expect(seconds).toBeLessThan(14);
  });

  test.concurrent('the start is accepted, then every watch hangs: accepted/WaitTimeout by the deadline', async () => {
    const name = addVM();
    h.sim.faults.add({ method: 'GET', path: new RegExp(`watch=true.*${name}|${name}.*watch=true`), hang: true });
    const { value: res, seconds } = await timed(() =>
      h.send('io.virtwake.vm.start', { name, wait: { timeoutSeconds: 8 } }),
    );
    expect(res.status).toBe(200);
    expect(res.headers['ce-type']).toBe('io.virtwake.vm.start.accepted');
    expect(replyData(res)).toMatchObject({ reason: 'WaitTimeout' });
    expect(seconds).toBeLessThan(14);
  });
});

test('the retry budget bounds one hanging call: 503 long before the 30 s per-call timeout', async () => {
  const name = addVM();
  h.sim.faults.add({ method: 'PUT', path: new RegExp(`/virtualmachines/${name}/start$`), hang: true });
  const { value: res, seconds } = await timed(() => h.send('io.virtwake.vm.start', { name }));
  expect(res.status).toBe(503);
  expect(JSON.parse(res.text).detail).toMatch(/KubeVirt API unavailable after retries/);
  expect(seconds).toBeLessThan(KUBE_TIMEOUT_S / 3);
  h.sim.faults.clear();
}, 40_000);

test('KubeVirt\'s "already underway" that never clears is handed back saying so, not "API unavailable"', async () => {
  const name = addVM();
  const rule = h.sim.faults.add({
    method: 'PUT',
    path: new RegExp(`/virtualmachines/${name}/start$`),
    status: 500,
    message: 'Internal error occurred: unable to complete request: stop/start already underway',
  });
  const res = await h.send('io.virtwake.vm.start', { name });
  h.sim.faults.remove(rule);
  expect(res.status).toBe(503);
  const detail = JSON.parse(res.text).detail as string;
  expect(detail).toMatch(/KubeVirt is still carrying out an earlier start\/stop request on this VM/);
  expect(detail).not.toMatch(/unavailable/);
});
