import request from 'supertest';
import { Harness, replyData, startHarness } from '../helpers/harness';

// Every way the KubeVirt API can fail (simulator fault injection), and what
// virtwake answers. The rule under test: each event ends in exactly one of a
// result event (200), a 4xx with its reason, or a 503 + Retry-After that makes
// Knative redeliver; a 2xx always has its effect, and a 503 either had none or
// is made good by the redelivery (one effect in all).
//
// Budgets are small so the suite stays fast: 1.5 s of retries (VIRTWAKE_RETRY_BUDGET_MS;
// five call timeouts, so a call that hangs once still leaves room for its retry and the
// request's ledger write on a loaded machine) and 300 ms per API call
// (VIRTWAKE_KUBE_TIMEOUT_MS). Cases run concurrently, each on its own VM
// with fault rules that match only that VM's paths.

const OPT_IN = { 'virtwake.io/enabled': 'true' };
const KUBE_TIMEOUT_MS = 300;
let h: Harness;
/** VMIs created, by VM name, from the simulator's store events: an effect count no answer can fake. */
const vmisCreated = new Map<string, number>();

beforeAll(async () => {
  h = await startHarness({
    sim: { stepMs: 5 },
    env: { VIRTWAKE_KUBE_TIMEOUT_MS: String(KUBE_TIMEOUT_MS), VIRTWAKE_RETRY_BUDGET_MS: String(KUBE_TIMEOUT_MS * 5) },
  });
  h.sim.store.raw.subscribe((e) => {
    if (e.resource.kind === 'VirtualMachineInstance' && e.type === 'ADDED')
      vmisCreated.set(e.object.metadata.name ?? '', (vmisCreated.get(e.object.metadata.name ?? '') ?? 0) + 1);
  });
});
afterAll(() => h.close());

let n = 0;
function addVM(runStrategy: string, state: { running?: boolean; vmiCreatedAt?: Date } = {}): string {
  const name = `flt-${runStrategy.toLowerCase()}-${++n}`;
  h.sim.store.addVM({ metadata: { name, namespace: 'default', labels: OPT_IN }, spec: { runStrategy } }, state);
  return name;
}

type Answer =
  | { kind: 'result'; type: string; data: Record<string, any> }
  | { kind: 'refused'; status: number; detail: string }
  | { kind: 'retry'; retryAfter: number; detail: string };

/** The answer must be exactly one of the three; anything else (500, 2xx without an event, 503 without Retry-After) fails here. */
function classify(res: request.Response): Answer {
  if (res.status === 200) {
    expect(res.headers['ce-specversion']).toBe('1.0');
    expect(res.headers['ce-type']).toMatch(/\.(accepted|completed|failed)$/);
    return { kind: 'result', type: res.headers['ce-type'], data: replyData(res) };
  }
  expect(res.headers['content-type']).toBe('application/problem+json');
  const body = JSON.parse(res.text) as { status: number; detail: string };
  expect(body.status).toBe(res.status);
  if (res.status === 503) {
    const retryAfter = Number(res.headers['retry-after']);
    expect(Number.isInteger(retryAfter) && retryAfter >= 1).toBe(true);
    return { kind: 'retry', retryAfter, detail: body.detail };
  }
  expect(res.status >= 400 && res.status < 500).toBe(true);
  expect(body.detail.length).toBeGreaterThan(0);
  return { kind: 'refused', status: res.status, detail: body.detail };
}

const vmPath = (name: string, sub = '') => new RegExp(`/virtualmachines/${name}${sub}$`);
const started = (name: string) => h.sim.store.getVM('default', name)?.spec?.runStrategy === 'Always';
const startPuts = (name: string) => h.sim.calls.filter((c) => c.subresource === 'start' && c.name === name);

describe('API failures that never clear: 503 + Retry-After, and nothing changed', () => {
  const faults: Array<[string, object]> = [
    ['500', { status: 500, message: 'etcdserver: request timed out' }],
    ['503', { status: 503, message: 'the server is currently unable to handle the request' }],
    ['429', { status: 429, retryAfterSeconds: 0 }],
    ['dropped connection', { drop: true }],
    ['no answer (hang)', { hang: true }],
  ];
  // The 503's detail says what happened: an API that answered is named with its last status and reason.
  const said: Record<string, RegExp> = {
    '500': /the API server kept failing the request.*\(last answer 500 InternalError: etcdserver: request timed out\)/,
    '503': /KubeVirt API unavailable after retries \(last answer 503 ServiceUnavailable: the server is currently/,
    '429': /the API server kept throttling virtwake.*\(last answer 429 TooManyRequests: /,
    'dropped connection': /KubeVirt API unavailable after retries \(no answer: /,
    'no answer (hang)': /KubeVirt API unavailable after retries \(no answer: .*timed out/,
  };
  test.concurrent.each(faults)('%s on the start PUT', async (what, fault) => {
    const name = addVM('Halted');
    const rule = h.sim.faults.add({ method: 'PUT', path: vmPath(name, '/start'), ...fault });
    const a = classify(await h.send('io.virtwake.vm.start', { name }));
    expect(a).toMatchObject({ kind: 'retry', detail: expect.stringMatching(said[what]) });
    // Tried (again while the budget lasted), then handed back: no attempt got through.
    expect(startPuts(name).length).toBeGreaterThanOrEqual(1);
    expect(startPuts(name).filter((c) => c.status === 202)).toEqual([]);
    h.sim.faults.remove(rule);
    await h.sim.settle();
    expect(h.sim.store.getVM('default', name)?.spec?.runStrategy).toBe('Halted');
    expect(h.sim.store.getVMI('default', name)).toBeUndefined();
  });

  test.concurrent.each(faults)('%s on reading the VM: no write is attempted', async (_what, fault) => {
    const name = addVM('Always', { running: true });
    const rule = h.sim.faults.add({ method: 'GET', path: vmPath(name), ...fault });
    expect(classify(await h.send('io.virtwake.vm.stop', { name }))).toMatchObject({ kind: 'retry' });
    expect(h.sim.calls.filter((c) => c.name === name && c.verb !== 'get')).toEqual([]);
    h.sim.faults.remove(rule);
  });

  test('429 with a Retry-After longer than the retry budget: handed back with that Retry-After', async () => {
    const name = addVM('Halted');
    h.sim.faults.add({ method: 'PUT', path: vmPath(name, '/start'), status: 429, retryAfterSeconds: 7 });
    const a = classify(await h.send('io.virtwake.vm.start', { name }));
    expect(a).toMatchObject({ kind: 'retry', retryAfter: 7 });
    // Honoured, not hammered: one attempt, then the wait belongs to Knative.
    expect(startPuts(name)).toHaveLength(1);
    expect(started(name)).toBe(false);
  });
});

describe('API failures that clear within the retry budget: the real outcome', () => {
  const faults: Array<[string, object]> = [
    ['500', { status: 500 }],
    ['503', { status: 503 }],
    ['429 + Retry-After: 0', { status: 429, retryAfterSeconds: 0 }],
    ['dropped connection', { drop: true }],
    ['no answer (hang)', { hang: true }],
  ];
  test.concurrent.each(faults)('%s once on the start PUT → accepted, and the VM is starting', async (_what, fault) => {
    const name = addVM('Halted');
    h.sim.faults.add({ method: 'PUT', path: vmPath(name, '/start'), times: 1, ...fault });
    const a = classify(await h.send('io.virtwake.vm.start', { name }));
    expect(a).toMatchObject({ kind: 'result', type: 'io.virtwake.vm.start.accepted' });
    expect(started(name)).toBe(true);
    expect(startPuts(name).map((c) => c.status)).toEqual([expect.any(Number), 202]);
  });
});

describe("permanent API refusals: a failed result with the API's message, never a 500", () => {
  test.concurrent.each([
    ['403 on reading the VM (RBAC)', 'GET', '', 403, 'Refused'],
    ['422 on the restart claim (an admission webhook)', 'PATCH', '', 422, 'Refused'],
    ['404 on the restart claim (the VM was deleted meanwhile)', 'PATCH', '', 404, 'NotFound'],
  ])('%s', async (_what, method, sub, status, reason) => {
    const name = addVM('Always', { running: true, vmiCreatedAt: new Date(Date.now() - 3_600_000) });
    const before = h.sim.store.getVMI('default', name)?.metadata.uid;
    const message = `refused by the test (${status})`;
    h.sim.faults.add({ method, path: vmPath(name, sub), status, message });
    const a = classify(await h.send('io.virtwake.vm.restart', { name }));
    expect(a).toMatchObject({ kind: 'result', type: 'io.virtwake.vm.restart.failed', data: { reason, message } });
    expect(h.sim.calls.filter((c) => c.name === name && c.subresource === 'restart')).toEqual([]);
    expect(h.sim.store.getVMI('default', name)?.metadata.uid).toBe(before);
  });

  test.concurrent.each([
    ['an undocumented status on reading the VM', { method: 'GET', status: 405, list: false }],
    ['403 on listing VMs for a selector', { method: 'GET', status: 403, list: true }],
  ])('%s: 503, handed back', async (_what, f) => {
    const name = addVM('Halted');
    const fleet = `fleet-${name}`;
    h.sim.store.updateVM('default', name, (vm) => (vm.metadata.labels = { ...vm.metadata.labels, fleet }));
    const path = f.list ? new RegExp(`/virtualmachines\\?(?!.*watch).*labelSelector=fleet%3D${fleet}`) : vmPath(name);
    h.sim.faults.add({ method: f.method, path, status: f.status });
    const a = classify(
      await h.send('io.virtwake.vm.start', f.list ? { selector: { matchLabels: { fleet } } } : { name }),
    );
    expect(a).toMatchObject({ kind: 'retry' });
    expect(started(name)).toBe(false);
  });
});

describe('a call that times out but still takes effect', () => {
  test.concurrent('start: the retry or the redelivery finds it done; one VMI', async () => {
    const name = addVM('Manual');
    // Every start PUT is answered after the client gave up; the simulator still applies it.
    const rule = h.sim.faults.add({ method: 'PUT', path: vmPath(name, '/start'), delayMs: KUBE_TIMEOUT_MS * 3 });
    const first = classify(await h.send('io.virtwake.vm.start', { name }, { id: 'slow-start' }));
    expect(first.kind).toBe('retry');
    h.sim.faults.remove(rule);
    await new Promise((r) => setTimeout(r, KUBE_TIMEOUT_MS * 3));
    await h.sim.settle();
    // Knative redelivers the same event: it is answered as done, not done again.
    const again = classify(
      await h.send('io.virtwake.vm.start', { name, wait: { timeoutSeconds: 10 } }, { id: 'slow-start' }),
    );
    expect(again).toMatchObject({ kind: 'result', type: 'io.virtwake.vm.start.completed' });
    expect(vmisCreated.get(name)).toBe(1);
  });

  test.concurrent('snapshot: the late create is adopted, one snapshot', async () => {
    const name = addVM('Always', { running: true });
    h.sim.faults.add({ method: 'POST', path: /virtualmachinesnapshots$/, times: 1, delayMs: KUBE_TIMEOUT_MS * 2 });
    const res = await h.send('io.virtwake.vm.snapshot', { name, wait: { timeoutSeconds: 10 } }, { id: 'slow-snap' });
    const a = classify(res);
    const again =
      a.kind === 'result'
        ? a
        : classify(
            await h.send('io.virtwake.vm.snapshot', { name, wait: { timeoutSeconds: 10 } }, { id: 'slow-snap' }),
          );
    expect(again).toMatchObject({ kind: 'result', type: 'io.virtwake.vm.snapshot.completed' });
    await new Promise((r) => setTimeout(r, KUBE_TIMEOUT_MS * 2));
    expect(h.sim.store.listSnapshots('default').filter((s) => s.spec?.source?.name === name)).toHaveLength(1);
  });
});

describe('the watch behind `wait`', () => {
  const watchOf = (name: string) => new RegExp(`/virtualmachines\\?.*watch=(true|1).*metadata\\.name%3D${name}(&|$)`);

  test.concurrent('a stream that ends mid-wait is resumed: completed, not WaitTimeout', async () => {
    const name = addVM('Halted');
    const rule = h.sim.faults.add({ method: 'GET', path: watchOf(name), watchEndAfterEvents: 1 });
    const a = classify(await h.send('io.virtwake.vm.start', { name, wait: { timeoutSeconds: 20 } }));
    expect(a).toMatchObject({
      kind: 'result',
      type: 'io.virtwake.vm.start.completed',
      data: { status: { printableStatus: 'Running', ready: true } },
    });
    expect(a.kind === 'result' && a.data.reason).toBeUndefined();
    expect(startPuts(name)).toHaveLength(1);
    expect(
      h.sim.calls.filter((c) => c.verb === 'watch' && c.query?.fieldSelector === `metadata.name=${name}`).length,
    ).toBeGreaterThan(1);
    h.sim.faults.remove(rule);
  });

  test.concurrent.each([
    ['dropped', { drop: true, times: 3 }],
    ['answered 500', { status: 500, times: 3 }],
    ['answered 410 Gone', { status: 410, times: 2 }],
  ])('a watch request %s is retried: completed', async (_what, fault) => {
    const name = addVM('Halted');
    h.sim.faults.add({ method: 'GET', path: watchOf(name), ...fault });
    const a = classify(await h.send('io.virtwake.vm.start', { name, wait: { timeoutSeconds: 20 } }));
    expect(a).toMatchObject({ kind: 'result', type: 'io.virtwake.vm.start.completed' });
    // The wait itself went on: the command was not run again from the start.
    expect(a.kind === 'result' && a.data.reason).toBeUndefined();
    expect(startPuts(name)).toHaveLength(1);
  });
});

describe('restart claim (contract §6) under conflicts', () => {
  const claimPatch = (name: string) => ({
    method: 'PATCH',
    path: vmPath(name),
    status: 409,
    message: `Operation cannot be fulfilled on virtualmachines.kubevirt.io "${name}": the object has been modified; please apply your changes to the latest version and try again`,
  });
  const restarts = (name: string) =>
    h.sim.calls.filter((c) => c.subresource === 'restart' && c.name === name && c.status === 202);

  test.concurrent('a 409 on the claim patch is re-read and retried: one restart', async () => {
    const name = addVM('Always', { running: true, vmiCreatedAt: new Date(Date.now() - 3_600_000) });
    const before = h.sim.store.getVMI('default', name)?.metadata.uid;
    h.sim.faults.add({ ...claimPatch(name), times: 1 });
    const a = classify(
      await h.send(
        'io.virtwake.vm.restart',
        { name, wait: { timeoutSeconds: 20 } },
        { time: new Date(Date.now() - 1000).toISOString() },
      ),
    );
    expect(a).toMatchObject({ kind: 'result', type: 'io.virtwake.vm.restart.completed' });
    expect(restarts(name)).toHaveLength(1);
    expect(h.sim.store.getVMI('default', name)?.metadata.uid).not.toBe(before);
  });

  test.concurrent('conflicts that never clear: 503, and no restart was issued', async () => {
    const name = addVM('Always', { running: true, vmiCreatedAt: new Date(Date.now() - 3_600_000) });
    const before = h.sim.store.getVMI('default', name)?.metadata.uid;
    const rule = h.sim.faults.add(claimPatch(name));
    expect(classify(await h.send('io.virtwake.vm.restart', { name }))).toMatchObject({ kind: 'retry' });
    expect(h.sim.calls.filter((c) => c.subresource === 'restart' && c.name === name)).toEqual([]);
    h.sim.faults.remove(rule);
    await h.sim.settle();
    expect(h.sim.store.getVMI('default', name)?.metadata.uid).toBe(before);
  });
});

describe('the 503 after retries says what the API answered, not "unavailable"', () => {
  const detail = async (res: request.Response) => {
    const a = classify(res);
    expect(a.kind).toBe('retry');
    const text = (a as { detail: string }).detail;
    expect(text).not.toMatch(/unavailable/);
    expect(Buffer.byteLength(res.text)).toBeLessThanOrEqual(700);
    return text;
  };

  test.concurrent("virt-api's concurrent-change 500 that never clears on the start PUT", async () => {
    const name = addVM('Halted');
    h.sim.faults.add({
      method: 'PUT',
      path: vmPath(name, '/start'),
      status: 500,
      message: 'Internal error occurred: the server rejected our request due to an error in our request',
    });
    expect(await detail(await h.send('io.virtwake.vm.start', { name }))).toMatch(
      /^io\.virtwake\.vm\.start default\/flt-halted-\d+: the VM kept being changed by someone else at the same moment \(KubeVirt's concurrent-change 500\), still so after retries \(last answer 500 InternalError: Internal error occurred: the server rejected our request/,
    );
  });

  test.concurrent('conflicts on the restart claim that never clear', async () => {
    const name = addVM('Always', { running: true, vmiCreatedAt: new Date(Date.now() - 3_600_000) });
    h.sim.faults.add({ method: 'PATCH', path: vmPath(name), status: 409, message: 'the object has been modified' });
    expect(await detail(await h.send('io.virtwake.vm.restart', { name }))).toMatch(
      /kept being changed by someone else at the same moment \(conflict\), still so after retries \(last answer 409 Conflict: the object has been modified/,
    );
  });

  test.concurrent('a Status message of 5,000 characters: the 503 body stays within 700 bytes', async () => {
    const name = addVM('Halted');
    h.sim.faults.add({
      method: 'PUT',
      path: vmPath(name, '/start'),
      status: 500,
      message: `Internal error occurred: the server rejected our request due to an error in our request ${'x'.repeat(5000)}`,
    });
    expect(await detail(await h.send('io.virtwake.vm.start', { name }))).toMatch(/last answer 500 InternalError: /);
  });
});

describe('afterwards', () => {
  test('with every fault gone, the server still answers a plain event', async () => {
    h.sim.faults.clear();
    const name = addVM('Halted');
    expect(classify(await h.send('io.virtwake.vm.start', { name }))).toMatchObject({
      kind: 'result',
      type: 'io.virtwake.vm.start.accepted',
    });
  });
});
