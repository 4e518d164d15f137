import { Kube } from '../../simulator/rig/kube';
import { createVM, eventually, rig, send, startVirtwake, vmiPath, vmRunning, type Virtwake } from './helpers';

// Knative delivers at least once, to any replica (contract §6): the same restart delivered to
// two virtwake processes at once restarts the VM once. The claim is a real resourceVersion
// precondition on the real apiserver, so exactly one replica can win it.

const { state, kube } = rig();
let a: Virtwake;
let b: Virtwake;

beforeAll(async () => {
  [a, b] = await Promise.all([startVirtwake(state), startVirtwake(state)]);
});
afterAll(async () => {
  await a?.stop();
  await b?.stop();
});

test('one restart delivered to two replicas at once: one new VMI', async () => {
  const vm = 'redelivered-restart';
  await createVM(kube, vm, 'Always');
  await vmRunning(kube, vm);
  const first = await kube.get(vmiPath(vm));
  const before = first.metadata.uid;
  const created: string[] = [];
  const abort = new AbortController();
  const admin = new Kube({
    server: state.server,
    ca: state.pki.ca,
    cert: state.pki.adminCert,
    key: state.pki.adminKey,
  });
  void admin.watch(
    `${vmiPath()}?fieldSelector=metadata.name%3D${vm}`,
    first.metadata.resourceVersion,
    (e) => {
      if (e.type === 'ADDED') created.push((e.object as { metadata: { uid: string } }).metadata.uid);
    },
    abort.signal,
  );
  const id = `restart-${process.pid}`;
  const answers = await Promise.all([
    send(a, 'io.virtwake.vm.restart', { name: vm, wait: { timeoutSeconds: 60 } }, id),
    send(b, 'io.virtwake.vm.restart', { name: vm, wait: { timeoutSeconds: 60 } }, id),
  ]);
  // Each delivery is answered: completed, or 503 for Knative to redeliver (the other replica holds the claim).
  for (const r of answers) expect([200, 503]).toContain(r.status);
  expect(answers.some((r) => r.type === 'io.virtwake.vm.restart.completed')).toBe(true);
  const after = await eventually('a running VMI', async () => {
    const v = await kube.get(vmiPath(vm));
    return v?.status?.phase === 'Running' && v.metadata.uid !== before ? v : undefined;
  });
  // Redeliver once more after the dust settled: no second restart.
  const again = await send(a, 'io.virtwake.vm.restart', { name: vm, wait: { timeoutSeconds: 60 } }, id);
  expect(again.status).toBe(200);
  expect((await kube.get(vmiPath(vm))).metadata.uid).toBe(after.metadata.uid);
  // Exactly one VMI was created for the VM in all of this.
  await new Promise((r) => setTimeout(r, 500));
  abort.abort();
  expect(created).toEqual([after.metadata.uid]);
});
