import fs from 'node:fs';
import path from 'node:path';
import { createMetrics } from '../../functions/runtime/metrics';

// The Grafana dashboard shipped beside the manifests queries only metrics
// virtwake exports, under the names and labels it exports them.

const FILE = path.join(__dirname, '../../knative/dashboards/virtwake.json');
const dashboard = JSON.parse(fs.readFileSync(FILE, 'utf8'));
const exprs: string[] = dashboard.panels.flatMap((p: { targets: { expr: string }[] }) => p.targets.map((t) => t.expr));

async function exported(): Promise<Map<string, { type: string; labels: Set<string> }>> {
  const m = createMetrics();
  // Touch every ladder series so its labels show.
  m.wakePhase('paused', 'accepted', 0.1);
  m.woke('paused', 'proxy');
  m.slept('stopped');
  m.asleep('stopped', 'ns', 'vm', 1);
  m.vmsByTier({ running: 1, paused: 0, stopped: 0 });
  const out = new Map<string, { type: string; labels: Set<string> }>();
  for (const metric of await m.registry.getMetricsAsJSON()) {
    const labels = new Set(metric.values.flatMap((v) => Object.keys(v.labels)));
    out.set(metric.name, { type: metric.type as unknown as string, labels });
  }
  return out;
}

test('the dashboard has the panels the ladder needs', () => {
  expect(dashboard.panels.map((p: { title: string }) => p.title)).toEqual(
    expect.arrayContaining([
      'VMs per tier',
      'Wakes per tier (1h)',
      'Wake time p50 per phase',
      'Wake time p95 per phase',
      'Hours asleep (24h)',
    ]),
  );
});

test('every metric the dashboard queries is one virtwake exports, histogram series included', async () => {
  const metrics = await exported();
  const used = new Set(exprs.flatMap((e) => e.match(/\bvirtwake_[a-z_]+/g) ?? []));
  expect(used.size).toBeGreaterThanOrEqual(5);
  for (const series of used) {
    const base = series.replace(/_(bucket|sum|count)$/, '');
    const m = metrics.get(metrics.has(series) ? series : base);
    expect([series, m ? 'exported' : 'missing']).toEqual([series, 'exported']);
    if (series !== base && !metrics.has(series)) expect([series, m!.type]).toEqual([series, 'histogram']);
  }
});

test('every label the dashboard groups by is a label of the metric it groups', async () => {
  const metrics = await exported();
  for (const e of exprs) {
    const names = e.match(/\bvirtwake_[a-z_]+/g) ?? [];
    const labels = new Set<string>();
    for (const n of names) {
      const m = metrics.get(n) ?? metrics.get(n.replace(/_(bucket|sum|count)$/, ''));
      m?.labels.forEach((l) => labels.add(l));
    }
    labels.add('le');
    for (const by of e.matchAll(/by \(([^)]+)\)/g))
      for (const l of by[1].split(',').map((x) => x.trim())) expect([e, l, labels.has(l)]).toEqual([e, l, true]);
  }
});
