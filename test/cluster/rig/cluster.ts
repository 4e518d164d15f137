// The rig: etcd and kube-apiserver on loopback, KubeVirt's CRDs, virtwake's Role and a
// ServiceAccount token, and the simulator in rig mode as KubeVirt's controllers and
// virt-api behind an APIService. start() returns a RigState written to a file so the
// test files (jest workers) and the teardown can find it.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { load, loadAll } from 'js-yaml';
import { Kube } from '../../../simulator/rig/kube';
import { ensureBinaries } from './build';
import { kubevirtCRDs } from './crds';
import { startKnative, stopKnative, type KnativeState } from './knative';
import { hostIP, networkFor } from './node/network';
import { apply, applyManifests, conditionTrue, until } from './manifests';
import { createPki, type Pki } from './pki';
import { startRigSimulator } from './sim-process';

const REPO = path.join(__dirname, '../../..');
/**
 * Where the tests run virtwake themselves (not through Knative). Not `virtwake`: knative/ is
 * installed there, and its reaper (a real PingSource) and ApiServerSource would act on these
 * VMs too, so a scenario could not count what its own virtwake did.
 */
export const VIRTWAKE_NS = 'virtwake-direct';

export interface RigState {
  dir: string;
  server: string;
  pki: Pki;
  /** kubeconfig with the virtwake ServiceAccount's token: what virtwake runs with. */
  virtwakeKubeconfig: string;
  virtwakeToken: string;
  etcdUrl: string;
  /** The network namespace standing in for the pod network, and the "pod IP" inside it. */
  netns: string;
  podIP: string;
  pids: number[];
  timings: Record<string, number>;
  /** Knative Eventing on the rig (knative.ts): the node stand-in and its pod network. */
  knative: KnativeState;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

/** Output straight to a file, not a pipe: the rig outlives the process that started it only through files. */
function run(bin: string, args: string[], logFile: string, env: NodeJS.ProcessEnv = process.env): ChildProcess {
  const fd = openSync(logFile, 'a');
  const child = spawn(bin, args, { stdio: ['ignore', fd, fd], env, detached: true });
  closeSync(fd);
  child.unref();
  return child;
}

/** The admin client as tests use it: answers are untyped JSON. */
export interface TestKube {
  request(method: string, path: string, body?: unknown, contentType?: string): Promise<any>;
  get(path: string): Promise<any>;
}

export function adminKube(state: Pick<RigState, 'server' | 'pki'>): TestKube {
  return new Kube({ server: state.server, ca: state.pki.ca, cert: state.pki.adminCert, key: state.pki.adminKey });
}

export function kubeconfigFor(server: string, caFile: string, token: string): string {
  const ca = readFileSync(caFile).toString('base64');
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    `- name: rig`,
    `  cluster: {server: "${server}", certificate-authority-data: "${ca}"}`,
    'users:',
    `- name: sa`,
    `  user: {token: "${token}"}`,
    'contexts:',
    `- name: rig`,
    `  context: {cluster: rig, user: sa, namespace: ${VIRTWAKE_NS}}`,
    'current-context: rig',
    '',
  ].join('\n');
}

export async function serviceAccountToken(kube: TestKube, ns: string, name: string): Promise<string> {
  const tr = await kube.request('POST', `/api/v1/namespaces/${ns}/serviceaccounts/${name}/token`, {
    apiVersion: 'authentication.k8s.io/v1',
    kind: 'TokenRequest',
    spec: { expirationSeconds: 3600 },
  });
  return tr.status.token as string;
}

/** virtwake's Role, RoleBinding and ServiceAccount from knative/rbac.yaml, as shipped. */
export function shippedRbac(): any[] {
  return (loadAll(readFileSync(path.join(REPO, 'knative/rbac.yaml'), 'utf8')) as any[]).filter(Boolean);
}

export async function applyRbac(kube: TestKube, ns: string, docs: any[]): Promise<void> {
  for (const d of docs) {
    const obj = { ...d, metadata: { ...d.metadata, namespace: ns } };
    const coll =
      d.kind === 'ServiceAccount'
        ? `/api/v1/namespaces/${ns}/serviceaccounts`
        : `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/${d.kind === 'Role' ? 'roles' : 'rolebindings'}`;
    if (d.kind === 'RoleBinding') obj.subjects = d.subjects.map((s: any) => ({ ...s, namespace: ns }));
    await apply(kube, coll, obj);
  }
}

export async function startRig(dir: string, log: (m: string) => void = () => undefined): Promise<RigState> {
  const pids: number[] = [];
  try {
    return await startRigProcesses(dir, log, pids);
  } catch (e) {
    // A rig that did not come up leaves nothing running.
    await stopRig({ pids: [...pids].reverse() });
    removePodNetwork(`vwrig${process.pid % 100000}`);
    stopKnative(dir, networkFor(process.pid));
    throw e;
  }
}

async function startRigProcesses(dir: string, log: (m: string) => void, pids: number[]): Promise<RigState> {
  const timings: Record<string, number> = {};
  let t = Date.now();
  const lap = (k: string) => {
    timings[k] = Date.now() - t;
    t = Date.now();
  };
  mkdirSync(dir, { recursive: true });
  const bins = ensureBinaries(log);
  lap('build');
  // The API is also reached from the pod network's bridge (Knative's programs run as pods there).
  const network = networkFor(process.pid);
  const pki = createPki(dir, [hostIP(network)]);
  lap('pki');

  const [etcdClient, etcdPeer, apiPort] = await Promise.all([freePort(), freePort(), freePort()]);
  const etcdUrl = `http://127.0.0.1:${etcdClient}`;
  const etcd = run(
    bins.etcd,
    [
      '--name=rig',
      `--data-dir=${path.join(dir, 'etcd')}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-cluster=rig=http://127.0.0.1:${etcdPeer}`,
      '--log-level=warn',
      // The rig compacts by hand (410 scenarios); nothing else should.
      '--auto-compaction-retention=0',
    ],
    path.join(dir, 'etcd.log'),
  );
  pids.push(etcd.pid!);
  await until('etcd', 60_000, async () => ((await fetch(`${etcdUrl}/health`)).ok ? true : undefined));
  lap('etcd');

  const server = `https://127.0.0.1:${apiPort}`;
  const apiserver = run(
    bins.kubeApiserver,
    [
      `--etcd-servers=${etcdUrl}`,
      // Every address: Knative's pods reach the API at the bridge's host address.
      '--bind-address=0.0.0.0',
      '--advertise-address=127.0.0.1',
      `--secure-port=${apiPort}`,
      `--tls-cert-file=${pki.apiserverCert}`,
      `--tls-private-key-file=${pki.apiserverKey}`,
      `--client-ca-file=${pki.ca}`,
      '--authorization-mode=Node,RBAC',
      `--service-account-issuer=https://kubernetes.default.svc`,
      `--service-account-key-file=${pki.saPub}`,
      `--service-account-signing-key-file=${pki.saKey}`,
      '--service-cluster-ip-range=10.96.0.0/16',
      // The aggregation layer: how kube-apiserver authenticates itself to virt-api.
      `--requestheader-client-ca-file=${pki.frontProxyCA}`,
      '--requestheader-allowed-names=front-proxy-client',
      '--requestheader-username-headers=X-Remote-User',
      '--requestheader-group-headers=X-Remote-Group',
      '--requestheader-extra-headers-prefix=X-Remote-Extra-',
      `--proxy-client-cert-file=${pki.frontProxyClientCert}`,
      `--proxy-client-key-file=${pki.frontProxyClientKey}`,
      // etcd compaction is the rig's to trigger (410 scenarios).
      '--etcd-compaction-interval=0',
      // VirtualMachine watches go straight to etcd, so a compaction makes an old resourceVersion 410 at once
      // (with the watch cache it would take minutes of churn to push it out of the cache's window).
      '--watch-cache-sizes=virtualmachines.kubevirt.io#0',
      '--v=1',
    ],
    path.join(dir, 'kube-apiserver.log'),
  );
  pids.push(apiserver.pid!);
  const kube = adminKube({ server, pki });
  await until('kube-apiserver /readyz', 180_000, async () =>
    (await kube.request('GET', '/readyz')) !== undefined ? true : undefined,
  );
  lap('kube-apiserver');

  await applyManifests(kube, [
    ...['kubevirt', VIRTWAKE_NS].map((name) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } })),
    ...kubevirtCRDs(),
  ]);
  lap('crds');

  await applyRbac(kube, VIRTWAKE_NS, shippedRbac());
  const token = await serviceAccountToken(kube, VIRTWAKE_NS, 'virtwake');
  const virtwakeKubeconfig = path.join(dir, 'virtwake.kubeconfig');
  writeFileSync(virtwakeKubeconfig, kubeconfigFor(server, pki.ca, token), { mode: 0o600 });
  lap('rbac');

  const { netns, podIP } = createPodNetwork(dir);
  lap('pod-network');

  const rigCfg = path.join(dir, 'rig-sim.json');
  writeFileSync(
    rigCfg,
    JSON.stringify({
      server,
      ca: pki.ca,
      adminCert: pki.adminCert,
      adminKey: pki.adminKey,
      servingCert: pki.virtApiCert,
      servingKey: pki.virtApiKey,
      frontProxyCA: pki.frontProxyCA,
      allowedNames: ['front-proxy-client'],
      port: 0,
      stepMs: 20,
      podIP,
    }),
  );
  const { port: simPort } = await startRigSimulator(rigCfg, path.join(dir, 'rig-sim.log'), (pid) => pids.push(pid));
  lap('rig-simulator');

  // virt-api as kube-apiserver finds it: a Service that resolves to loopback, and the APIService.
  await apply(kube, '/api/v1/namespaces/kubevirt/services', {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'virt-api', namespace: 'kubevirt' },
    spec: {
      type: 'ExternalName',
      externalName: 'localhost',
      ports: [{ name: 'https', port: simPort, protocol: 'TCP' }],
    },
  });
  await apply(kube, '/apis/apiregistration.k8s.io/v1/apiservices', {
    apiVersion: 'apiregistration.k8s.io/v1',
    kind: 'APIService',
    metadata: { name: 'v1.subresources.kubevirt.io' },
    spec: {
      group: 'subresources.kubevirt.io',
      version: 'v1',
      service: { namespace: 'kubevirt', name: 'virt-api', port: simPort },
      caBundle: readFileSync(pki.ca).toString('base64'),
      groupPriorityMinimum: 1000,
      versionPriority: 15,
    },
  });
  await until('APIService v1.subresources.kubevirt.io Available', 90_000, async () => {
    const s = await kube.request('GET', '/apis/apiregistration.k8s.io/v1/apiservices/v1.subresources.kubevirt.io');
    return conditionTrue(s, 'Available') || undefined;
  });
  lap('apiservice');

  const knative = await startKnative(
    {
      dir,
      server,
      podServer: `https://${hostIP(network)}:${apiPort}`,
      pki,
      network,
      kube,
      log,
    },
    pids,
  );
  Object.assign(timings, knative.timings);

  return {
    knative,
    dir,
    server,
    pki,
    virtwakeKubeconfig,
    virtwakeToken: token,
    etcdUrl,
    netns,
    podIP,
    pids: [...pids].reverse(),
    timings,
  };
}

/**
 * A network namespace joined to this one by a veth pair: the rig's stand-in for the pod network.
 * The real apiserver refuses loopback addresses in EndpointSlices, so a VM's "pod IP" must be
 * another address, and the only other addresses a test may use are those it made itself.
 */
function createPodNetwork(dir: string): { netns: string; podIP: string } {
  const id = String(process.pid % 100000);
  const netns = `vwrig${id}`;
  // 10.213.x.y/30 per rig, from the pid, so rigs of several checkouts do not collide.
  const x = (process.pid >> 6) % 250;
  const y = (process.pid % 64) * 4;
  const host = `10.213.${x}.${y + 1}`;
  const podIP = `10.213.${x}.${y + 2}`;
  const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    ip('netns', 'add', netns);
    ip('link', 'add', `vwh${id}`, 'type', 'veth', 'peer', 'name', `vwn${id}`);
    ip('link', 'set', `vwn${id}`, 'netns', netns);
    ip('addr', 'add', `${host}/30`, 'dev', `vwh${id}`);
    ip('link', 'set', `vwh${id}`, 'up');
    ip('netns', 'exec', netns, 'ip', 'addr', 'add', `${podIP}/30`, 'dev', `vwn${id}`);
    ip('netns', 'exec', netns, 'ip', 'link', 'set', `vwn${id}`, 'up');
    ip('netns', 'exec', netns, 'ip', 'link', 'set', 'lo', 'up');
  } catch (e) {
    removePodNetwork(netns);
    const why = (e as { stderr?: Buffer }).stderr?.toString().trim() || (e as Error).message;
    throw new Error(`rig: cannot make the pod network (ip netns and a veth pair, as root): ${why}`, { cause: e });
  }
  writeFileSync(path.join(dir, 'pod-network'), `${netns} ${host} ${podIP}\n`);
  return { netns, podIP };
}

export function removePodNetwork(netns: string): void {
  try {
    // Deleting the namespace deletes the veth pair with it.
    execFileSync('ip', ['netns', 'del', netns], { stdio: 'ignore' });
  } catch {
    // already gone
  }
}

export const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Stop each process in turn (virt-api, kube-apiserver, etcd): SIGTERM, then SIGKILL after a few seconds. */
export async function stopRig(state: Pick<RigState, 'pids'>): Promise<void> {
  for (const pid of state.pids) {
    if (!alive(pid)) continue;
    process.kill(pid, 'SIGTERM');
    for (let i = 0; i < 30 && alive(pid); i++) await new Promise((r) => setTimeout(r, 100));
    // kube-apiserver can hang in its graceful shutdown once etcd is unreachable; nothing of the rig is worth keeping.
    if (alive(pid)) process.kill(pid, 'SIGKILL');
  }
}

export function readState(file: string): RigState {
  return load(readFileSync(file, 'utf8')) as RigState;
}
