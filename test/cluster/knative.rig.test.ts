import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { virtwakeManifests } from './rig/knative';
import { apply, collectionOf, conditionTrue } from './rig/manifests';
import { hostIP } from './rig/node/network';
import {
  createVM as createVMIn,
  eventually,
  OPT_IN,
  rig,
  vmManifest,
  vmPath as vmPathIn,
  vmRunning as vmRunningIn,
} from './helpers';

// Knative Eventing's own programs on the rig (rig/knative.ts): a producer posts to the Broker's
// ingress, the MT channel-based Broker fans out over the InMemoryChannel to the Triggers of
// knative/, virtwake runs as the Knative Services of knative/services.yaml (Serving stood in
// for by the rig's node), and replies go back into the Broker. A result Trigger here sends
// every outcome event to a receiver in this process.

const { state, kube } = rig();
/** Where knative/ is installed (its kustomization's namespace). */
const NS = 'virtwake';
const createVM = (k: typeof kube, vm: string, runStrategy: string) => createVMIn(k, vm, runStrategy, OPT_IN, {}, NS);
const vmPath = (vm?: string) => vmPathIn(vm, NS);
const vmRunning = (k: typeof kube, vm: string) => vmRunningIn(k, vm, NS);
const EVENTING = '/apis/eventing.knative.dev/v1/namespaces/virtwake';

interface Received {
  path: string;
  type: string;
  id: string;
  source: string;
  headers: http.IncomingHttpHeaders;
  data: any;
}

const received: Received[] = [];
let receiver: http.Server;
let receiverURL: string;
let brokerURL: string;
let n = 0;
// Unique per run: a rig kept for debugging (VIRTWAKE_RIG_STATE) may run this file again.
const run = Date.now().toString(36).slice(-4);
const name = (what: string) => `kn-${what}-${run}-${++n}`;

async function post(
  type: string,
  data: unknown,
  id = `kn-${Date.now()}-${++n}`,
): Promise<{ status: number; id: string }> {
  const res = await fetch(brokerURL, {
    method: 'POST',
    headers: {
      'ce-specversion': '1.0',
      'ce-type': type,
      'ce-source': '/rig/producer',
      'ce-id': id,
      'content-type': 'application/json',
    },
    body: JSON.stringify(data),
  });
  return { status: res.status, id };
}

/** The log of the node's pod `<namespace>_<name prefix>…` (the node writes one file per pod). */
function podLog(prefix: string): string {
  const dir = path.join(state.dir, 'pods');
  const file = readdirSync(dir).find((f) => f.startsWith(prefix) && f.endsWith('.log'));
  return file ? readFileSync(path.join(dir, file), 'utf8') : '';
}

function deadLetters(id: string): any[] {
  const lines = podLog('virtwake_virtwake-deadletter-').split('\n');
  return lines.map((l) => (l.startsWith('{') ? JSON.parse(l) : {})).filter((l: any) => l.id === id);
}

/**
 * Delete a Trigger and wait until the Broker's channel no longer lists it. One at a time:
 * Knative's Subscription finalizer patches the InMemoryChannel from its informer's copy, and two
 * Subscriptions finalized at once can put a removed subscriber back (seen on this rig); the
 * channel then fails every event posted to the Broker (500) on the missing Trigger's 404.
 */
async function removeTrigger(trigger: string): Promise<void> {
  await kube.request('DELETE', `${EVENTING}/triggers/${trigger}`).catch(() => undefined);
  await eventually(`Trigger ${trigger} gone from the channel`, async () => {
    const imc = await kube.get(`/apis/messaging.knative.dev/v1/namespaces/${NS}/inmemorychannels/virtwake-kne-trigger`);
    const uris = (imc?.spec?.subscribers ?? []).map((x: any) => String(x.subscriberUri));
    return !uris.some((u: string) => u.includes(`/triggers/${NS}/${trigger}/`));
  });
}

/** Post an event of `type` every 2 s until the receiver gets one that `arrived` accepts. */
async function untilDelivered(type: string, arrived: (e: Received) => boolean): Promise<Received> {
  const ids = new Set<string>();
  return eventually(`a ${type} delivered`, async () => {
    const got = received.find((e) => ids.has(e.id) && arrived(e));
    if (got) return got;
    ids.add((await post(type, {})).id);
    await new Promise((r) => setTimeout(r, 2000));
    return undefined;
  });
}

/** A start posted to the Broker is answered `accepted` through it: the Broker's path is whole. */
async function startGoesThrough(what: string): Promise<void> {
  const vm = name(what);
  await createVM(kube, vm, 'Halted');
  const next = await post('io.virtwake.vm.start', { name: vm });
  await find(
    (e) => e.type === 'io.virtwake.vm.start.accepted' && e.headers['ce-causationid'] === next.id,
    `a start (${what}) through the Broker`,
  );
}

const find = (pred: (e: Received) => boolean, what: string, ms = 60_000) =>
  eventually(what, async () => received.find(pred), ms);

beforeAll(async () => {
  receiver = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      let data: unknown = body;
      try {
        data = JSON.parse(body);
      } catch {
        // not JSON: kept as text
      }
      received.push({
        path: req.url ?? '/',
        type: String(req.headers['ce-type']),
        id: String(req.headers['ce-id']),
        source: String(req.headers['ce-source']),
        headers: req.headers,
        data,
      });
      res.writeHead(202).end();
    });
  });
  const host = hostIP(state.knative.network);
  await new Promise<void>((r) => receiver.listen(0, host, r));
  const port = (receiver.address() as AddressInfo).port;
  receiverURL = `http://${host}:${port}`;
  await apply(kube, `${EVENTING}/triggers`, {
    apiVersion: 'eventing.knative.dev/v1',
    kind: 'Trigger',
    metadata: { name: `rig-results-${run}`, namespace: NS },
    spec: {
      broker: 'virtwake',
      filters: [
        {
          any: ['.accepted', '.completed', '.failed', '.changed'].map((s) => ({ suffix: { type: s } })),
        },
      ],
      subscriber: { uri: `http://${host}:${port}/` },
    },
  });
  await eventually(`Trigger rig-results-${run} Ready`, async () => {
    const t = await kube.get(`${EVENTING}/triggers/rig-results-${run}`);
    return conditionTrue(t, 'Ready');
  });
  const svc = await kube.get('/api/v1/namespaces/knative-eventing/services/broker-ingress');
  const broker = await kube.get(`${EVENTING}/brokers/virtwake`);
  // The Broker's address as Knative publishes it, reached from the node through the Service's ClusterIP.
  const url = new URL(broker.status.address.url);
  expect(url.hostname).toBe('broker-ingress.knative-eventing.svc.cluster.local');
  brokerURL = `http://${svc.spec.clusterIP}${url.pathname}`;
  // A Trigger can report Ready a moment before the channel's dispatcher fans out to it (seen on
  // this rig): send probes until one arrives, so that no outcome of a scenario is missed.
  await untilDelivered('rig.probe.completed', (e) => e.path === '/');
});

afterAll(async () => {
  receiver?.close();
  await removeTrigger(`rig-results-${run}`);
});

describe('Knative Eventing, for real', () => {
  test("every Knative object of knative/ as shipped is accepted by Eventing's webhook and becomes Ready", async () => {
    const kinds: Record<string, string> = {
      Broker: 'brokers',
      Trigger: 'triggers',
      ApiServerSource: 'apiserversources',
      PingSource: 'pingsources',
      SinkBinding: 'sinkbindings',
      EventType: 'eventtypes',
    };
    const shipped = virtwakeManifests().filter((d) => kinds[d.kind] || d.apiVersion === 'serving.knative.dev/v1');
    expect(shipped.filter((d) => d.kind === 'EventType').length).toBeGreaterThan(10);
    for (const d of shipped) {
      const plural = kinds[d.kind] ?? 'services';
      const at = `${collectionOf({ plural, namespaced: true }, d.apiVersion, NS)}/${d.metadata.name}`;
      await eventually(`${d.kind} ${d.metadata.name} Ready`, async () => conditionTrue(await kube.get(at), 'Ready'));
    }
  });

  test('the SinkBinding webhook gives virtwake-reaper the Broker as K_SINK', async () => {
    const ksvc = await kube.get(`/apis/serving.knative.dev/v1/namespaces/${NS}/services/virtwake-reaper`);
    const env = ksvc.spec.template.spec.containers[0].env as Array<{ name: string; value?: string }>;
    expect(env.find((e) => e.name === 'K_SINK')?.value).toBe(
      'http://broker-ingress.knative-eventing.svc.cluster.local/virtwake/virtwake',
    );
  });

  test('a start posted to the Broker runs the VM; accepted comes back as the reply, completed from the ApiServerSource', async () => {
    const vm = name('start');
    await createVM(kube, vm, 'Halted');
    const { status, id } = await post('io.virtwake.vm.start', { name: vm });
    expect(status).toBe(202);
    const accepted = await find(
      (e) => e.type === 'io.virtwake.vm.start.accepted' && e.headers['ce-causationid'] === id,
      'start.accepted through the Broker',
    );
    expect(accepted.data).toMatchObject({ namespace: NS, name: vm, outcome: 'accepted' });
    await vmRunning(kube, vm);
    const completed = await find(
      (e) => e.type === 'io.virtwake.vm.start.completed' && e.headers['ce-causationid'] === id,
      'start.completed from the ApiServerSource change',
    );
    expect(completed.data).toMatchObject({ namespace: NS, name: vm, outcome: 'completed' });
    expect(
      received.filter((e) => e.type === 'io.virtwake.vm.start.completed' && e.headers['ce-causationid'] === id),
    ).toHaveLength(1);
  });

  test('a 400 from virtwake is not retried: the dead-letter sink gets the command with knativeerrorcode 400', async () => {
    const { status, id } = await post('io.virtwake.vm.start', { name: 'Not_A_Valid_Name' });
    expect(status).toBe(202);
    const line = await eventually('the dead-letter log line', async () => deadLetters(id)[0]);
    expect(line).toMatchObject({
      deadLetter: true,
      knativeerrorcode: '400',
      knativeerrordest: 'http://virtwake-vm.virtwake.svc.cluster.local',
      type: 'io.virtwake.vm.start',
    });
    // The problem body, as the filter passed it on (knativeerrordata), says what to fix.
    expect(line.knativeerrordata).toMatchObject({ status: 400 });
    expect(JSON.stringify(line.knativeerrordata)).toContain('/name');
    // The dispatcher that carried the error body is still serving: the next command goes through.
    await startGoesThrough('after-400');
  });

  test('a PingSource tick reaches the reaper through the Broker', async () => {
    const ps = await kube.get(`/apis/sources.knative.dev/v1/namespaces/${NS}/pingsources/virtwake-reaper`);
    await kube.request(
      'PATCH',
      `/apis/sources.knative.dev/v1/namespaces/${NS}/pingsources/virtwake-reaper`,
      { spec: { schedule: '* * * * *' } },
      'application/merge-patch+json',
    );
    try {
      const done = await find(
        (e) => e.type === 'io.virtwake.reaper.completed',
        'reaper.completed after a tick',
        90_000,
      );
      expect(done.data).toBeDefined();
    } finally {
      await kube.request(
        'PATCH',
        `/apis/sources.knative.dev/v1/namespaces/${NS}/pingsources/virtwake-reaper`,
        { spec: { schedule: ps.spec.schedule } },
        'application/merge-patch+json',
      );
    }
  }, 120_000);

  test('a wait longer than the Trigger timeout: Knative gives up and dead-letters, the VM stops once, completed comes from the ApiServerSource', async () => {
    const trigger = `${EVENTING}/triggers/virtwake-on-stop`;
    const shipped = await kube.get(trigger);
    // The shipped Trigger, with a per-attempt timeout shorter than the guest's shutdown.
    await kube.request(
      'PATCH',
      trigger,
      { spec: { delivery: { timeout: 'PT2S', retry: 1, backoffDelay: 'PT1S' } } },
      'application/merge-patch+json',
    );
    try {
      await eventually('Trigger virtwake-on-stop Ready with the new delivery', async () => {
        const t = await kube.get(trigger);
        return t.status?.observedGeneration === t.metadata.generation && conditionTrue(t, 'Ready') ? t : undefined;
      });
      const vm = name('long-stop');
      const manifest = vmManifest(vm, 'Always', OPT_IN, {}, NS);
      manifest.spec.template.spec.terminationGracePeriodSeconds = 8;
      await kube.request('POST', vmPath(), manifest);
      await vmRunning(kube, vm);
      const { status, id } = await post('io.virtwake.vm.stop', { name: vm, wait: { timeoutSeconds: 60 } });
      expect(status).toBe(202);
      // Both attempts time out while the guest shuts down: Knative dead-letters the command, and
      // without knativeerrorcode/dest/data, since it read no answer.
      const dead = await eventually(
        'the stop dead-lettered after its timed-out attempts',
        async () => deadLetters(id)[0],
      );
      expect(dead).toMatchObject({ type: 'io.virtwake.vm.stop', noAnswer: true });
      expect(dead.knativeerrorcode).toBeUndefined();
      const completed = await find(
        (e) => e.type === 'io.virtwake.vm.stop.completed' && e.headers['ce-causationid'] === id,
        'stop.completed from the ApiServerSource once the VM is Stopped',
      );
      expect(completed.data).toMatchObject({ namespace: NS, name: vm, outcome: 'completed' });
      expect((await kube.get(vmPath(vm))).status.printableStatus).toBe('Stopped');
      // One effect, one outcome: the redelivery did not stop anything twice, nothing failed.
      await new Promise((r) => setTimeout(r, 3000));
      const mine = received.filter((e) => e.headers['ce-causationid'] === id);
      expect(mine.filter((e) => e.type === 'io.virtwake.vm.stop.completed')).toHaveLength(1);
      expect(mine.filter((e) => e.type.endsWith('.failed'))).toEqual([]);
    } finally {
      await kube.request(
        'PATCH',
        trigger,
        { spec: { delivery: shipped.spec.delivery } },
        'application/merge-patch+json',
      );
    }
  }, 120_000);

  // Why every virtwake error body is at most 700 bytes (contract §3): Knative's dispatcher base64s
  // the subscriber's body into knativeerrordata, cut at 1024 characters, into a buffer too short
  // for a longer body (pkg/kncloudevents/event_dispatcher.go dispatchExecutionInfoTransformers).
  test('an error body over 768 bytes bound for a dead-letter sink crashes the InMemoryChannel dispatcher; a 700-byte one is dead-lettered', async () => {
    const failing = http.createServer((req, res) => {
      req.resume();
      const size = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('size'));
      res.writeHead(500, { 'content-type': 'text/plain' }).end('e'.repeat(size));
    });
    const host = hostIP(state.knative.network);
    await new Promise<void>((r) => failing.listen(0, host, r));
    const port = (failing.address() as AddressInfo).port;
    try {
      for (const size of [700, 2000]) {
        await apply(kube, `${EVENTING}/triggers`, {
          apiVersion: 'eventing.knative.dev/v1',
          kind: 'Trigger',
          metadata: { name: `rig-error-${size}-${run}`, namespace: NS },
          spec: {
            broker: 'virtwake',
            filters: [{ exact: { type: `rig.error.${size}` } }],
            subscriber: { uri: `http://${host}:${port}/?size=${size}` },
            delivery: { retry: 0, deadLetterSink: { uri: `${receiverURL}/dead-letter` } },
          },
        });
        await eventually(`Trigger rig-error-${size}-${run} Ready`, async () => {
          const t = await kube.get(`${EVENTING}/triggers/rig-error-${size}-${run}`);
          return conditionTrue(t, 'Ready');
        });
      }

      const dead = await untilDelivered('rig.error.700', (e) => e.path === '/dead-letter');
      expect(dead.headers['ce-knativeerrorcode']).toBe('500');
      expect(Buffer.from(String(dead.headers['ce-knativeerrordata']), 'base64').toString()).toBe('e'.repeat(700));

      const panic = 'panic: runtime error: index out of range [1024] with length 1024';
      const panics = () => podLog('knative-eventing_imc-dispatcher-').split(panic).length - 1;
      const before = panics();
      const longIds: string[] = [];
      await eventually('the dispatcher panics', async () => {
        if (panics() > before) return true;
        longIds.push((await post('rig.error.2000', {})).id);
        await new Promise((r) => setTimeout(r, 2000));
        return panics() > before;
      });
      // The event is lost with the process: nothing reaches the dead-letter sink.
      expect(received.filter((e) => longIds.includes(e.id))).toEqual([]);
    } finally {
      failing.close();
      for (const size of [700, 2000]) await removeTrigger(`rig-error-${size}-${run}`);
      // The kubelet stand-in restarts the dispatcher; the next files need the Broker whole again.
      await eventually('imc-dispatcher Available again', async () => {
        const d = await kube.get('/apis/apps/v1/namespaces/knative-eventing/deployments/imc-dispatcher');
        return conditionTrue(d, 'Available');
      });
    }
    await startGoesThrough('after-crash');
  }, 120_000);
});
