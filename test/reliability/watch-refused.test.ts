import { Harness, replyData, startHarness } from '../helpers/harness';

// A `wait` whose watch the API server refuses (RBAC 403: the Role lacks `watch`), the way the
// real kube-apiserver refused it on the rig: the wait ends at once as failed/Refused with the
// API server's message, which names the missing grant. Not retried like a broken stream, and
// not a 503 for a VM slower than those retries (the controllers are held so the VM stays slow).

const OPT_IN = { 'virtwake.io/enabled': 'true' };
const FORBIDDEN = (name: string) =>
  `virtualmachines.kubevirt.io "${name}" is forbidden: User "system:serviceaccount:default:virtwake" cannot watch resource "virtualmachines" in API group "kubevirt.io" in the namespace "default"`;
let h: Harness;

beforeAll(async () => {
  h = await startHarness({ sim: { stepMs: 5 } });
});
afterAll(() => h.close());
afterEach(() => {
  h.sim.rbac.clear();
  h.sim.faults.clear();
  h.sim.resumeControllers();
});

let n = 0;
function addVM(): string {
  const name = `norbac-${++n}`;
  h.sim.store.addVM({ metadata: { name, namespace: 'default', labels: OPT_IN }, spec: { runStrategy: 'Halted' } });
  return name;
}
const watches = (name: string) =>
  h.sim.calls.filter((c) => c.verb === 'watch' && c.query?.fieldSelector === `metadata.name=${name}`);
const startPuts = (name: string) => h.sim.calls.filter((c) => c.subresource === 'start' && c.name === name);

test('a watch refused from the start: failed/Refused with the API server message, one watch request, no retries', async () => {
  const name = addVM();
  h.sim.rbac.deny({ verb: 'watch', group: 'kubevirt.io', resource: 'virtualmachines' });
  h.sim.pauseControllers();
  const res = await h.send('io.virtwake.vm.start', { name, wait: { timeoutSeconds: 30 } }, { id: `refused-${name}` });
  expect(res.status).toBe(200);
  expect(res.headers['ce-type']).toBe('io.virtwake.vm.start.failed');
  const data = replyData(res);
  expect(data).toMatchObject({ outcome: 'failed', reason: 'Refused' });
  expect(data.message).toContain(FORBIDDEN(name));
  expect(Buffer.byteLength(res.text)).toBeLessThanOrEqual(700);
  // The status code was seen once; one more request read its Status body (client-node's Watch drops it).
  expect(watches(name).map((c) => c.status)).toEqual([403, 403]);
  expect(startPuts(name)).toHaveLength(1);

  // Recorded as the request's outcome: a redelivery is answered the same, without a second start.
  const again = await h.send('io.virtwake.vm.start', { name, wait: { timeoutSeconds: 30 } }, { id: `refused-${name}` });
  expect(again.headers['ce-type']).toBe('io.virtwake.vm.start.failed');
  expect(replyData(again)).toMatchObject({ reason: 'Refused' });
  expect(startPuts(name)).toHaveLength(1);
});

test('a watch refused on resume (the grant taken away mid-wait): failed/Refused, not a retry loop', async () => {
  const name = addVM();
  h.sim.pauseControllers();
  // The first stream ends after one event, as a stream the server closes does.
  h.sim.faults.add({ method: 'GET', path: `watch=.*metadata\\.name%3D${name}(&|$)`, watchEndAfterEvents: 1, times: 1 });
  // supertest sends on then(): start it now.
  const pending = h.send('io.virtwake.vm.start', { name, wait: { timeoutSeconds: 30 } }).then((r) => r);
  const opened = await (async () => {
    for (let i = 0; i < 500 && watches(name).length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    return watches(name).length;
  })();
  expect(opened).toBe(1);
  h.sim.rbac.deny({ verb: 'watch', group: 'kubevirt.io', resource: 'virtualmachines', namespace: 'default' });
  h.sim.store.updateVM('default', name, (vm) => {
    vm.metadata.annotations = { ...vm.metadata.annotations, touched: 'yes' };
  });
  const res = await pending;
  expect(res.headers['ce-type']).toBe('io.virtwake.vm.start.failed');
  expect(replyData(res)).toMatchObject({ reason: 'Refused' });
  expect(replyData(res).message).toContain(FORBIDDEN(name));
  expect(watches(name).map((c) => c.status)).toEqual([200, 403, 403]);
});

test('readiness stays up (commands without wait still work) and names the refused watch', async () => {
  const name = addVM();
  h.sim.rbac.deny({ verb: 'watch', group: 'kubevirt.io', resource: 'virtualmachines' });
  h.sim.pauseControllers();
  await h.send('io.virtwake.vm.start', { name, wait: { timeoutSeconds: 30 } });
  const ready = await fetch(`http://127.0.0.1:${(h.app.server.address() as { port: number }).port}/health/readiness`);
  expect(ready.status).toBe(200);
  expect(await ready.text()).toContain(`cannot watch resource "virtualmachines"`);
  // Once a watch of virtualmachines in the namespace is allowed again, the note goes.
  h.sim.rbac.clear();
  h.sim.resumeControllers();
  const other = addVM();
  const ok = await h.send('io.virtwake.vm.start', { name: other, wait: { timeoutSeconds: 30 } });
  expect(ok.headers['ce-type']).toBe('io.virtwake.vm.start.completed');
  const after = await fetch(`http://127.0.0.1:${(h.app.server.address() as { port: number }).port}/health/readiness`);
  expect([after.status, await after.text()]).toEqual([200, 'ready']);
});
