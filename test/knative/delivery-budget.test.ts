// The retry budget of every delivery in knative/ against the InMemoryChannel's
// fan-out cap: the channel gives up on a fan-out after 15 minutes and cancels
// the attempt in flight and the dead-letter send with it, so a delivery's worst
// case (every attempt timing out, every backoff waited) must end well before.
// Backoffs as Knative computes them: exponential is delay * 2^i for the i-th
// retry from 0, linear is delay * (i + 1); go-retryablehttp's maximum does not
// cap them. The table in knative/README.md is checked against the same numbers.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { CORE_SCHEMA, loadAll } from 'js-yaml';
import { MAX_WAIT_SECONDS } from '../../functions/commands';
import { Json, ROOT, at, isObj, isoDurationSeconds, kindOf, loadManifests, nameOf, str } from './manifests';

/** The InMemoryChannel's fan-out timeout (eventing pkg/channel/fanout). */
const FANOUT_CAP_SECONDS = 15 * 60;
/** Left of the cap for the dead-letter sink's own cold start and the reply's delivery. */
const END_MARGIN_SECONDS = 120;
/** Per attempt, above the longest `wait`: the activator holds the request through a cold start. */
const COLD_START_SECONDS = 30;

interface Budget {
  retry: number;
  timeout: number;
  backoffs: number[];
  worst: number;
}

function budgetOf(what: string, delivery: Json | undefined): Budget {
  if (!isObj(delivery)) throw new Error(`${what}: no delivery`);
  const retry = Number(delivery.retry ?? 0);
  const timeout = isoDurationSeconds(str(delivery.timeout));
  const delay = isoDurationSeconds(str(delivery.backoffDelay));
  const backoffs = Array.from({ length: retry }, (_, i) =>
    delivery.backoffPolicy === 'linear' ? delay * (i + 1) : delay * 2 ** i,
  );
  return { retry, timeout, backoffs, worst: timeout * (retry + 1) + backoffs.reduce((a, b) => a + b, 0) };
}

const manifests = loadManifests();
const services = manifests.filter((m) => kindOf(m.doc) === 'serving.knative.dev/v1 Service');
const deliveries = manifests
  .filter((m) => ['eventing.knative.dev/v1 Trigger', 'eventing.knative.dev/v1 Broker'].includes(kindOf(m.doc)))
  .map((m) => ({
    name: `${str(m.doc.kind)}/${nameOf(m.doc)}`,
    budget: budgetOf(nameOf(m.doc), at(m.doc, 'spec', 'delivery')),
  }));

describe.each(deliveries)('$name', ({ budget }) => {
  test(`worst case ends ${END_MARGIN_SECONDS} s before the 15-minute fan-out cap`, () => {
    expect(budget.worst).toBeLessThan(FANOUT_CAP_SECONDS - END_MARGIN_SECONDS);
  });

  test(`each attempt has the longest wait plus ${COLD_START_SECONDS} s, and ends before every Service's timeout`, () => {
    expect(budget.timeout).toBeGreaterThanOrEqual(MAX_WAIT_SECONDS + COLD_START_SECONDS);
    for (const s of services) {
      expect([nameOf(s.doc), budget.timeout < Number(at(s.doc, 'spec', 'template', 'spec', 'timeoutSeconds'))]).toEqual(
        [nameOf(s.doc), true],
      );
    }
  });
});

test('knative/README.md has the table of these numbers', () => {
  const readme = readFileSync(path.join(ROOT, 'knative/README.md'), 'utf8');
  const rows = new Set<string>();
  for (const { budget } of deliveries) {
    const backoff = budget.backoffs.length ? budget.backoffs.map((b) => `${b} s`).join(' + ') : 'none';
    rows.add(
      `| ${budget.retry} | ${backoff} | ${budget.timeout} s | ${budget.worst} s | ${FANOUT_CAP_SECONDS - budget.worst} s |`,
    );
  }
  for (const row of rows) expect(readme).toContain(row);
});

test('every result Trigger in knative/README.md carries its own dead-letter sink', () => {
  const readme = readFileSync(path.join(ROOT, 'knative/README.md'), 'utf8');
  const blocks = [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)]
    .map((m) => m[1])
    .filter((b) => /^kind: Trigger$/m.test(b));
  expect(blocks.length).toBeGreaterThan(0);
  for (const b of blocks) {
    const t = loadAll(b, { schema: CORE_SCHEMA }).filter(isObj)[0];
    expect([nameOf(t), at(t, 'spec', 'delivery', 'deadLetterSink', 'ref', 'name')]).toEqual([
      nameOf(t),
      'virtwake-deadletter',
    ]);
  }
});
