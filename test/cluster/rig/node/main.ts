// The rig's node: what a cluster's nodes and its non-API controllers do for the programs the
// rig runs (workloads.ts: Deployments and Knative Services into pods; pods.ts: the kubelet;
// services.ts: kube-proxy, endpoints, cluster DNS; network.ts: the pod network).
// `tsx test/cluster/rig/node/main.ts CONFIG.json`; prints one line `{"ready":true}` once its
// informers have synced. SIGTERM stops every pod and removes the pod network.

import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Informer } from '../../../../simulator/rig/informer';
import { Kube } from '../../../../simulator/rig/kube';
import { aggregate } from './aggregation';
import { GarbageCollector } from './gc';
import { createBridge, removeNetwork, type NetworkSpec } from './network';
import { ServiceNetwork } from './services';
import { Workloads } from './workloads';

export interface NodeConfig {
  dir: string;
  /** The API as this process reaches it, and as pods reach it (the bridge address). */
  server: string;
  podServer: string;
  ca: string;
  adminCert: string;
  adminKey: string;
  network: NetworkSpec;
  /** image → argv; an image is matched exactly, or by repository when the key ends in ':*'. */
  programs: Record<string, string[]>;
}

export function programFor(programs: Record<string, string[]>, image: string): string[] | undefined {
  if (programs[image]) return programs[image];
  const repo = image.replace(/[:@].*$/, '');
  return programs[`${repo}:*`];
}

async function main(): Promise<void> {
  const cfg = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as NodeConfig;
  const kube = new Kube({ server: cfg.server, ca: cfg.ca, cert: cfg.adminCert, key: cfg.adminKey });
  const log = (m: string) => process.stderr.write(`${new Date().toISOString()} ${m}\n`);
  createBridge(cfg.network);
  const workloads = new Workloads(
    {
      kube,
      dir: cfg.dir,
      server: cfg.podServer,
      caData: readFileSync(cfg.ca).toString('base64'),
      programFor: (image) => programFor(cfg.programs, image),
      log,
    },
    cfg.network,
  );
  const api = new URL(cfg.server);
  const services = new ServiceNetwork(kube, cfg.network, () => workloads.pods(), log, {
    host: api.hostname,
    port: Number(api.port),
  });

  // One reconcile at a time per owner kind: a burst of changes ends in the last state.
  const serial = (fn: () => Promise<void>) => {
    let chain = Promise.resolve();
    return () => {
      chain = chain.then(fn).catch((e) => {
        log(`reconcile: ${(e as Error).message}`);
      });
    };
  };
  const deployments: Informer<any> = new Informer(kube, '/apis/apps/v1/deployments', () => syncDeployments());
  const ksvcs: Informer<any> = new Informer(kube, '/apis/serving.knative.dev/v1/services', () => syncKsvcs());
  const svcs: Informer<any> = new Informer(kube, '/api/v1/services', (k, o) => {
    services.serviceChanged(k, o);
    syncNetwork();
  });
  const syncDeployments = serial(async () => {
    for (const d of deployments.list())
      await workloads.deploymentChanged(`${d.metadata.namespace}/${d.metadata.name}`, d);
    for (const key of gone(deployments, 'Deployment')) await workloads.deploymentChanged(key, undefined);
  });
  const syncKsvcs = serial(async () => {
    for (const s of ksvcs.list()) await workloads.serviceChanged(`${s.metadata.namespace}/${s.metadata.name}`, s);
    for (const key of gone(ksvcs, 'KnativeService')) await workloads.serviceChanged(key, undefined);
  });
  const syncNetwork = serial(() => services.sync());
  const clusterRoles: Informer<any> = new Informer(kube, '/apis/rbac.authorization.k8s.io/v1/clusterroles', () =>
    syncRoles(),
  );
  const syncRoles = serial(() => aggregate(kube, clusterRoles));
  const gone = (inf: Informer<any>, kind: string) =>
    workloads
      .owners()
      .filter((o) => o.startsWith(`${kind}:`) && !inf.get(o.slice(kind.length + 1)))
      .map((o) => o.slice(kind.length + 1));
  workloads.onPodsChanged = () => {
    services.writeDns();
    syncNetwork();
    syncDeployments();
    syncKsvcs();
  };
  await clusterRoles.start();
  await svcs.start();
  await deployments.start();
  await ksvcs.start();
  syncDeployments();
  syncKsvcs();
  const gc = new GarbageCollector(kube, log);
  gc.start();
  process.stdout.write(`${JSON.stringify({ ready: true })}\n`);

  const stop = () => {
    for (const inf of [deployments, ksvcs, svcs, clusterRoles]) inf.stop();
    gc.stop();
    const netnses = workloads.netnses();
    workloads.stopAll();
    services.close();
    // Give the pods their SIGTERM grace, then take the network down with them.
    setTimeout(() => {
      removeNetwork(cfg.network, netnses);
      writeFileSync(path.join(cfg.dir, 'node.stopped'), '');
      process.exit(0);
    }, 2000);
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
