// The sleep ladder's wake time (contract §5): requests through the wake proxy
// to VMs asleep in the paused tier and in the stopped tier, each woken once,
// with fixed simulated delays (controller steps, the unpaused readiness gate).
// For every wake the simulator says what the VM itself needed (from receiving
// the unpause or start until its Service's endpoint was ready again);
// virtwake's own share is the client's total minus that. Beside it, in the
// same run, a direct request to a running guest and the same request through
// the proxy to an awake VM. Processes: the simulator, virtwake from dist/
// (the proxy), and this one as the client.

import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { freePort, launch, stop, type Running } from './lib/proc';
import { OPTED_IN, type SimHandle } from './lib/sim';
import type { Row } from './lib/table';
import { virtwake } from './lib/targets';

export interface LadderPlan {
  /** VMs woken per tier. */
  wakes: number;
  /** Requests for the direct and the awake baselines. */
  baseline: number;
  /** The unpaused readiness gate's lag after an unpause, in ms (fixed). */
  gateMs: number;
}

const PAUSED_AT = 'virtwake.io/paused-at';
const STOPPED_AT = 'virtwake.io/stopped-at';

function getOnce(port: number, host?: string): Promise<{ status: number; ms: number }> {
  const t0 = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/', headers: host ? { host } : {}, agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: Number(process.hrtime.bigint() - t0) / 1e6 }));
      })
      .on('error', reject);
  });
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

const msec = (x: number) => `${x.toFixed(1)} ms`;

async function proxyReady(port: number, proc: Running): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      if ((await getOnce(port)).status > 0) return;
    } catch (e) {
      if (proc.child.exitCode !== null) throw new Error(`virtwake exited:\n${proc.stderr()}`, { cause: e });
      if (Date.now() > deadline) throw new Error(`the proxy never answered:\n${proc.stderr()}`, { cause: e });
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

/** Mean of each wake phase, in ms, from the proxy's own histogram (tier/phase → ms). */
async function phaseMeans(port: number): Promise<Record<string, number>> {
  const text = await new Promise<string>((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/metrics', headers: { 'user-agent': 'kube-probe/bench' } }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
  const sums = new Map<string, { sum: number; count: number }>();
  for (const m of text.matchAll(/^virtwake_wake_duration_seconds_(sum|count)\{tier="(\w+)",phase="(\w+)"\} (\S+)$/gm)) {
    const key = `${m[2]}/${m[3]}`;
    const e = sums.get(key) ?? { sum: 0, count: 0 };
    e[m[1] as 'sum' | 'count'] = Number(m[4]);
    sums.set(key, e);
  }
  return Object.fromEntries([...sums].map(([k, v]) => [k, (v.sum / v.count) * 1000]));
}

export interface LadderResult {
  rows: Row[];
  overhead: { paused: { p50: number; p99: number }; stopped: { p50: number; p99: number } };
}

export async function ladderBench(sim: SimHandle, plan: LadderPlan): Promise<LadderResult> {
  await sim.setReadinessGateDelay(plan.gateMs);
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const vm = (name: string, opts: { running?: boolean; paused?: boolean }, annotations: Record<string, string>) => ({
    vm: {
      metadata: { name, namespace: 'default', labels: OPTED_IN, annotations },
      spec: { runStrategy: 'Manual' },
    },
    opts,
  });
  const paused = Array.from({ length: plan.wakes }, (_, i) => `lp-${i}`);
  const stopped = Array.from({ length: plan.wakes }, (_, i) => `ls-${i}`);
  await sim.addVMs([
    vm('awake', { running: true }, {}),
    ...paused.map((n) => vm(n, { running: true, paused: true }, { [PAUSED_AT]: now })),
    ...stopped.map((n) => vm(n, { running: false }, { [STOPPED_AT]: now })),
  ]);
  // The proxy's port first: the guests' ports are picked free now and bound only when their VM runs.
  const port = await freePort();
  const guestPort = await sim.addGuestService('awake', 'awake', 80);
  for (const n of [...paused, ...stopped]) await sim.addGuestService(n, n, 80);
  await sim.settle();

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'virtwake-bench-ladder-'));
  const routes = path.join(dir, 'routes.json');
  fs.writeFileSync(
    routes,
    JSON.stringify({
      routes: ['awake', ...paused, ...stopped].map((n) => ({
        host: `${n}.bench`,
        vm: { name: n },
        service: { name: n, port: 80 },
      })),
    }),
  );
  const t = virtwake(sim);
  const proxy = launch(
    { ...t, env: { ...t.env, VIRTWAKE_FUNCTIONS: 'wake-proxy', VIRTWAKE_PROXY_ROUTES: routes, LOG_LEVEL: 'warn' } },
    port,
  );
  try {
    await proxyReady(port, proxy);
    // Warm both baseline paths (JIT, the proxy's upstream lookup) before measuring.
    for (let i = 0; i < 50; i++) {
      await getOnce(guestPort);
      await getOnce(port, 'awake.bench');
    }
    const direct: number[] = [];
    const awake: number[] = [];
    for (let i = 0; i < plan.baseline; i++) {
      direct.push((await getOnce(guestPort)).ms);
      awake.push((await getOnce(port, 'awake.bench')).ms);
    }
    const wake = {
      paused: { total: [] as number[], sim: [] as number[] },
      stopped: { total: [] as number[], sim: [] as number[] },
    };
    for (let i = 0; i < plan.wakes; i++) {
      for (const [tier, name] of [
        ['paused', paused[i]],
        ['stopped', stopped[i]],
      ] as const) {
        const r = await getOnce(port, `${name}.bench`);
        if (r.status !== 200)
          throw new Error(`waking ${name} through the proxy answered ${r.status}:\n${proxy.stderr()}`);
        const times = await sim.wakeTimes(name);
        if (times.callAt === undefined || times.readyAt === undefined)
          throw new Error(`the simulator saw no wake of ${name}: ${JSON.stringify(times)}`);
        wake[tier].total.push(r.ms);
        wake[tier].sim.push(times.readyAt - times.callAt);
      }
    }
    const phases = await phaseMeans(port);
    const own = (tier: 'paused' | 'stopped') => wake[tier].total.map((x, i) => x - wake[tier].sim[i]);
    const overhead = {
      paused: { p50: pct(own('paused'), 50), p99: pct(own('paused'), 99) },
      stopped: { p50: pct(own('stopped'), 50), p99: pct(own('stopped'), 99) },
    };
    const goal = (x: number) => ({ goal: '≤ 20 ms', met: x <= 20 ? 'yes' : 'no' });
    const rows: Row[] = [
      {
        section: `7. Sleep ladder: ${plan.wakes} wakes per tier through the wake proxy, readiness gate ${plan.gateMs} ms, controller step 20 ms (scripts/bench/ladder.ts)`,
      },
      {
        measure: 'direct request to a running guest (p50 / p99)',
        value: `${msec(pct(direct, 50))} / ${msec(pct(direct, 99))}`,
      },
      {
        measure: 'same request through the proxy, VM awake (p50 / p99)',
        value: `${msec(pct(awake, 50))} / ${msec(pct(awake, 99))}`,
        baseline: `${msec(pct(direct, 50))} / ${msec(pct(direct, 99))}`,
      },
    ];
    for (const tier of ['paused', 'stopped'] as const) {
      rows.push(
        {
          measure: `wake from ${tier}: request to answer (p50 / p99)`,
          value: `${msec(pct(wake[tier].total, 50))} / ${msec(pct(wake[tier].total, 99))}`,
          baseline: `VM needs ${msec(pct(wake[tier].sim, 50))} / ${msec(pct(wake[tier].sim, 99))}`,
        },
        {
          measure: `  virtwake's own share, p50`,
          value: msec(overhead[tier].p50),
          baseline: `direct ${msec(pct(direct, 50))}`,
        },
        {
          measure: `  virtwake's own share, p99`,
          value: msec(overhead[tier].p99),
          baseline: `direct ${msec(pct(direct, 99))}`,
          ...goal(overhead[tier].p99),
        },
      );
    }
    for (const tier of ['paused', 'stopped'] as const)
      rows.push({
        measure: `  ${tier}: phase means (ms after the request)`,
        value: ['accepted', 'endpoint', 'upstream', 'first_byte', 'running']
          .map((p) => `${p} ${(phases[`${tier}/${p}`] ?? NaN).toFixed(1)}`)
          .join(', '),
      });
    return { rows, overhead };
  } finally {
    await stop(proxy);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
