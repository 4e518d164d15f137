import { coldStart, stop, type Shot, type Target } from './lib/proc';
import { stoppedVM, type SimHandle } from './lib/sim';
import { median, ms, ratio } from './lib/stats';
import { verdict, type Row } from './lib/table';
import { bare, event, faas, START, virtwake } from './lib/targets';

// 1. Cold start: spawn → first event answered, for virtwake's production start
// command (a start command against the simulator: GET VM, PUT start, PATCH
// activity, over a fresh TLS connection), a bare Node http server answering
// 202, and faas-js-runtime serving a trivial handler. Two more virtwake runs
// say where its time goes: the same command against a plain-HTTP simulator
// (no TLS), and the first readiness probe answered (no API call at all).
// When the shell exports NODE_EXTRA_CA_CERTS (it makes every Node process
// parse a CA bundle at start), the three are also run with it, as a shell
// that does not clean the environment would measure them.
// Runs are interleaved (rotating order) so drift on the machine hits all alike.

type Name = 'virtwake' | 'bare' | 'faas' | 'virtwakeHttp' | 'virtwakeReady' | 'virtwakeCA' | 'bareCA' | 'faasCA';

export interface ColdStartResult {
  rows: Row[];
  medians: Partial<Record<Name, number>>;
}

const withEnv = (t: Target, env: Record<string, string>): Target => ({ ...t, env: { ...t.env, ...env } });

const READINESS: Shot = { method: 'GET', path: '/health/readiness', headers: {} };

export async function coldStartBench(sim: SimHandle, plainSim: SimHandle, runs: number): Promise<ColdStartResult> {
  const start = (prefix: string) => (i: number) => event(START, { name: `${prefix}-${i}` });
  const targets: Partial<Record<Name, { target: Target; shot: (round: number) => Shot; status: number }>> = {
    virtwake: { target: virtwake(sim), shot: start('cold'), status: 200 },
    bare: { target: bare(), shot: start('cold'), status: 202 },
    faas: { target: faas(), shot: start('cold'), status: 202 },
    virtwakeHttp: { target: virtwake(plainSim), shot: start('cold'), status: 200 },
    virtwakeReady: { target: virtwake(sim), shot: () => READINESS, status: 200 },
  };
  const extraCa = process.env.NODE_EXTRA_CA_CERTS;
  if (extraCa) {
    const env = { NODE_EXTRA_CA_CERTS: extraCa };
    targets.virtwakeCA = { target: withEnv(virtwake(sim), env), shot: start('cold-ca'), status: 200 };
    targets.bareCA = { target: withEnv(bare(), env), shot: start('cold-ca'), status: 202 };
    targets.faasCA = { target: withEnv(faas(), env), shot: start('cold-ca'), status: 202 };
  }
  const names = Object.keys(targets) as Name[];
  const times = Object.fromEntries(names.map((n) => [n, [] as number[]])) as Record<Name, number[]>;
  const vms = Array.from({ length: runs + 1 }, (_, i) => stoppedVM(`cold-${i}`));
  await sim.addVMs(vms);
  if (extraCa) await sim.addVMs(Array.from({ length: runs + 1 }, (_, i) => stoppedVM(`cold-ca-${i}`)));
  await plainSim.addVMs(vms);

  // Round 0 is discarded: it pulls the files into the page cache (a disk-warm node).
  for (let round = 0; round <= runs; round++) {
    for (let k = 0; k < names.length; k++) {
      const name = names[(round + k) % names.length];
      const t = targets[name]!;
      const r = await coldStart(t.target, t.shot(round));
      await stop(r.running);
      if (r.status !== t.status)
        throw new Error(
          `${name} answered ${r.status} to its first request, expected ${t.status}:\n${r.running.stderr()}`,
        );
      if (round > 0) times[name].push(r.ms);
      if (name === 'virtwake' || name === 'virtwakeCA') await sim.settle();
      if (name === 'virtwakeHttp') await plainSim.settle();
    }
  }

  const m = Object.fromEntries(names.map((n) => [n, median(times[n])])) as Record<Name, number>;
  const goal = 1.5;
  const caRows: Row[] = extraCa
    ? [
        {
          measure: `  with the shell's NODE_EXTRA_CA_CERTS: faas-js-runtime vs bare`,
          value: '',
          baseline: ms(m.bareCA),
          ratio: ratio(m.faasCA, m.bareCA),
        },
        {
          measure: `  with the shell's NODE_EXTRA_CA_CERTS: virtwake vs bare`,
          value: ms(m.virtwakeCA),
          baseline: ms(m.bareCA),
          ratio: ratio(m.virtwakeCA, m.bareCA),
        },
      ]
    : [];
  return {
    medians: m,
    rows: [
      { section: `1. Cold start: spawn → first answer (median of ${runs} interleaved runs)` },
      { measure: 'bare node http server, event answered 202', value: '', baseline: ms(m.bare), ratio: '1.00×' },
      {
        measure: `${targets.faas!.target.name}, trivial handler, event answered`,
        value: '',
        baseline: ms(m.faas),
        ratio: ratio(m.faas, m.bare),
      },
      {
        measure: 'virtwake start command (HTTPS API) vs bare node',
        value: ms(m.virtwake),
        baseline: ms(m.bare),
        ratio: ratio(m.virtwake, m.bare),
        goal: `≤ ${goal.toFixed(2)}×`,
        met: verdict(m.virtwake / m.bare <= goal),
      },
      {
        measure: 'virtwake start command (HTTPS API) vs faas-js-runtime',
        value: ms(m.virtwake),
        baseline: ms(m.faas),
        ratio: ratio(m.virtwake, m.faas),
      },
      {
        measure: '  where it goes: same command, plain-HTTP API, vs bare',
        value: ms(m.virtwakeHttp),
        baseline: ms(m.bare),
        ratio: ratio(m.virtwakeHttp, m.bare),
      },
      {
        measure: '  where it goes: first readiness probe (no API call), vs bare',
        value: ms(m.virtwakeReady),
        baseline: ms(m.bare),
        ratio: ratio(m.virtwakeReady, m.bare),
      },
      ...caRows,
    ],
  };
}
