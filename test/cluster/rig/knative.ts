// Knative on the rig: Eventing's own release manifests (from the module cache, at the version
// knative/go.mod pins) applied to the real API, its programs run as pods by the node stand-in
// (node/), Serving's Service CRD and aggregated roles with the node standing in for Serving,
// then virtwake's knative/ kustomization as shipped. What stands in for what is listed in
// README.md ("The control-plane rig").

import { execFileSync, spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { loadAll } from 'js-yaml';
import { kustomizeCommand } from '../../knative/manifests';
import { ensureBundle } from '../../ship/program';
import { ensureKnativeBinaries } from './build';
import type { TestKube } from './cluster';
import { applyManifests, conditionTrue, readManifests, until } from './manifests';
import { removeNetwork, type NetworkSpec } from './node/network';
import type { NodeConfig } from './node/main';

const REPO = path.join(__dirname, '../../..');
export const EVENTING_NS = 'knative-eventing';

/** Eventing's manifests the rig installs: core, the InMemoryChannel, the MT channel-based Broker. */
function eventingFiles(dir: string): string[] {
  const c = (p: string) => path.join(dir, 'config', p);
  const yamls = (d: string) =>
    readdirSync(c(d))
      .filter((f) => f.endsWith('.yaml'))
      .map((f) => path.join(c(d), f));
  return [
    ...yamls('core'),
    ...yamls('core/configmaps'),
    ...yamls('core/resources'),
    ...yamls('core/roles'),
    ...yamls('core/webhooks'),
    c('core/deployments/controller.yaml'),
    c('core/deployments/webhook.yaml'),
    c('core/deployments/pingsource-mt-adapter.yaml'),
    ...yamls('channels/in-memory-channel'),
    ...yamls('channels/in-memory-channel/configmaps'),
    ...yamls('channels/in-memory-channel/resources'),
    ...yamls('channels/in-memory-channel/roles'),
    ...yamls('channels/in-memory-channel/webhooks'),
    ...yamls('channels/in-memory-channel/deployments'),
    ...yamls('brokers/mt-channel-broker/roles'),
    c('brokers/mt-channel-broker/deployments/controller.yaml'),
    c('brokers/mt-channel-broker/deployments/broker-ingress.yaml'),
    c('brokers/mt-channel-broker/deployments/broker-filter.yaml'),
  ];
}

/**
 * The controller's Deployment reads image names from two ConfigMaps that Eventing's config/
 * does not carry (its release pipeline adds them); without them the kubelet would not start the
 * container. Empty names: the rig uses no IntegrationSource, IntegrationSink or EventTransform.
 */
function imageConfigMaps(): any[] {
  return ['eventing-integrations-images', 'eventing-transformations-images'].map((name) => ({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name, namespace: EVENTING_NS },
    data: Object.fromEntries(
      (name.includes('integrations')
        ? [
            'timer-source',
            'aws-s3-source',
            'aws-sqs-source',
            'aws-ddb-streams-source',
            'log-sink',
            'aws-s3-sink',
            'aws-sqs-sink',
            'aws-sns-sink',
          ]
        : ['transform-jsonata']
      ).map((k) => [k, '']),
    ),
  }));
}

export interface KnativeState {
  nodePid: number;
  network: NetworkSpec;
  timings: Record<string, number>;
}

export interface KnativeInput {
  dir: string;
  server: string;
  podServer: string;
  pki: { ca: string; adminCert: string; adminKey: string };
  network: NetworkSpec;
  kube: TestKube;
  log: (m: string) => void;
}

export async function startKnative(k: KnativeInput, pids: number[]): Promise<KnativeState> {
  const timings: Record<string, number> = {};
  let t = Date.now();
  const lap = (name: string) => {
    timings[name] = Date.now() - t;
    t = Date.now();
  };
  const bins = ensureKnativeBinaries(k.log);
  await ensureBundle();
  lap('knative-build');

  const serving = (p: string) => path.join(bins.servingDir, 'config/core', p);
  await applyManifests(
    k.kube,
    readManifests([
      serving('300-resources/service.yaml'),
      serving('200-roles/addressable-resolvers-clusterrole.yaml'),
      serving('200-roles/podspecable-bindings-clusterrole.yaml'),
    ]).filter((d) => d.kind !== 'ClusterRole' || String(d.metadata.name).startsWith('knative-serving-')),
  );
  await applyManifests(k.kube, [...readManifests(eventingFiles(bins.eventingDir)), ...imageConfigMaps()]);
  lap('knative-manifests');

  const programs: Record<string, string[]> = Object.fromEntries(
    Object.entries(bins.byImage).map(([image, file]) => [image, [file]]),
  );
  programs['ghcr.io/virtwake/virtwake:*'] = [process.execPath, path.join(REPO, 'dist/virtwake.js')];
  const cfg: NodeConfig = {
    dir: k.dir,
    server: k.server,
    podServer: k.podServer,
    ca: k.pki.ca,
    adminCert: k.pki.adminCert,
    adminKey: k.pki.adminKey,
    network: k.network,
    programs,
  };
  mkdirSync(path.join(k.dir, 'pods'), { recursive: true });
  const cfgFile = path.join(k.dir, 'node.json');
  writeFileSync(cfgFile, JSON.stringify(cfg));
  const logFd = openSync(path.join(k.dir, 'node.log'), 'a');
  const node = spawn(
    process.execPath,
    [path.join(REPO, 'node_modules/tsx/dist/cli.mjs'), path.join(__dirname, 'node/main.ts'), cfgFile],
    { stdio: ['ignore', 'pipe', logFd], detached: true },
  );
  closeSync(logFd);
  pids.push(node.pid!);
  await new Promise<void>((resolve, reject) => {
    node.stdout!.on('data', (c: Buffer) => (c.toString().includes('"ready"') ? resolve() : undefined));
    node.once('exit', (code) => reject(new Error(`rig node exited with ${code}; see ${path.join(k.dir, 'node.log')}`)));
  });
  node.stdout!.destroy();
  node.unref();
  lap('node');

  for (const d of [
    'eventing-webhook',
    'eventing-controller',
    'mt-broker-controller',
    'mt-broker-ingress',
    'mt-broker-filter',
    'imc-controller',
    'imc-dispatcher',
  ])
    await until(`Deployment ${EVENTING_NS}/${d} Available`, 180_000, async () => {
      const dep = await k.kube.get(`/apis/apps/v1/namespaces/${EVENTING_NS}/deployments/${d}`);
      return conditionTrue(dep, 'Available') ? true : undefined;
    });
  lap('knative-ready');

  await applyManifests(k.kube, virtwakeManifests());
  await until('Broker virtwake Ready', 120_000, async () => {
    const b = await k.kube.get('/apis/eventing.knative.dev/v1/namespaces/virtwake/brokers/virtwake');
    return conditionTrue(b, 'Ready') ? true : undefined;
  });
  lap('virtwake-applied');
  return { nodePid: node.pid!, network: k.network, timings };
}

/** knative/ rendered with kustomize, as `kubectl apply -k knative/` would send it. */
export function virtwakeManifests(): any[] {
  const [cmd, args] = kustomizeCommand();
  const out = execFileSync(cmd, [...args, path.join(REPO, 'knative')], { encoding: 'utf8' });
  return (loadAll(out) as any[]).filter((d) => d && d.kind);
}

/**
 * What the node leaves when it was killed instead of stopped: its pods' processes (their pids
 * are in pods/) and the pod network.
 */
export function stopKnative(dir: string, network: NetworkSpec): void {
  const podsDir = path.join(dir, 'pods');
  let files: string[] = [];
  try {
    files = readdirSync(podsDir).filter((f) => f.endsWith('.pid'));
  } catch {
    // no pods were started
  }
  for (const f of files) {
    try {
      process.kill(Number(readFileSync(path.join(podsDir, f), 'utf8')), 'SIGKILL');
    } catch {
      // already gone
    }
  }
  let netnses: string[] = [];
  try {
    netnses = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
      .split('\n')
      .map((l) => l.split(' ')[0]!)
      .filter((n) => n.startsWith(`vwkp${network.id}-`));
  } catch {
    // no ip command: nothing was made
  }
  removeNetwork(network, netnses);
}
