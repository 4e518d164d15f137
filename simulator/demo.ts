// Demo VMs for `--demo` and `npm run dev`: one per runStrategy, all opted in to virtwake
// in namespace default, plus one VM that is not.

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { SimStore, VMInput } from './sim-store';

const OPT_IN = { 'virtwake.io/enabled': 'true' };

function vm(name: string, runStrategy: string, extra: Partial<VMInput['metadata']> = {}): VMInput {
  return {
    metadata: {
      name,
      namespace: 'default',
      labels: { ...OPT_IN, app: name, ...(extra.labels ?? {}) },
      annotations: { ...(extra.annotations ?? {}) },
    },
    spec: { runStrategy },
  };
}

export const DEMO_VM_NAMES = [
  'legacy-erp',
  'build-runner',
  'always-on',
  'batch-once',
  'flaky-app',
  'reporting',
  'unmanaged',
];

export function seedDemo(store: SimStore): void {
  store.addVM(vm('legacy-erp', 'Halted'), { running: false });
  store.addVM(vm('build-runner', 'Manual'), { running: false });
  store.addVM(vm('always-on', 'Always'), { running: true, agentConnected: true });
  // A Once VM runs a single time; this one is mid-run, so stop/restart/start answers are all visible.
  store.addVM(vm('batch-once', 'Once'), { running: true });
  store.addVM(vm('flaky-app', 'RerunOnFailure'), { running: false });
  store.addVM(vm('reporting', 'Halted', { annotations: { 'virtwake.io/idle-timeout': '30m' } }), { running: false });
  store.addVM(
    {
      metadata: { name: 'unmanaged', namespace: 'default', labels: { app: 'unmanaged' } },
      spec: { runStrategy: 'Manual' },
    },
    { running: false },
  );
}

/** Demo VMs with a web server in the guest, fronted by a Service, for the wake proxy. */
export const DEMO_WEB_VMS = ['web-shop', 'wiki'];

export interface DemoWeb {
  /** The wake proxy's routes file content: /<vm>/… goes to that VM's Service, prefix stripped. */
  routes: string;
  close(): Promise<void>;
}

/**
 * Stopped, opted-in VMs with a 1m idle timeout (so the reaper puts them to sleep a minute
 * after their last use) and a Service each. Their "guest" is a tiny web server on loopback:
 * the simulator's EndpointSlice points at 127.0.0.1 and the Service's targetPort, and is ready
 * only while the VM runs, so the wake proxy reaches it only after waking the VM.
 */
export async function seedDemoWeb(store: SimStore): Promise<DemoWeb> {
  const guests: Server[] = [];
  const routes: string[] = ['routes:'];
  for (const name of DEMO_WEB_VMS) {
    const guest = createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(`hello from ${name}, a web server inside the VM (you asked for ${req.url})\n`);
    });
    await new Promise<void>((resolve) => guest.listen(0, '127.0.0.1', resolve));
    guests.push(guest);
    store.addVM(vm(name, 'Halted', { annotations: { 'virtwake.io/idle-timeout': '1m' } }), { running: false });
    store.addService('default', name, { vmName: name, port: 80, upstreamPort: (guest.address() as AddressInfo).port });
    routes.push(
      `  - pathPrefix: /${name}`,
      '    stripPrefix: true',
      `    vm: {namespace: default, name: ${name}}`,
      `    service: {name: ${name}, port: 80}`,
    );
  }
  return {
    routes: routes.join('\n') + '\n',
    close: async () => {
      await Promise.all(
        guests.map(
          (g) =>
            new Promise<void>((resolve) => {
              g.close(() => resolve());
              g.closeAllConnections();
            }),
        ),
      );
    },
  };
}
