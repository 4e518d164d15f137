import http from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { createApp, type App } from '../../functions/app';
import { startSimulator } from '../../simulator';

// The activity throttle under load: a burst of io.virtwake.vm.activity events
// for one VM, spread over two replicas, 100 in flight at a time. What matters
// is the PATCH count (at most one per replica per minute), next to the events
// sent as the baseline, and the time the burst takes. The jest suite proves
// the same property with 1,000 events; this is the 10,000-event load.
//
//   npx tsx scripts/bench/activity.ts [events]

export interface ActivityBenchResult {
  events: number;
  patches: number;
  ms: number;
}

export async function runActivityBench(events = 10_000): Promise<ActivityBenchResult> {
  const sim = await startSimulator({ stepMs: 5 });
  const apps: App[] = [];
  try {
    sim.store.addVM(
      {
        metadata: { name: 'busy', namespace: 'default', labels: { 'virtwake.io/enabled': 'true' } },
        spec: { runStrategy: 'Always' },
      },
      { running: true },
    );
    await sim.settle();
    for (let i = 0; i < 2; i++) {
      const app = await createApp({
        env: { KUBECONFIG: sim.kubeconfigPath, VIRTWAKE_NAMESPACE: 'default', LOG_LEVEL: 'silent' },
        logger: pino({ level: 'silent' }),
      });
      await new Promise<void>((resolve) => app.server.listen(0, '127.0.0.1', resolve));
      apps.push(app);
    }
    const ports = apps.map((a) => (a.server.address() as AddressInfo).port);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 100 });
    sim.resetCalls();
    const started = process.hrtime.bigint();
    for (let i = 0; i < events; i += 100) {
      await Promise.all(
        Array.from({ length: Math.min(100, events - i) }, (_, k) => send(ports[(i + k) % 2], `e${i + k}`, agent)),
      );
    }
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    agent.destroy();
    const patches = sim.calls.filter((c) => c.method === 'PATCH' && c.name === 'busy').length;
    return { events, patches, ms: Math.round(ms) };
  } finally {
    for (const app of apps) await app.close();
    await sim.close();
  }
}

function send(port: number, id: string, agent: http.Agent): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/',
        agent,
        headers: {
          'ce-specversion': '1.0',
          'ce-id': id,
          'ce-type': 'io.virtwake.vm.activity',
          'ce-source': '/bench/activity',
          'content-type': 'application/json',
        },
      },
      (res) => {
        res.resume();
        res.on('end', () =>
          res.statusCode === 200 ? resolve() : reject(new Error(`activity answered ${res.statusCode}`)),
        );
      },
    );
    req.on('error', reject);
    req.end('{"name":"busy"}');
  });
}

if (require.main === module) {
  runActivityBench(Number(process.argv[2] ?? 10_000)).then(
    (r) => console.log(`activity  ${r.events} events on 2 replicas  ${r.ms} ms  PATCHes ${r.patches}`),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}
