import type { BulkVMInput } from '../../../simulator';

// A fleet of VMs in every combination the reaper must tell apart: opted in or
// not, protected (=true / =false), idle-timeout annotated / missing / invalid,
// running / paused / stopped, used recently or long ago, started recently or
// long ago. The same seed always gives the same fleet, and `expectedIdle`
// computes, independently of the reaper's code, which ones it must stop.
// Used by the scale-to-zero tests and by `npm run bench` (scripts/bench/reaper.ts).

export interface FleetVM {
  namespace: string;
  name: string;
  optedIn: boolean;
  protectedLabel?: 'true' | 'false';
  idleTimeout?: string;
  running: boolean;
  paused: boolean;
  runStrategy: string;
  lastActivityAgoMs?: number;
  vmiStartedAgoMs?: number;
}

const MIN = 60_000;
const TIMEOUTS: (string | undefined)[] = ['30m', '30m', '30m', '2h', '1h30m', undefined, undefined, 'soon', '0'];
const ACTIVITY_AGO: (number | undefined)[] = [undefined, 5 * MIN, 45 * MIN, 95 * MIN, 3 * 60 * MIN, 20 * MIN];
const STARTED_AGO = [10 * MIN, 40 * MIN, 100 * MIN, 5 * 60 * MIN];

/** Small deterministic PRNG (mulberry32), so a fleet is reproducible from its seed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function makeFleet(count: number, opts: { namespaces?: string[]; seed?: number } = {}): FleetVM[] {
  const random = rng(opts.seed ?? 42);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)];
  const namespaces = opts.namespaces ?? ['vms'];
  const out: FleetVM[] = [];
  for (let i = 0; i < count; i++) {
    const r = random();
    const running = r < 0.7;
    const paused = running && random() < 0.05;
    const p = random();
    out.push({
      namespace: namespaces[i % namespaces.length],
      name: `vm-${String(i).padStart(5, '0')}`,
      optedIn: random() < 0.9,
      protectedLabel: p < 0.05 ? 'true' : p < 0.1 ? 'false' : undefined,
      idleTimeout: pick(TIMEOUTS),
      running,
      paused,
      runStrategy: running ? pick(['Always', 'Manual', 'RerunOnFailure']) : pick(['Halted', 'Manual']),
      lastActivityAgoMs: pick(ACTIVITY_AGO),
      vmiStartedAgoMs: running ? pick(STARTED_AGO) : undefined,
    });
  }
  return out;
}

const DURATION: Record<string, number | undefined> = {
  '30m': 30 * MIN,
  '2h': 120 * MIN,
  '1h30m': 90 * MIN,
  '0': 0,
  soon: undefined,
};

/** namespace/name of every VM the reaper must stop at `now`, given the default idle timeout. */
export function expectedIdle(fleet: FleetVM[], defaultTimeoutMs?: number): Set<string> {
  const out = new Set<string>();
  for (const v of fleet) {
    if (!v.optedIn || v.protectedLabel === 'true' || !v.running) continue;
    const timeout = v.idleTimeout === undefined ? defaultTimeoutMs : DURATION[v.idleTimeout];
    if (!timeout) continue;
    const sinceUse = Math.min(v.lastActivityAgoMs ?? Infinity, v.vmiStartedAgoMs ?? Infinity);
    if (sinceUse > timeout) out.add(`${v.namespace}/${v.name}`);
  }
  return out;
}

/** The fleet as simulator input, timestamps relative to `now`. */
export function toSimulator(fleet: FleetVM[], now: number): BulkVMInput[] {
  return fleet.map((v) => {
    const labels: Record<string, string> = { app: v.name };
    if (v.optedIn) labels['virtwake.io/enabled'] = 'true';
    if (v.protectedLabel) labels['virtwake.io/protected'] = v.protectedLabel;
    const annotations: Record<string, string> = {};
    if (v.idleTimeout !== undefined) annotations['virtwake.io/idle-timeout'] = v.idleTimeout;
    if (v.lastActivityAgoMs !== undefined)
      annotations['virtwake.io/last-activity'] = new Date(now - v.lastActivityAgoMs)
        .toISOString()
        .replace(/\.\d{3}Z$/, 'Z');
    return {
      vm: {
        metadata: { name: v.name, namespace: v.namespace, labels, annotations },
        spec: { runStrategy: v.runStrategy },
      },
      opts: {
        running: v.running,
        paused: v.paused,
        vmiCreatedAt: v.vmiStartedAgoMs === undefined ? undefined : new Date(now - v.vmiStartedAgoMs),
      },
    };
  });
}
