// The KubeVirt API simulator in a process of its own, so it never shares an
// event loop with the process being measured or with the load generator.
// Driven over the IPC channel by lib/sim.ts: it answers every message with
// { seq, ok, value?, error? }.

import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { startSimulator, type BulkVMInput, type EndpointSlice, type RecordedCall } from '../../simulator';

type Message =
  | { seq: number; op: 'addVMs'; vms: BulkVMInput[] }
  | {
      seq: number;
      op: 'addService';
      namespace: string;
      name: string;
      vmName: string;
      port: number;
      upstreamPort: number;
    }
  | { seq: number; op: 'addGuestService'; namespace: string; name: string; vmName: string; port: number }
  | { seq: number; op: 'setReadinessGateDelay'; ms: number }
  | { seq: number; op: 'wakeTimes'; vm: string }
  | { seq: number; op: 'settle' }
  | { seq: number; op: 'calls' }
  | { seq: number; op: 'resetCalls' }
  | { seq: number; op: 'close' };

async function main(): Promise<void> {
  const token = 'virtwake-bench-token';
  // --plain: HTTP instead of HTTPS, to tell the cost of TLS apart (cold start).
  const sim = await startSimulator({ tls: !process.argv.includes('--plain'), token });
  const send = (m: unknown) => process.send?.(m);
  // What the simulated VM itself needs to wake (the ladder bench): from the moment the
  // simulator received the unpause or start until its Service's endpoint is ready again.
  // Epoch milliseconds with sub-millisecond precision, comparable across processes on one machine.
  const clock = () => performance.timeOrigin + performance.now();
  const wakeCalls = new Map<string, number>();
  const endpointReady = new Map<string, number>();
  const record = sim.calls.push.bind(sim.calls);
  sim.calls.push = (...calls: RecordedCall[]) => {
    for (const c of calls)
      if (c.name && (c.subresource === 'unpause' || c.subresource === 'start')) wakeCalls.set(c.name, clock());
    return record(...calls);
  };
  sim.store.raw.subscribe((e) => {
    if (e.resource.kind !== 'EndpointSlice') return;
    const slice = e.object as EndpointSlice;
    const svc = slice.metadata.labels?.['kubernetes.io/service-name'];
    const ready = !!slice.endpoints?.some((x) => x.conditions?.ready);
    if (svc && ready && !endpointReady.has(svc)) endpointReady.set(svc, clock());
    if (svc && !ready) endpointReady.delete(svc);
  });
  process.on('message', (m: Message) => {
    void (async () => {
      try {
        let value: unknown;
        switch (m.op) {
          case 'addVMs':
            value = sim.store.addVMs(m.vms);
            break;
          case 'addService':
            sim.store.addService(m.namespace, m.name, { vmName: m.vmName, port: m.port, upstreamPort: m.upstreamPort });
            break;
          case 'addGuestService':
            await sim.store.addGuestService(m.namespace, m.name, { vmName: m.vmName, port: m.port, guest: true });
            value = sim.store.guestPort(m.namespace, m.name);
            break;
          case 'setReadinessGateDelay':
            sim.store.setReadinessGateDelay(m.ms);
            break;
          case 'wakeTimes':
            // The VM and its Service share a name in the ladder bench.
            value = { callAt: wakeCalls.get(m.vm), readyAt: endpointReady.get(m.vm) };
            break;
          case 'settle':
            await sim.settle(10_000);
            break;
          case 'calls':
            value = sim.calls.length;
            break;
          case 'resetCalls':
            sim.resetCalls();
            break;
          case 'close':
            await sim.close();
            fs.rmSync(sim.kubeconfigPath, { force: true });
            send({ seq: m.seq, ok: true });
            process.exit(0);
        }
        send({ seq: m.seq, ok: true, value });
      } catch (e) {
        send({ seq: m.seq, ok: false, error: (e as Error).message });
      }
    })();
  });
  process.on('disconnect', () => void sim.close().finally(() => process.exit(0)));
  const ca = /certificate-authority-data:\s*(\S+)/.exec(sim.kubeconfig)?.[1];
  send({
    ready: true,
    url: sim.url,
    kubeconfigPath: sim.kubeconfigPath,
    token,
    ca: ca ? Buffer.from(ca, 'base64').toString('utf8') : undefined,
  });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
