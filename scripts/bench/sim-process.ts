// The KubeVirt API simulator in a process of its own, so it never shares an
// event loop with the process being measured or with the load generator.
// Driven over the IPC channel by lib/sim.ts: it answers every message with
// { seq, ok, value?, error? }.

import fs from 'node:fs';
import { startSimulator, type BulkVMInput } from '../../simulator';

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
  | { seq: number; op: 'settle' }
  | { seq: number; op: 'calls' }
  | { seq: number; op: 'resetCalls' }
  | { seq: number; op: 'close' };

async function main(): Promise<void> {
  const token = 'virtwake-bench-token';
  // --plain: HTTP instead of HTTPS, to tell the cost of TLS apart (cold start).
  const sim = await startSimulator({ tls: !process.argv.includes('--plain'), token });
  const send = (m: unknown) => process.send?.(m);
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
