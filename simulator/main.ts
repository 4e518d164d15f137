// CLI: `npx tsx simulator/main.ts --port 0 --kubeconfig path --demo [--tls] [--token T]
// [--client-cert] [--step-ms N] [--snapshot-step-ms N]`. Prints the URL and kubeconfig path
// and runs until SIGINT/SIGTERM.

import { seedDemo, seedDemoGuest } from './demo';
import { startSimulator, type SimOptions } from './index';

const USAGE = `usage: simulator/main.ts [--port N] [--kubeconfig PATH] [--demo] [--tls] [--token T] [--client-cert] [--step-ms N] [--snapshot-step-ms N]`;

export function parseArgs(argv: string[]): { opts: SimOptions; demo: boolean } {
  const opts: SimOptions = {};
  let demo = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value\n${USAGE}`);
      return v;
    };
    const number = () => {
      const n = Number(value());
      if (!Number.isFinite(n) || n < 0) throw new Error(`${a} needs a non-negative number\n${USAGE}`);
      return n;
    };
    switch (a) {
      case '--port':
        opts.port = number();
        break;
      case '--kubeconfig':
        opts.kubeconfigPath = value();
        break;
      case '--demo':
        demo = true;
        break;
      case '--tls':
        opts.tls = true;
        break;
      case '--token':
        opts.token = value();
        break;
      case '--client-cert':
        opts.tls = true;
        opts.clientCertAuth = true;
        break;
      case '--step-ms':
        opts.stepMs = number();
        break;
      case '--snapshot-step-ms':
        opts.snapshotStepMs = number();
        break;
      case '-h':
      case '--help':
        console.log(USAGE);
        process.exit(0);
        break;
      default:
        throw new Error(`unknown argument ${a}\n${USAGE}`);
    }
  }
  return { opts, demo };
}

async function main(): Promise<void> {
  const { opts, demo } = parseArgs(process.argv.slice(2));
  const sim = await startSimulator(opts);
  const guestPort = demo ? (seedDemo(sim.store), await seedDemoGuest(sim.store)) : undefined;
  console.log(`KubeVirt simulator listening on ${sim.url}`);
  console.log(`kubeconfig: ${sim.kubeconfigPath}`);
  if (demo)
    console.log(
      `demo VMs: ${sim.store
        .listVMs('default')
        .map((v) => v.metadata.name)
        .join(', ')}`,
    );
  if (guestPort) console.log(`demo guest of reporting (Service default/reporting): 127.0.0.1:${guestPort}`);
  const stop = () => {
    void sim.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

if (require.main === module) {
  main().catch((e) => {
    console.error((e as Error).message);
    process.exit(1);
  });
}
