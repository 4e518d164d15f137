// `npm run dev`: the whole product on this machine, no cluster. The KubeVirt API simulator
// with demo VMs (https, bearer token, through a kubeconfig like any cluster), the virtwake
// event functions on PORT (8080), and the wake proxy on PROXY_PORT (8081) in front of demo
// VMs that run a tiny web server. Prints every VM state change so you can watch a command
// take effect, a VM wake for a request, and the reaper put it back to sleep.
//
// The kubeconfig (it holds the simulator's token) and the routes file live in one temporary
// directory, removed when dev exits.
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Watch } from '@kubernetes/client-node';
import { seedDemo, seedDemoGuest, startSimulator, type Simulator } from '../simulator';
import { seedDemoWeb } from '../simulator/demo';
import { createApp, type App } from '../functions/app';
import { loadKubeConfig } from '../functions/runtime/kube/kubeconfig';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'virtwake-dev-'));
// Whatever way the process ends, the token does not stay behind.
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

const closers: (() => Promise<void>)[] = [];

async function main(): Promise<void> {
  const port = Number(process.env.PORT ?? 8080);
  const proxyPort = Number(process.env.PROXY_PORT ?? 8081);
  // Slow enough to see Starting before Running.
  const sim: Simulator = await startSimulator({
    tls: true,
    token: `virtwake-dev-${Math.random().toString(36).slice(2)}`,
    kubeconfigPath: path.join(tmp, 'kubeconfig'),
    stepMs: Number(process.env.SIM_STEP_MS ?? 500),
    snapshotStepMs: 500,
  });
  closers.unshift(() => sim.close());
  seedDemo(sim.store);
  const guestPort = await seedDemoGuest(sim.store);
  const routesFile = path.join(tmp, 'routes.yaml');
  fs.writeFileSync(routesFile, await seedDemoWeb(sim.store));

  const env = { VIRTWAKE_NAMESPACE: 'default', LOG_LEVEL: 'info', ...process.env, KUBECONFIG: sim.kubeconfigPath };
  const events = await createApp({ env });
  closers.unshift(() => events.close());
  const proxy = await createApp({
    env: { ...env, VIRTWAKE_FUNCTIONS: 'wake-proxy', VIRTWAKE_PROXY_ROUTES: routesFile },
  });
  closers.unshift(() => proxy.close());
  const eventsUrl = await listen(events, port);
  const proxyUrl = await listen(proxy, proxyPort);

  const vms = sim.store.listVMs('default');
  const row = (vm: (typeof vms)[number]) =>
    `    ${vm.metadata.name.padEnd(14)} runStrategy=${String(vm.spec?.runStrategy ?? (vm.spec?.running ? 'Always' : 'Halted')).padEnd(15)} opted-in=${String(vm.metadata.labels?.['virtwake.io/enabled'] === 'true').padEnd(6)}${vm.metadata.annotations?.['virtwake.io/idle-timeout'] ? ` idle-timeout=${vm.metadata.annotations['virtwake.io/idle-timeout']}` : ''}`.trimEnd();
  console.log(`
virtwake dev
  functions:          ${eventsUrl}   (POST CloudEvents here)
  wake proxy:         ${proxyUrl}   (/web-shop/… and /wiki/… go to those VMs' web servers)
  guest of reporting: 127.0.0.1:${guestPort}   (listens 10 s after the VM runs, like a guest without readinessProbe)
  KubeVirt simulator: ${sim.url}   (kubeconfig: ${sim.kubeconfigPath})
  health and metrics: /health/readiness, /health/liveness, /metrics on the functions port
  demo VMs (namespace default):
${vms.map(row).join('\n')}

Try, in another terminal:
  scripts/send-event.sh io.virtwake.vm.start '{"name":"legacy-erp","wait":{"timeoutSeconds":30}}' ${eventsUrl}
  scripts/send-event.sh io.virtwake.vm.stop '{"name":"legacy-erp"}' ${eventsUrl}
  scripts/send-event.sh io.virtwake.vm.start '{"name":"always-on"}' ${eventsUrl}      # completed/AlreadyInState: VM is already running
  scripts/send-event.sh io.virtwake.vm.restart '{"name":"batch-once"}' ${eventsUrl}   # failed/Refused: Once does not support manual restart
  scripts/send-event.sh io.virtwake.vm.start '{"name":"unmanaged"}' ${eventsUrl}      # 403: not opted in

Scale to zero: a request through the proxy wakes web-shop (stopped now) and waits for it:
  curl -i ${proxyUrl}/web-shop/
web-shop sleeps after 1 minute without requests, at the next reaper tick. Knative's
PingSource sends one every few minutes in a cluster; here, send it yourself after a minute:
  curl -i -X POST ${eventsUrl} -H 'ce-specversion: 1.0' -H "ce-id: tick-$(date +%s)" \\
    -H 'ce-source: /dev/pingsource' -H 'ce-type: dev.knative.sources.ping' \\
    -H 'content-type: application/json' -d '{}'
then curl the proxy again and watch it wake.
Ctrl-C stops everything and removes ${tmp}.
`);

  await followStates(sim.kubeconfigPath);
}

async function listen(app: App, port: number): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    app.server.once('error', reject);
    app.server.listen(port, resolve);
  });
  return `http://localhost:${(app.server.address() as AddressInfo).port}`;
}

/** Print "vm: Stopped -> Starting" lines from a real watch on the simulator. */
async function followStates(kubeconfigPath: string): Promise<void> {
  const { kubeConfig } = loadKubeConfig({ KUBECONFIG: kubeconfigPath });
  const last = new Map<string, string>();
  const watch = new Watch(kubeConfig);
  let stopped = false;
  let controller: AbortController | undefined;
  closers.unshift(async () => {
    stopped = true;
    controller?.abort();
  });
  const start = async () => {
    if (stopped) return;
    controller = await watch.watch(
      '/apis/kubevirt.io/v1/namespaces/default/virtualmachines',
      {},
      (_type, vm: { metadata?: { name?: string }; status?: { printableStatus?: string; ready?: boolean } }) => {
        const name = vm?.metadata?.name ?? '';
        const state = `${vm?.status?.printableStatus ?? 'Unknown'}${vm?.status?.ready ? ' (ready)' : ''}`;
        const before = last.get(name);
        if (before !== undefined && before !== state) console.log(`[vm] ${name}: ${before} -> ${state}`);
        last.set(name, state);
      },
      () => {
        if (!stopped) setTimeout(start, 500);
      },
    );
  };
  await start();
}

let stopping = false;
async function stop(code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  for (const close of closers) {
    try {
      await close();
    } catch (err) {
      console.error(err);
    }
  }
  fs.rmSync(tmp, { recursive: true, force: true });
  process.exit(code);
}
// `on`, not `once`: npm and tsx pass a Ctrl-C on as well, and a second signal must not cut the cleanup short.
process.on('SIGINT', () => void stop(0));
process.on('SIGTERM', () => void stop(0));

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  void stop(1);
});
