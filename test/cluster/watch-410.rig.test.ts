import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { Kube, type WatchEvent } from '../../simulator/rig/kube';
import { kubeconfigFor } from './rig/cluster';
import { compactEtcd, startCutProxy, type CutProxy } from './rig/cut-proxy';
import {
  createVM,
  eventually,
  NS,
  rig,
  send,
  startVirtwake,
  vmiPath,
  vmPath,
  vmRunning,
  type Virtwake,
} from './helpers';

// A `wait` whose watch stream is cut while etcd has been compacted past the last
// resourceVersion virtwake saw: the resumed watch is answered 410 Gone by the real
// apiserver, and virtwake must read the VM again and keep waiting.

const { state, kube } = rig();
const HOLD = 'rig.virtwake.test/hold';
let proxy: CutProxy;
let vw: Virtwake;

beforeAll(async () => {
  proxy = await startCutProxy(new URL(state.server));
  const kubeconfig = path.join(state.dir, 'virtwake-via-proxy.kubeconfig');
  writeFileSync(kubeconfig, kubeconfigFor(proxy.url, state.pki.ca, state.virtwakeToken), { mode: 0o600 });
  vw = await startVirtwake(state, { KUBECONFIG: kubeconfig });
});
afterAll(async () => {
  await vw?.stop();
  await proxy?.close();
});

/** The first event a watch from `rv` delivers (an ERROR Status after compaction). */
async function firstWatchEvent(path: string, rv: string): Promise<WatchEvent> {
  const admin = new Kube({
    server: state.server,
    ca: state.pki.ca,
    cert: state.pki.adminCert,
    key: state.pki.adminKey,
  });
  const abort = new AbortController();
  return new Promise<WatchEvent>((resolve, reject) => {
    admin
      .watch(
        path,
        rv,
        (e) => {
          resolve(e);
          abort.abort();
        },
        abort.signal,
      )
      .catch(reject);
  });
}

test('stop with wait survives a cut stream and a 410 on resume', async () => {
  const vm = 'watch-410';
  await createVM(kube, vm, 'Always');
  await vmRunning(kube, vm);
  // Keep the VMI from going away until the test lets it, so the wait is still watching when the stream is cut.
  const vmi = await kube.get(vmiPath(vm));
  await kube.request(
    'PATCH',
    vmiPath(vm),
    { metadata: { finalizers: [...vmi.metadata.finalizers, HOLD] } },
    'application/merge-patch+json',
  );

  const answer = send(vw, 'io.virtwake.vm.stop', { name: vm, wait: { timeoutSeconds: 90 } });
  const stopping = await eventually('VM Stopping', async () => {
    const v = await kube.get(vmPath(vm));
    return v?.status?.printableStatus === 'Stopping' ? v : undefined;
  });
  // Let virtwake's watch see the Stopping status, then move etcd on and compact it past that revision.
  await new Promise((r) => setTimeout(r, 500));
  for (let i = 0; i < 5; i++)
    await kube.request('POST', `/api/v1/namespaces/${NS}/configmaps`, {
      metadata: { generateName: 'bump-' },
      data: { i: String(i) },
    });
  await compactEtcd(state.etcdUrl);
  // The resourceVersion virtwake last saw is now too old: the real apiserver says so.
  const probe = await firstWatchEvent(
    `${vmPath()}?fieldSelector=metadata.name%3D${vm}`,
    stopping.metadata.resourceVersion,
  );
  expect(probe.type).toBe('ERROR');
  expect(probe.object).toMatchObject({ kind: 'Status', code: 410, reason: 'Expired' });

  expect(proxy.cut()).toBeGreaterThan(0);
  // Release the VMI: the VM can now reach Stopped, which virtwake sees only if it recovered from the 410.
  await new Promise((r) => setTimeout(r, 1500));
  const held = await kube.get(vmiPath(vm));
  await kube.request(
    'PATCH',
    vmiPath(vm),
    { metadata: { finalizers: held.metadata.finalizers.filter((f: string) => f !== HOLD) } },
    'application/merge-patch+json',
  );
  const res = await answer;
  expect(res.type).toBe('io.virtwake.vm.stop.completed');
  expect(await kube.get(vmiPath(vm))).toBeUndefined();
});
