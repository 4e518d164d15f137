// `npm run dev`: the KubeVirt API simulator with demo VMs, and the virtwake
// functions wired to it through a kubeconfig, on http://localhost:8080.
// Prints every VM state change so you can watch an event take effect.
import { KubeConfig, Watch } from '@kubernetes/client-node';
import { seedDemo, seedDemoGuest, startSimulator } from '../simulator';
import { createApp } from '../functions/app';
import type { VirtualMachine } from '../functions/runtime/kubevirt-types';

async function main(): Promise<void> {
  const port = Number(process.env.PORT ?? 8080);
  // Slow enough to see Starting before Running.
  const sim = await startSimulator({
    tls: true,
    token: 'virtwake-dev',
    stepMs: Number(process.env.SIM_STEP_MS ?? 500),
    snapshotStepMs: 500,
  });
  seedDemo(sim.store);
  const guestPort = await seedDemoGuest(sim.store);
  const app = await createApp({
    env: { VIRTWAKE_NAMESPACE: 'default', LOG_LEVEL: 'info', ...process.env, KUBECONFIG: sim.kubeconfigPath },
  });
  await new Promise<void>((resolve) => app.server.listen(port, resolve));

  const vms = sim.store.listVMs().filter((vm) => vm.metadata.namespace === 'default');
  console.log(`
virtwake dev
  functions:          http://localhost:${port}/   (POST CloudEvents here)
  KubeVirt simulator: ${sim.url}   (kubeconfig: ${sim.kubeconfigPath})
  guest of reporting: 127.0.0.1:${guestPort}   (listens 10 s after the VM runs, like a guest without readinessProbe)
  demo VMs (namespace default):
${vms.map((vm) => `    ${vm.metadata.name.padEnd(14)} runStrategy=${String(vm.spec?.runStrategy ?? (vm.spec?.running ? 'Always' : 'Halted')).padEnd(15)} opted-in=${vm.metadata.labels?.['virtwake.io/enabled'] === 'true'}`).join('\n')}

Try, in another terminal:
  scripts/send-event.sh io.virtwake.vm.start '{"name":"legacy-erp","wait":{"timeoutSeconds":30}}'
  scripts/send-event.sh io.virtwake.vm.stop '{"name":"legacy-erp"}'
  scripts/send-event.sh io.virtwake.vm.start '{"name":"always-on"}'      # completed/AlreadyInState: VM is already running
  scripts/send-event.sh io.virtwake.vm.restart '{"name":"batch-once"}'   # failed/Refused: Once does not support manual restart
  scripts/send-event.sh io.virtwake.vm.start '{"name":"unmanaged"}'      # 403: not opted in
Ctrl-C stops everything.
`);

  await followStates(sim.kubeconfigPath);

  const stop = async () => {
    await app.close();
    await sim.close();
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

/** Print "vm: Stopped -> Starting" lines from a real watch on the simulator. */
async function followStates(kubeconfigPath: string): Promise<void> {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  const last = new Map<string, string>();
  const watch = new Watch(kc);
  const start = () =>
    watch.watch(
      '/apis/kubevirt.io/v1/namespaces/default/virtualmachines',
      {},
      (_type, obj: unknown) => {
        const vm = obj as VirtualMachine | undefined;
        const name = vm?.metadata?.name ?? '';
        const state = `${vm?.status?.printableStatus ?? 'Unknown'}${vm?.status?.ready ? ' (ready)' : ''}`;
        const before = last.get(name);
        if (before !== undefined && before !== state) console.log(`[vm] ${name}: ${before} -> ${state}`);
        last.set(name, state);
      },
      () => setTimeout(start, 500),
    );
  await start();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
