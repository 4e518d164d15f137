import { fork } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { createApp } from '../../functions/app';
import { startSimulator } from '../../simulator';
import { expectedIdle, makeFleet, toSimulator } from './lib/population';

// How long one reaper tick takes over 10,000 VMs, and how many API calls it
// makes, through the real server over HTTP. The simulator runs in a child
// process (this file again, HTTPS and a bearer token like an in-cluster API
// server), so it never shares an event loop with the server being timed; the
// child builds the fleet itself from its seed, so no VM crosses the IPC
// channel. Each pass reaps a fresh namespace holding the same fleet, so every
// pass does the same work (a second tick over one fleet finds nothing to stop).
//
//   npx tsx scripts/bench/reaper.ts [passes] [vms]

export interface ReaperBenchResult {
  medianMs: number;
  calls: number;
  pages: number;
  stopped: number;
}

const SEED = 7;
type SimOp = { op: 'fleet'; namespace: string; vms: number; now: number } | { op: 'calls' | 'resetCalls' };
type SimRequest = SimOp & { seq: number };

export async function runReaperBench(opts: { passes?: number; vms?: number } = {}): Promise<ReaperBenchResult> {
  const passes = opts.passes ?? 5;
  const vms = opts.vms ?? 10_000;
  const sim = await simProcess();
  const times: number[] = [];
  let last: Omit<ReaperBenchResult, 'medianMs'> | undefined;
  try {
    for (let i = 0; i < passes; i++) {
      const namespace = `reaper-bench-${i}`;
      const now = Date.now();
      await sim.call({ op: 'fleet', namespace, vms, now });
      const idle = expectedIdle(makeFleet(vms, { seed: SEED, namespaces: [namespace] }));
      const app = await createApp({
        env: {
          KUBECONFIG: sim.kubeconfigPath,
          VIRTWAKE_NAMESPACE: namespace,
          VIRTWAKE_FUNCTIONS: 'reaper',
          LOG_LEVEL: 'silent',
        },
        logger: pino({ level: 'silent' }),
      });
      try {
        await new Promise<void>((resolve) => app.server.listen(0, '127.0.0.1', resolve));
        await sim.call({ op: 'resetCalls' });
        const started = process.hrtime.bigint();
        const summary = await ping((app.server.address() as AddressInfo).port, `bench-${i}`);
        times.push(Number(process.hrtime.bigint() - started) / 1e6);
        if (summary.stoppedCount !== idle.size)
          throw new Error(`pass ${i}: stopped ${summary.stoppedCount}, expected ${idle.size}`);
        last = {
          calls: (await sim.call({ op: 'calls' })) as number,
          pages: summary.pages,
          stopped: summary.stoppedCount,
        };
      } finally {
        await app.close();
      }
    }
  } finally {
    sim.close();
  }
  times.sort((a, b) => a - b);
  return {
    medianMs: Math.round(times[Math.floor(times.length / 2)]),
    ...(last as Omit<ReaperBenchResult, 'medianMs'>),
  };
}

async function simProcess() {
  const child = fork(__filename, ['--simulator'], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let seq = 0;
  const pending = new Map<number, (m: { ok: boolean; value?: unknown; error?: string }) => void>();
  const ready = await new Promise<{ kubeconfigPath: string }>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`simulator process exited with ${code}`)));
    type Message = {
      ready?: boolean;
      kubeconfigPath: string;
      seq: number;
      ok: boolean;
      value?: unknown;
      error?: string;
    };
    child.on('message', (raw) => {
      const m = raw as Message;
      if (m.ready) resolve(m);
      else pending.get(m.seq)?.(m);
    });
  });
  return {
    kubeconfigPath: ready.kubeconfigPath,
    call: (msg: SimOp) =>
      new Promise<unknown>((resolve, reject) => {
        const id = ++seq;
        pending.set(id, (m) => {
          pending.delete(id);
          if (m.ok) resolve(m.value);
          else reject(new Error(`simulator: ${m.error}`));
        });
        child.send({ ...msg, seq: id });
      }),
    close: () => child.kill(),
  };
}

async function serveSimulator(): Promise<void> {
  const sim = await startSimulator({ tls: true, token: 'virtwake-reaper-bench' });
  process.on('message', (m: SimRequest) => {
    void (async () => {
      try {
        let value: unknown;
        if (m.op === 'fleet') {
          sim.store.addVMs(toSimulator(makeFleet(m.vms, { seed: SEED, namespaces: [m.namespace] }), m.now));
          await sim.settle(60_000);
        } else if (m.op === 'calls') value = sim.calls.length;
        else sim.resetCalls();
        process.send?.({ seq: m.seq, ok: true, value });
      } catch (e) {
        process.send?.({ seq: m.seq, ok: false, error: (e as Error).message });
      }
    })();
  });
  const bye = () =>
    void sim.close().finally(() => {
      fs.rmSync(sim.kubeconfigPath, { force: true });
      process.exit(0);
    });
  process.on('disconnect', bye);
  process.on('SIGTERM', bye);
  process.send?.({ ready: true, kubeconfigPath: sim.kubeconfigPath });
}

/** One binary-mode PingSource event; resolves with the reaper's summary. */
function ping(port: number, id: string): Promise<{ stoppedCount: number; pages: number }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/',
        headers: {
          'ce-specversion': '1.0',
          'ce-id': id,
          'ce-type': 'dev.knative.sources.ping',
          'ce-source': '/apis/v1/namespaces/virtwake/pingsources/virtwake-reaper',
          'content-type': 'application/json',
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          if (res.statusCode !== 200) return reject(new Error(`reaper answered ${res.statusCode}: ${text}`));
          resolve(JSON.parse(text));
        });
      },
    );
    req.on('error', reject);
    req.end('{"action":"reap"}');
  });
}

export function formatReaperBench(r: ReaperBenchResult, vms = 10_000): string {
  const other = r.calls - r.pages - 2 * r.stopped;
  return `reaper  ${vms} VMs  median ${r.medianMs} ms/tick  API calls ${r.calls} (${r.pages} list pages + ${r.stopped} claims + ${r.stopped} stops${other ? ` + ${other} other` : ''})  stopped ${r.stopped}`;
}

if (require.main === module && process.argv[2] === '--simulator') {
  serveSimulator().catch((e) => {
    console.error(e);
    process.exit(1);
  });
} else if (require.main === module) {
  const passes = Number(process.argv[2] ?? 5);
  const vms = Number(process.argv[3] ?? 10_000);
  runReaperBench({ passes, vms }).then(
    (r) => console.log(formatReaperBench(r, vms)),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}
