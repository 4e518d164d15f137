// Demo VMs for `--demo` and `npm run dev`: one per runStrategy, all opted in to virtwake
// in namespace default, plus one VM that is not. `reporting` sits behind a Service whose guest
// the simulator runs: it listens 10 s (simulator clock) after its VMI runs, as a guest without
// a readinessProbe does on a real cluster, and it takes 10 s to shut down.

import { GUEST_LISTEN_DELAY_ANNOTATION } from './services';
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
  const reporting = vm('reporting', 'Halted', {
    annotations: { 'virtwake.io/idle-timeout': '30m', [GUEST_LISTEN_DELAY_ANNOTATION]: '10' },
  });
  reporting.spec = {
    ...reporting.spec,
    template: {
      metadata: { labels: { 'kubevirt.io/vm': 'reporting' } },
      spec: {
        terminationGracePeriodSeconds: 10,
        domain: { devices: {}, resources: { requests: { memory: '128Mi' } } },
      },
    },
  };
  store.addVM(reporting, { running: false });
  store.addVM(
    {
      metadata: { name: 'unmanaged', namespace: 'default', labels: { app: 'unmanaged' } },
      spec: { runStrategy: 'Manual' },
    },
    { running: false },
  );
}

/** The demo's guest Service for `reporting`; resolves to the port the guest listens on once up. */
export async function seedDemoGuest(store: SimStore): Promise<number | undefined> {
  await store.addGuestService('default', 'reporting', { vmName: 'reporting', port: 80, guest: true });
  return store.guestPort('default', 'reporting');
}

/** Demo VMs with a web server in the guest, fronted by a Service, for the wake proxy. */
export const DEMO_WEB_VMS = ['web-shop', 'wiki'];

/**
 * Stopped, opted-in VMs with a 1m idle timeout (the reaper puts them to sleep a minute after
 * their last use), each behind a Service whose guest web server the simulator runs: it
 * listens only while the VM runs, so the wake proxy reaches it only after waking the VM.
 * Returns the wake proxy's routes file: /<vm>/… goes to that VM's Service, prefix stripped.
 */
export async function seedDemoWeb(store: SimStore): Promise<string> {
  const routes: string[] = ['routes:'];
  for (const name of DEMO_WEB_VMS) {
    store.addVM(vm(name, 'Halted', { annotations: { 'virtwake.io/idle-timeout': '1m' } }), { running: false });
    await store.addGuestService('default', name, { vmName: name, port: 80, guest: true });
  }
  for (const name of DEMO_WEB_VMS)
    routes.push(
      `  - pathPrefix: /${name}`,
      '    stripPrefix: true',
      `    vm: {namespace: default, name: ${name}}`,
      `    service: {name: ${name}, port: 80}`,
    );
  return routes.join('\n') + '\n';
}
