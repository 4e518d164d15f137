// `npm run bench`: how fast virtwake is where Knative makes it matter (cold
// start, a burst on few pods, memory over time, the reaper), each figure next
// to a baseline measured in the same run. Separate processes, loopback only,
// never part of `npm test`. Flags: --quick (fewer, shorter runs),
// --only=cold,throughput,memory,reaper,activity,tcp, --no-build (measure dist/ as it is).

import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { coldStartBench } from './coldstart';
import { memoryBench } from './memory';
import { throughputBench } from './throughput';
import { runActivityBench } from './activity';
import { runReaperBench } from './reaper';
import { tcpBench } from './tcp';
import { startSim, type SimHandle } from './lib/sim';
import { ms, ratio } from './lib/stats';
import { renderTable, type Row } from './lib/table';

const ROOT = path.resolve(__dirname, '..', '..');
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const only = new Set(
  (args.find((a) => a.startsWith('--only='))?.slice(7) ?? 'cold,throughput,memory,reaper,activity,tcp').split(','),
);

const PLAN = quick
  ? { coldRuns: 5, tpSlices: 4, tpSliceMs: 300, warmupMs: 1000, memEvents: 20_000, memWarmup: 10_000, activity: 2_000 }
  : {
      coldRuns: 11,
      tpSlices: 12,
      tpSliceMs: 500,
      warmupMs: 2000,
      memEvents: 100_000,
      memWarmup: 50_000,
      activity: 10_000,
    };
const TCP_PLAN = quick
  ? { rounds: 3, bytes: 64 * 1024 * 1024, pings: 500, connects: 50 }
  : { rounds: 7, bytes: 256 * 1024 * 1024, pings: 2000, connects: 200 };

async function reaperRows(): Promise<Row[]> {
  const head: Row = { section: '4. Reaper: one pass over 10,000 VMs (scripts/bench/reaper.ts)' };
  const r = await runReaperBench();
  // Baseline: one list call per page plus one stop call per VM it stops.
  const floor = r.pages + r.stopped;
  return [
    head,
    { measure: 'time per pass (median)', value: ms(r.medianMs) },
    {
      measure: `API calls per pass vs list pages + stops (${r.pages} + ${r.stopped})`,
      value: String(r.calls),
      baseline: String(floor),
      ratio: ratio(r.calls, floor),
    },
  ];
}

async function main(): Promise<void> {
  const began = Date.now();
  if (!args.includes('--no-build')) {
    execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'build.mjs')], {
      cwd: ROOT,
      stdio: ['ignore', 'ignore', 'inherit'],
    });
  }
  const cpus = os.cpus();
  const header = [
    `virtwake bench${quick ? ' (--quick)' : ''}: node ${process.version}, ${cpus.length} × ${cpus[0]?.model.trim() ?? 'unknown CPU'}, ${os.platform()} ${os.release()}`,
    `processes started with a clean environment (PATH, HOME, NODE_ENV=production); virtwake at LOG_LEVEL=info, faas-js-runtime at its default (warn); simulator over HTTPS with a bearer token`,
  ];
  console.log(header.join('\n'));

  const rows: Row[] = [];
  let failed = false;
  const section = async (name: string, f: () => Promise<Row[]>) => {
    if (!only.has(name)) return;
    const t0 = Date.now();
    try {
      rows.push(...(await f()));
    } catch (e) {
      failed = true;
      console.error(`bench section "${name}" failed:`, e);
      rows.push({ section: `${name}: FAILED (${(e as Error).message.split('\n')[0]})` });
    }
    console.log(`… ${name} done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  };

  let sim: SimHandle | undefined;
  let plainSim: SimHandle | undefined;
  try {
    if (only.has('cold') || only.has('throughput') || only.has('memory') || only.has('tcp')) sim = await startSim();
    if (only.has('cold')) plainSim = await startSim({ tls: false });
    await section(
      'cold',
      async () => (await coldStartBench(sim as SimHandle, plainSim as SimHandle, PLAN.coldRuns)).rows,
    );
    await plainSim?.close();
    await section('throughput', () =>
      throughputBench(sim as SimHandle, { slices: PLAN.tpSlices, sliceMs: PLAN.tpSliceMs, warmupMs: PLAN.warmupMs }),
    );
    await section('memory', () => memoryBench(sim as SimHandle, { events: PLAN.memEvents, warmup: PLAN.memWarmup }));
    await section('tcp', () => tcpBench(sim as SimHandle, TCP_PLAN));
  } finally {
    await sim?.close();
    await plainSim?.close();
  }
  await section('reaper', reaperRows);
  await section('activity', async () => {
    const r = await runActivityBench(PLAN.activity);
    return [
      { section: `5. Activity throttle: ${r.events} events for one VM on 2 replicas (scripts/bench/activity.ts)` },
      { measure: 'burst time', value: ms(r.ms) },
      {
        measure: 'PATCHes vs events (at most one per replica per minute)',
        value: String(r.patches),
        baseline: String(r.events),
        ratio: ratio(r.patches, r.events),
      },
    ];
  });

  console.log('');
  console.log(renderTable(rows));
  console.log(`\ntotal ${((Date.now() - began) / 1000).toFixed(0)} s`);
  if (failed) process.exitCode = 1;
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
