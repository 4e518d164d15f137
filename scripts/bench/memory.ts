import { runLoad } from './lib/load';
import { rssBytes, startWarm, stop, type Target, type Shot } from './lib/proc';
import { stoppedVM, type SimHandle } from './lib/sim';
import { mb, median, ratio } from './lib/stats';
import { verdict, type Row } from './lib/table';
import { bare, event, eventStream, faas, INVALID_START, START, virtwake } from './lib/targets';

// 3. Memory: RSS of a fresh process once it has answered its first event,
// after a warm-up, and after `events` more (half start commands against the
// simulator, half schema-invalid ones, at concurrency 32). Growth is shown
// both from the first event (which includes V8 growing its heap to its
// working size: bare Node grows too) and from the warm state (what a leak
// would add). RSS swings by ±5-10 MB with the garbage collector's rhythm, so
// during the measured events it is sampled every 100 ms: the leak figure is
// the least-squares trend of those samples over the run, "after" is the median
// of the last quarter. The baselines get the same events.

export interface MemoryOptions {
  events: number;
  warmup: number;
}

const POOL = 256;

export async function memoryBench(sim: SimHandle, o: MemoryOptions): Promise<Row[]> {
  const names = Array.from({ length: POOL }, (_, i) => `mem-${i}`);
  await sim.addVMs(names.map(stoppedVM));
  const start = eventStream(
    START,
    names.map((name) => ({ name })),
  );
  const invalid = eventStream(START, [INVALID_START]);
  const mixed = (i: number): Shot => (i % 2 ? invalid(i) : start(i >> 1));

  const measure = async (t: Target) => {
    const r = await startWarm(t, event(START, { name: names[0] }));
    try {
      const settle = () => new Promise((res) => setTimeout(res, 300));
      const first = rssBytes(r.child.pid);
      await runLoad({ endpoint: { port: r.port }, concurrency: 32, maxRequests: o.warmup, maxMs: 60_000, shot: mixed });
      await settle();
      const t0 = Date.now();
      const samples: [number, number][] = [[0, rssBytes(r.child.pid)]];
      const sampler = setInterval(() => samples.push([Date.now() - t0, rssBytes(r.child.pid)]), 100);
      const load = await runLoad({
        endpoint: { port: r.port },
        concurrency: 32,
        maxRequests: o.events,
        maxMs: 120_000,
        shot: (i) => mixed(i + o.warmup),
      });
      clearInterval(sampler);
      samples.push([Date.now() - t0, rssBytes(r.child.pid)]);
      const q = Math.max(1, Math.floor(samples.length / 4));
      return {
        start: first,
        warm: samples[0][1],
        end: median(samples.slice(-q).map(([, rss]) => rss)),
        trend: slope(samples) * (Date.now() - t0),
        done: load.done,
        errors: load.errors,
      };
    } finally {
      await stop(r);
    }
  };

  const v = await measure(virtwake(sim));
  await sim.resetCalls();
  const f = await measure(faas());
  const b = await measure(bare());
  const n = v.done.toLocaleString('en-US');
  const w = o.warmup.toLocaleString('en-US');
  if (v.done < o.events || v.errors)
    throw new Error(`memory: virtwake answered ${v.done} of ${o.events} events (${v.errors} errors)`);
  const limit = 5 * 1024 * 1024;
  return [
    {
      section: `3. Memory: RSS after the first event, after ${w} events of warm-up, then sampled every 100 ms over ${n} more (½ start, ½ schema-invalid, c=32; one run)`,
    },
    {
      measure: 'RSS after the first event, vs bare node',
      value: mb(v.start),
      baseline: mb(b.start),
      ratio: ratio(v.start, b.start),
    },
    {
      measure: 'RSS after the first event, vs faas-js-runtime',
      value: mb(v.start),
      baseline: mb(f.start),
      ratio: ratio(v.start, f.start),
    },
    {
      measure: `RSS warm (after ${w} events), vs faas-js-runtime`,
      value: mb(v.warm),
      baseline: mb(f.warm),
      ratio: ratio(v.warm, f.warm),
    },
    {
      measure: `RSS after ${n} more events (median of last quarter), vs faas`,
      value: mb(v.end),
      baseline: mb(f.end),
      ratio: ratio(v.end, f.end),
    },
    {
      measure: `RSS trend over the ${n} events (leaks), vs faas`,
      value: mb(v.trend),
      baseline: mb(f.trend),
      goal: '< 5.0 MB',
      met: verdict(v.trend < limit),
    },
    { measure: `RSS trend over the ${n} events (leaks), vs bare`, value: mb(v.trend), baseline: mb(b.trend) },
    {
      measure: `RSS growth first event → end (heap sizing + leaks), vs faas`,
      value: mb(v.end - v.start),
      baseline: mb(f.end - f.start),
      goal: '< 5.0 MB',
      met: verdict(v.end - v.start < limit),
    },
    {
      measure: `RSS growth first event → end (heap sizing + leaks), vs bare`,
      value: mb(v.end - v.start),
      baseline: mb(b.end - b.start),
    },
  ];
}

/** Least-squares slope of y over x. */
function slope(points: [number, number][]): number {
  const n = points.length;
  const mx = points.reduce((a, [x]) => a + x, 0) / n;
  const my = points.reduce((a, [, y]) => a + y, 0) / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}
