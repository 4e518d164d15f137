// Demo VMs for `--demo` and `npm run dev`: one per runStrategy, all opted in to virtwake
// in namespace default, plus one VM that is not.

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
