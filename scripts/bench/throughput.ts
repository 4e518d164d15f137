import type http from 'node:http';
import { newAgent, runLoad, type Endpoint, type LoadResult } from './lib/load';
import { cpuMs, startWarm, stop, type Running, type Shot } from './lib/proc';
import { stoppedVM, type SimHandle } from './lib/sim';
import { median, ms, perSecond, ratio } from './lib/stats';
import { verdict, type Row } from './lib/table';
import { event, eventStream, faas, FAAS_VERSION, INVALID_START, START, virtwake } from './lib/targets';

// 2. Throughput and latency of one instance: events/s and p50/p99 at
// concurrency 1 and 32, for a schema-invalid command (parse + validate, 400)
// and a start command against the simulator (GET VM, PUT start: 409 "already
// running" → 200 completed/AlreadyInState), next to faas-js-runtime answering
// the same events with a trivial handler. The start path's overhead is set
// against the same API calls made directly to the simulator.
//
// What is compared runs in alternating short slices (virtwake, baseline,
// baseline, virtwake, …) over kept-alive connections, and each figure is the
// median over the slices: load from elsewhere on the machine then falls on
// both sides alike. Server CPU per event comes from /proc.

export interface ThroughputOptions {
  /** Slices per measured side. */
  slices: number;
  sliceMs: number;
  warmupMs: number;
}

const POOL = 64;
const CONCURRENCY = [1, 32] as const;

type Kind = 'invalid' | 'start';
type Side = 'virtwake' | 'faas' | 'directPut' | 'directBoth';
type Sample = LoadResult & { cpuPerEvent: number };

export async function throughputBench(sim: SimHandle, o: ThroughputOptions): Promise<Row[]> {
  const names = Array.from({ length: POOL }, (_, i) => `tp-${i}`);
  await sim.addVMs(names.map(stoppedVM));

  const streams: Record<Kind, (i: number) => Shot> = {
    invalid: eventStream(START, [INVALID_START]),
    start: eventStream(
      START,
      names.map((name) => ({ name })),
    ),
  };
  const simEndpoint: Endpoint = { port: Number(new URL(sim.url).port), tls: { ca: sim.ca } };
  const auth = { authorization: `Bearer ${sim.token}`, accept: 'application/json' };
  const putBody = Buffer.from('{}');
  const directPut: Shot[] = names.map((name) => ({
    method: 'PUT',
    path: `/apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachines/${name}/start`,
    headers: { ...auth, 'content-type': 'application/json', 'content-length': putBody.length },
    body: putBody,
  }));
  const directGet: Shot[] = names.map((name) => ({
    method: 'GET',
    path: `/apis/kubevirt.io/v1/namespaces/default/virtualmachines/${name}`,
    headers: auth,
  }));
  const directBoth = names.map((_, i) => [directGet[i], directPut[i]] as const);

  const running: Record<'virtwake' | 'faas', Running> = {
    virtwake: await startWarm(virtwake(sim), event(START, { name: names[0] })),
    faas: await startWarm(faas(), event(START, { name: names[0] })),
  };
  const endpoints: Record<Side, Endpoint> = {
    virtwake: { port: running.virtwake.port },
    faas: { port: running.faas.port },
    directPut: simEndpoint,
    directBoth: simEndpoint,
  };
  const agents: http.Agent[] = [];
  const agentFor = new Map<string, http.Agent>();
  const agent = (side: Side, c: number) => {
    const key = `${side === 'directBoth' ? 'directPut' : side}/${c}`;
    let a = agentFor.get(key);
    if (!a) {
      a = newAgent(endpoints[side], c);
      agents.push(a);
      agentFor.set(key, a);
    }
    return a;
  };
  const slice = async (side: Side, kind: Kind, c: number, maxMs: number): Promise<Sample> => {
    const shot =
      side === 'directPut'
        ? (i: number) => directPut[i % POOL]
        : side === 'directBoth'
          ? (i: number) => directBoth[i % POOL]
          : streams[kind];
    const pid = side === 'virtwake' || side === 'faas' ? running[side].child.pid : undefined;
    const cpu0 = cpuMs(pid);
    const r = await runLoad({
      endpoint: endpoints[side],
      agent: agent(side, c),
      concurrency: c,
      maxRequests: 1e6,
      maxMs,
      shot,
    });
    return { ...r, cpuPerEvent: (cpuMs(pid) - cpu0) / r.done };
  };

  try {
    // Warm-up: every pool VM started (and its activity stamped) once, so the
    // measured start commands all take the same path; then JIT warm-up.
    await runLoad({
      endpoint: endpoints.virtwake,
      concurrency: 8,
      maxRequests: POOL,
      maxMs: 30_000,
      shot: streams.start,
    });
    await sim.settle();
    for (const side of ['virtwake', 'faas'] as const)
      for (const kind of ['invalid', 'start'] as const)
        for (const c of CONCURRENCY) await slice(side, kind, c, o.warmupMs / 4);
    await slice('directBoth', 'start', 1, o.warmupMs / 2);

    const results = new Map<string, Sample[]>();
    const record = (key: string, r: Sample) => results.set(key, [...(results.get(key) ?? []), r]);
    for (const c of CONCURRENCY) {
      for (const kind of ['invalid', 'start'] as const) {
        const sides: Side[] =
          kind === 'start' && c === 1 ? ['virtwake', 'faas', 'directPut', 'directBoth'] : ['virtwake', 'faas'];
        for (let i = 0; i < o.slices; i++) {
          const order = i % 2 ? [...sides].reverse() : sides;
          for (const side of order) {
            const r = await slice(side, kind, c, o.sliceMs);
            if (side === 'virtwake' || side === 'faas') checkStatuses(side, kind, c, r);
            record(`${side}/${kind}/${c}`, r);
          }
        }
        await sim.resetCalls();
      }
    }

    const med = (key: string, f: (r: Sample) => number) => median((results.get(key) ?? []).map(f));
    const rows: Row[] = [
      {
        section: `2. Throughput and latency, one instance (median of ${o.slices} alternating ${o.sliceMs} ms slices each; baseline: faas-js-runtime ${FAAS_VERSION}, trivial handler)`,
      },
    ];
    for (const c of CONCURRENCY) {
      for (const kind of ['invalid', 'start'] as const) {
        const v = `virtwake/${kind}/${c}`;
        const f = `faas/${kind}/${c}`;
        const what = kind === 'invalid' ? 'schema-invalid command (400)' : 'start command via simulator (200)';
        const row = (label: string, get: (r: Sample) => number, fmt: (x: number) => string, goal?: boolean) => {
          const a = med(v, get);
          const b = med(f, get);
          rows.push({
            measure: `${what}, c=${c}: ${label}`,
            value: fmt(a),
            baseline: fmt(b),
            ratio: ratio(a, b),
            goal: goal ? '≥ 1.00×' : '',
            met: goal ? verdict(a >= b) : '',
          });
        };
        row('events/s', (r) => r.perSecond, perSecond, kind === 'invalid');
        row(
          'p50',
          (r) => r.p50,
          (x) => ms(x, 3),
        );
        row(
          'p99',
          (r) => r.p99,
          (x) => ms(x, 3),
        );
        row(
          'server CPU per event',
          (r) => r.cpuPerEvent,
          (x) => ms(x, 3),
        );
      }
    }
    const startP50 = med('virtwake/start/1', (r) => r.p50);
    const putP50 = med('directPut/start/1', (r) => r.p50);
    const bothP50 = med('directBoth/start/1', (r) => r.p50);
    rows.push({
      measure: 'start path p50 overhead over one direct PUT …/start (c=1)',
      value: ms(startP50 - putP50, 3),
      baseline: `PUT alone ${ms(putP50, 3)}`,
      ratio: ratio(startP50, putP50),
      goal: '< 0.300 ms',
      met: verdict(startP50 - putP50 < 0.3),
    });
    rows.push({
      measure: 'start path p50 overhead over the same calls direct (GET VM + PUT, c=1)',
      value: ms(startP50 - bothP50, 3),
      baseline: `GET+PUT ${ms(bothP50, 3)}`,
      ratio: ratio(startP50, bothP50),
    });
    return rows;
  } finally {
    for (const a of agents) a.destroy();
    await stop(running.virtwake);
    await stop(running.faas);
  }
}

function checkStatuses(side: 'virtwake' | 'faas', kind: Kind, c: number, r: LoadResult): void {
  const expected = side === 'faas' ? 202 : kind === 'invalid' ? 400 : 200;
  const wrong = Object.entries(r.statuses).filter(([s]) => Number(s) !== expected);
  if (r.done === 0 || wrong.length)
    throw new Error(`${side} ${kind} c=${c}: expected only ${expected}, got ${JSON.stringify(r.statuses)}`);
}
