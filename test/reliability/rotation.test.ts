import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { dump, load } from 'js-yaml';
import request from 'supertest';
import { Harness, startHarness } from '../helpers/harness';

// Issue 12 §6: certificates and credentials change under a running instance. The
// simulator rotates its CA and serving certificate and drops every connection, as a
// kube-apiserver restarted with new certificates does. When the kubeconfig file is
// updated too (a mounted Secret), virtwake reads it again and recovers without a
// restart; when it is not, readiness fails so the pod is replaced, instead of
// 503 forever behind a green probe.

const OPT_IN = { 'virtwake.io/enabled': 'true' };
let h: Harness;

beforeEach(async () => {
  h = await startHarness({ sim: { stepMs: 5 } });
});
afterEach(() => h.close());

let n = 0;
function addVM(): string {
  const name = `rot-${++n}`;
  h.sim.store.addVM({ metadata: { name, namespace: 'default', labels: OPT_IN }, spec: { runStrategy: 'Halted' } });
  return name;
}

const readiness = () => request(h.app.server).get('/health/readiness');

test('a rotated CA whose kubeconfig is updated: the next command succeeds, no restart, readiness stays green', async () => {
  const before = await h.send('io.virtwake.vm.start', { name: addVM() });
  expect(before.status).toBe(200);
  await h.sim.rotateCertificates({ rewriteKubeconfig: true });
  const name = addVM();
  const after = await h.send('io.virtwake.vm.start', { name });
  expect([after.status, after.headers['ce-type']]).toEqual([200, 'io.virtwake.vm.start.accepted']);
  expect(h.sim.store.getVM('default', name)?.spec?.runStrategy).toBe('Always');
  // A wait's watch (client-node's own connections) takes the new configuration too.
  const waited = await h.send('io.virtwake.vm.stop', { name, wait: { timeoutSeconds: 20 } });
  expect([waited.status, waited.headers['ce-type']]).toEqual([200, 'io.virtwake.vm.stop.completed']);
  const ready = await readiness();
  expect([ready.status, ready.text]).toEqual([200, 'ready']);
});

test('a rotated CA the kubeconfig does not know: 503 for the event, and readiness turns false saying why', async () => {
  expect((await readiness()).status).toBe(200);
  await h.sim.rotateCertificates();
  const res = await h.send('io.virtwake.vm.start', { name: addVM() });
  expect(res.status).toBe(503);
  const ready = await readiness();
  expect(ready.status).toBe(503);
  expect(ready.text).toMatch(
    /^not ready: the API server still refuses virtwake after its kubeconfig and credentials were read again: /,
  );
  // The file is fixed later (the Secret reaches the pod): the instance recovers and is ready again.
  await h.sim.rotateCertificates({ rewriteKubeconfig: true });
  let ok = await h.send('io.virtwake.vm.start', { name: addVM() });
  for (let i = 0; i < 20 && ok.status !== 200; i++) {
    await new Promise((r) => setTimeout(r, 250));
    ok = await h.send('io.virtwake.vm.start', { name: addVM() });
  }
  expect(ok.status).toBe(200);
  expect((await readiness()).status).toBe(200);
});

describe('a token file rotated on disk while running', () => {
  // A kubeconfig whose user names a token file (kubectl's `tokenFile`; client-node's own spelling `token-file`),
  // as a projected service-account token or a mounted Secret is: the API server starts refusing the old token
  // (the simulator's control API rotates the one it accepts), the file gets the new one, and the next command
  // succeeds without a restart, the 401 having made virtwake read the file again.
  test.each(['tokenFile', 'token-file'])('%s: the 401 re-reads the file; the next command succeeds', async (field) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'virtwake-token-'));
    const tokenPath = path.join(dir, 'token');
    fs.writeFileSync(tokenPath, 'virtwake-test-token');
    const doc = load(h.sim.kubeconfig) as { users: { user: Record<string, unknown> }[] };
    delete doc.users[0].user.token;
    doc.users[0].user[field] = tokenPath;
    const kubeconfig = path.join(dir, 'kubeconfig');
    fs.writeFileSync(kubeconfig, dump(doc));
    const app = await h.replica({ KUBECONFIG: kubeconfig });

    const before = await h.send('io.virtwake.vm.start', { name: addVM() }, { to: app });
    expect([before.status, before.headers['ce-type']]).toEqual([200, 'io.virtwake.vm.start.accepted']);

    fs.writeFileSync(tokenPath, 'rotated-token');
    await request(h.sim.url)
      .post('/_sim/token')
      .trustLocalhost()
      .ca(caOf(h.sim.kubeconfig))
      .send({ token: 'rotated-token' })
      .expect(200);
    const name = addVM();
    const after = await h.send('io.virtwake.vm.start', { name }, { to: app });
    expect([after.status, after.headers['ce-type']]).toEqual([200, 'io.virtwake.vm.start.accepted']);
    expect(h.sim.store.getVM('default', name)?.spec?.runStrategy).toBe('Always');
    const ready = await request(app.server).get('/health/readiness');
    expect([ready.status, ready.text]).toEqual([200, 'ready']);
  });
});

/** The simulator's CA from its kubeconfig, to call its control API over https. */
function caOf(kubeconfig: string): string {
  const doc = load(kubeconfig) as { clusters: { cluster: Record<string, string> }[] };
  return Buffer.from(doc.clusters[0].cluster['certificate-authority-data'], 'base64').toString('utf8');
}
