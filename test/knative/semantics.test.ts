// What the upstream schemas cannot see: that knative/ and func.yaml agree with
// functions/commands.ts, with each other, and with the Knative defaults that
// the admission webhooks enforce.
import path from 'node:path';
import {
  COMMANDS,
  MAX_WAIT_SECONDS,
  OBSERVERS,
  REAPER_REPLY_TYPE,
  REPLY_SUFFIXES,
  STATE_CHANGED_TYPE,
} from '../../functions/commands';
import {
  Json,
  KNATIVE_DIR,
  Manifest,
  Obj,
  ROOT,
  at,
  isObj,
  isoDurationSeconds,
  kindOf,
  loadManifests,
  loadYamlFile,
  nameOf,
  str,
} from './manifests';

const manifests = loadManifests();
const kustomization = loadYamlFile(path.join(KNATIVE_DIR, 'kustomization.yaml'))[0];
const NAMESPACE = str(kustomization.namespace);
const BROKER = 'virtwake';
const DLS_SERVICE = 'virtwake-deadletter';

const ofKind = (k: string) => manifests.filter((m) => kindOf(m.doc) === k);
const triggers = ofKind('eventing.knative.dev/v1 Trigger');
const services = ofKind('serving.knative.dev/v1 Service');
const eventTypes = ofKind('eventing.knative.dev/v1beta3 EventType');
const serviceNamed = (n: string) => services.find((s) => nameOf(s.doc) === n);
const list = (v: Json | undefined): Json[] => (Array.isArray(v) ? v : []);

/** VIRTWAKE_FUNCTIONS of the Services that serve no CloudEvent type of COMMANDS. */
const NON_COMMAND_SERVICES: Record<string, string> = {
  'virtwake-deadletter': 'deadletter',
  'virtwake-wake-proxy': 'wake-proxy',
};

function container(svc: Manifest): Obj {
  const cs = list(at(svc.doc, 'spec', 'template', 'spec', 'containers'));
  expect(cs).toHaveLength(1);
  const c = cs[0];
  if (!isObj(c)) throw new Error(`${nameOf(svc.doc)}: container is not an object`);
  return c;
}

function env(svc: Manifest): Map<string, Obj> {
  return new Map(
    list(container(svc).env)
      .filter(isObj)
      .map((e) => [str(e.name), e]),
  );
}

const ksvcRef = (name: string) => ({ apiVersion: 'serving.knative.dev/v1', kind: 'Service', name });

function expectDelivery(what: string, delivery: Json | undefined, timeoutCap: number): void {
  if (!isObj(delivery)) throw new Error(`${what}: no delivery`);
  expect([what, typeof delivery.retry === 'number' && delivery.retry > 0]).toEqual([what, true]);
  expect([what, delivery.backoffPolicy]).toEqual([what, 'exponential']);
  expect([what, isoDurationSeconds(str(delivery.backoffDelay)) > 0]).toEqual([what, true]);
  const timeout = isoDurationSeconds(str(delivery.timeout));
  // Above the longest `wait`, below the subscriber's own request timeout.
  expect([what, timeout > MAX_WAIT_SECONDS, timeout < timeoutCap]).toEqual([what, true, true]);
  expect([what, at(delivery, 'deadLetterSink', 'ref')]).toEqual([what, ksvcRef(DLS_SERVICE)]);
  // Needs the alpha flag delivery-retryafter; the webhook rejects it otherwise.
  expect([what, delivery.retryAfterMax]).toEqual([what, undefined]);
}

const timeoutSecondsOf = (name: string) => {
  const s = serviceNamed(name);
  return s ? Number(at(s.doc, 'spec', 'template', 'spec', 'timeoutSeconds')) : NaN;
};

describe('Triggers follow COMMANDS', () => {
  test.each(COMMANDS.map((c) => [c.type, c.service, c] as const))(
    '%s has exactly one Trigger, to %s',
    (type, _service, c) => {
      const matching = triggers.filter((t) =>
        list(at(t.doc, 'spec', 'filters')).some((f) => str(at(f, 'exact', 'type')) === type),
      );
      expect(matching).toHaveLength(1);
      const t = matching[0].doc;
      expect(at(t, 'spec', 'broker')).toBe(BROKER);
      expect(at(t, 'spec', 'filter')).toBeUndefined(); // legacy field: `filters` only
      const exact =
        c.fn === 'reaper' ? { type, source: `/apis/v1/namespaces/${NAMESPACE}/pingsources/virtwake-reaper` } : { type };
      expect(at(t, 'spec', 'filters')).toEqual([{ exact }]);
      expect(at(t, 'spec', 'subscriber')).toEqual({ ref: ksvcRef(c.service) });
      expectDelivery(nameOf(t), at(t, 'spec', 'delivery'), timeoutSecondsOf(c.service));
    },
  );

  test('no Trigger beyond the commands, and none can match a reply type', () => {
    expect(triggers).toHaveLength(COMMANDS.length);
    const replies = new Set(replyTypes());
    for (const t of triggers) {
      for (const f of list(at(t.doc, 'spec', 'filters'))) {
        expect(Object.keys(isObj(f) ? f : {})).toEqual(['exact']); // one dialect per expression
        expect(replies.has(str(at(f, 'exact', 'type')))).toBe(false);
      }
    }
  });

  test('the reaper Trigger names the PingSource that exists', () => {
    const ping = ofKind('sources.knative.dev/v1 PingSource');
    expect(ping.map((p) => nameOf(p.doc))).toEqual(['virtwake-reaper']);
    expect(at(ping[0].doc, 'spec', 'sink', 'ref')).toEqual({
      apiVersion: 'eventing.knative.dev/v1',
      kind: 'Broker',
      name: BROKER,
    });
    expect(at(ping[0].doc, 'spec', 'contentType')).toBe('application/json');
    expect(JSON.parse(str(at(ping[0].doc, 'spec', 'data')))).toEqual({ action: 'reap' });
  });
});

describe('Broker', () => {
  test('is the one the Triggers use, with a complete delivery', () => {
    const brokers = ofKind('eventing.knative.dev/v1 Broker');
    expect(brokers.map((b) => nameOf(b.doc))).toEqual([BROKER]);
    // func-created Triggers inherit this, so it must be complete too.
    expectDelivery(
      'Broker',
      at(brokers[0].doc, 'spec', 'delivery'),
      Math.min(...services.map((s) => timeoutSecondsOf(nameOf(s.doc)))),
    );
  });
});

describe('func.yaml follows COMMANDS', () => {
  const func = loadYamlFile(path.join(ROOT, 'func.yaml'))[0];
  const subs = list(at(func, 'deploy', 'subscriptions'));

  test('one subscription per command type, on the Broker, exact type filter only', () => {
    expect(subs.map((s) => str(at(s, 'filters', 'type'))).sort()).toEqual(COMMANDS.map((c) => c.type).sort());
    for (const s of subs) {
      expect(at(s, 'source')).toBe(BROKER);
      expect(Object.keys(isObj(at(s, 'filters')) ? (at(s, 'filters') as Obj) : {})).toEqual(['type']);
    }
  });
});

describe('Knative Services', () => {
  const servedByCommands = [...new Set(COMMANDS.map((c) => c.service))];
  const expectedNames = [...servedByCommands, ...Object.keys(NON_COMMAND_SERVICES)].sort();

  test('exactly the Services COMMANDS names, plus the dead-letter sink and the wake proxy', () => {
    expect(services.map((s) => nameOf(s.doc)).sort()).toEqual(expectedNames);
  });

  test.each(expectedNames)('%s: VIRTWAKE_FUNCTIONS matches COMMANDS', (name) => {
    const svc = serviceNamed(name)!;
    const want =
      NON_COMMAND_SERVICES[name] ?? [...new Set(COMMANDS.filter((c) => c.service === name).map((c) => c.fn))].join(',');
    expect(env(svc).get('VIRTWAKE_FUNCTIONS')).toEqual({ name: 'VIRTWAKE_FUNCTIONS', value: want });
  });

  test.each(expectedNames)('%s: timeouts, scale, probes, identity, security', (name) => {
    const svc = serviceNamed(name)!;
    const spec = at(svc.doc, 'spec', 'template', 'spec') as Obj;
    const annotations = (at(svc.doc, 'spec', 'template', 'metadata', 'annotations') ?? {}) as Obj;
    const c = container(svc);

    expect(Number(spec.timeoutSeconds)).toBeGreaterThan(MAX_WAIT_SECONDS);
    expect(Number(spec.timeoutSeconds)).toBeLessThanOrEqual(600); // max-revision-timeout-seconds default
    expect(typeof spec.containerConcurrency).toBe('number');
    expect(spec.serviceAccountName).toBe('virtwake');
    const minScale = str(annotations['autoscaling.knative.dev/min-scale']);
    expect(minScale).toBe(name === 'virtwake-wake-proxy' ? '1' : '0');
    expect(Number(str(annotations['autoscaling.knative.dev/max-scale']))).toBeGreaterThanOrEqual(
      Math.max(1, Number(minScale)),
    );

    expect(at(c, 'readinessProbe', 'httpGet', 'path')).toBe('/health/readiness');
    expect(at(c, 'livenessProbe', 'httpGet', 'path')).toBe('/health/liveness');
    expect(list(c.ports)).toEqual([{ name: 'http1', containerPort: 8080 }]);
    expect(isObj(at(c, 'resources', 'requests')) && isObj(at(c, 'resources', 'limits'))).toBe(true);

    const sc = c.securityContext as Obj;
    expect(sc.runAsNonRoot).toBe(true);
    expect(Number.isInteger(sc.runAsUser) && (sc.runAsUser as number) > 0).toBe(true);
    expect(sc.allowPrivilegeEscalation).toBe(false);
    expect(sc.readOnlyRootFilesystem).toBe(true);
    expect(at(sc, 'capabilities', 'drop')).toEqual(['ALL']);
    expect(at(sc, 'seccompProfile', 'type')).toBe('RuntimeDefault');
    // Off by default in Knative Serving (kubernetes.podspec-securitycontext,
    // kubernetes.podspec-fieldref): the webhook would reject the Service.
    expect(spec.securityContext).toBeUndefined();
    for (const e of env(svc).values()) {
      expect([str(e.name), at(e, 'valueFrom', 'fieldRef'), at(e, 'valueFrom', 'resourceFieldRef')]).toEqual([
        str(e.name),
        undefined,
        undefined,
      ]);
    }
    // Knative sets PORT itself and refuses a user-set one.
    expect(env(svc).has('PORT')).toBe(false);
  });

  test('only the wake proxy is reachable from outside the cluster', () => {
    for (const s of services) {
      const visibility = at(s.doc, 'metadata', 'labels', 'networking.knative.dev/visibility');
      expect([nameOf(s.doc), visibility]).toEqual([
        nameOf(s.doc),
        nameOf(s.doc) === 'virtwake-wake-proxy' ? undefined : 'cluster-local',
      ]);
    }
  });

  test('mounted files exist in their ConfigMaps, read-only, where the env says', () => {
    const configMaps = new Map(ofKind('v1 ConfigMap').map((m) => [nameOf(m.doc), m.doc]));
    const fileEnvs: Record<string, string> = {
      VIRTWAKE_POLICY_FILE: 'virtwake-policy',
      VIRTWAKE_PROXY_ROUTES: 'virtwake-proxy-routes',
    };
    for (const svc of services) {
      const c = container(svc);
      const volumes = new Map(
        list(at(svc.doc, 'spec', 'template', 'spec', 'volumes'))
          .filter(isObj)
          .map((v) => [str(v.name), v]),
      );
      const mounts = list(c.volumeMounts).filter(isObj);
      for (const [envName, cmName] of Object.entries(fileEnvs)) {
        const e = env(svc).get(envName);
        if (!e) continue;
        const file = str(e.value);
        const mount = mounts.find((m) => file.startsWith(`${str(m.mountPath)}/`));
        expect([nameOf(svc.doc), envName, mount?.readOnly]).toEqual([nameOf(svc.doc), envName, true]);
        expect(at(volumes.get(str(mount!.name)), 'configMap', 'name')).toBe(cmName);
        const key = file.slice(str(mount!.mountPath).length + 1);
        expect(typeof at(configMaps.get(cmName), 'data', key)).toBe('string');
      }
    }
    expect(env(serviceNamed('virtwake-snapshot')!).has('VIRTWAKE_POLICY_FILE')).toBe(true);
    expect(env(serviceNamed('virtwake-wake-proxy')!).has('VIRTWAKE_POLICY_FILE')).toBe(true);
    expect(env(serviceNamed('virtwake-wake-proxy')!).has('VIRTWAKE_PROXY_ROUTES')).toBe(true);
  });
});

function replyTypes(): string[] {
  return [
    ...COMMANDS.filter((c) => !OBSERVERS.has(c.fn)).flatMap((c) => REPLY_SUFFIXES.map((s) => `${c.type}.${s}`)),
    REAPER_REPLY_TYPE,
    STATE_CHANGED_TYPE,
  ];
}

describe('EventTypes', () => {
  const typeOf = (m: Manifest) => {
    const attr = list(at(m.doc, 'spec', 'attributes')).find((a) => str(at(a, 'name')) === 'type');
    return str(at(attr, 'value'));
  };

  test('register every command with a schema and every reply type, once', () => {
    const want = [...COMMANDS.filter((c) => c.schema).map((c) => c.type), ...replyTypes()].sort();
    expect(eventTypes.map(typeOf).sort()).toEqual(want);
    expect(eventTypes.map((m) => nameOf(m.doc)).sort()).toEqual(want);
  });

  test.each(eventTypes.map((m) => [nameOf(m.doc), m] as const))(
    '%s: attributes the webhook requires, Broker reference',
    (_n, m) => {
      const names = list(at(m.doc, 'spec', 'attributes')).map((a) => str(at(a, 'name')));
      expect(names).toEqual(expect.arrayContaining(['type', 'source', 'specversion', 'id']));
      expect(new Set(names).size).toBe(names.length);
      // Only these survive the conversion to the stored v1beta2 version.
      expect(names.every((n) => ['type', 'source', 'specversion', 'id', 'schemadata'].includes(n))).toBe(true);
      expect(at(m.doc, 'spec', 'reference')).toEqual({
        apiVersion: 'eventing.knative.dev/v1',
        kind: 'Broker',
        name: BROKER,
      });
    },
  );

  test('command EventTypes point at schemas/<type>.json', () => {
    for (const c of COMMANDS.filter((x) => x.schema)) {
      const m = eventTypes.find((e) => nameOf(e.doc) === c.type)!;
      const schema = list(at(m.doc, 'spec', 'attributes')).find((a) => str(at(a, 'name')) === 'schemadata');
      expect(str(at(schema, 'value'))).toMatch(new RegExp(`/schemas/${c.type.replace(/\./g, '\\.')}\\.json$`));
    }
  });
});

describe('RBAC wiring', () => {
  // Two Roles, each bound to its own ServiceAccount: virtwake's (the Services run as it) and the
  // ApiServerSource's (read-only, contract §2).
  test.each([
    ['knative/rbac.yaml', 'virtwake'],
    ['knative/apiserversource.yaml', 'virtwake-apiserversource'],
  ])('%s: one Role, bound to the ServiceAccount %s', (file, account) => {
    const roles = ofKind('rbac.authorization.k8s.io/v1 Role').filter((r) => r.file === file);
    expect(roles).toHaveLength(1);
    const bindings = ofKind('rbac.authorization.k8s.io/v1 RoleBinding').filter((b) => b.file === file);
    expect(bindings).toHaveLength(1);
    expect(at(bindings[0].doc, 'roleRef')).toEqual({
      apiGroup: 'rbac.authorization.k8s.io',
      kind: 'Role',
      name: nameOf(roles[0].doc),
    });
    // `default` is what kustomize's namespace transformer rewrites to the kustomization's
    // namespace; kustomize.test.ts checks the rendered subject (virtwake, and other in an overlay).
    expect(at(bindings[0].doc, 'subjects')).toEqual([{ kind: 'ServiceAccount', name: account, namespace: 'default' }]);
  });

  test('no other Roles or ServiceAccounts; the ApiServerSource runs as its own, the Services as virtwake', () => {
    expect(
      ofKind('rbac.authorization.k8s.io/v1 Role')
        .map((r) => r.file)
        .sort(),
    ).toEqual(['knative/apiserversource.yaml', 'knative/rbac.yaml']);
    expect(
      ofKind('v1 ServiceAccount')
        .map((s) => nameOf(s.doc))
        .sort(),
    ).toEqual(['virtwake', 'virtwake-apiserversource']);
    const sources = ofKind('sources.knative.dev/v1 ApiServerSource');
    expect(sources.map((s) => at(s.doc, 'spec', 'serviceAccountName'))).toEqual(['virtwake-apiserversource']);
    expect(sources.map((s) => at(s.doc, 'spec', 'mode'))).toEqual(['Resource']);
    expect(sources.map((s) => at(s.doc, 'spec', 'sink', 'ref'))).toEqual([
      { apiVersion: 'eventing.knative.dev/v1', kind: 'Broker', name: BROKER },
    ]);
  });

  test('the SinkBinding gives K_SINK (the Broker) to the Service that serves the results and the tick', () => {
    const bindings = ofKind('sources.knative.dev/v1 SinkBinding');
    const served = [...new Set(COMMANDS.filter((c) => OBSERVERS.has(c.fn)).map((c) => c.service))];
    expect(bindings.map((b) => at(b.doc, 'spec', 'subject', 'name'))).toEqual(served);
    expect(bindings.map((b) => at(b.doc, 'spec', 'sink', 'ref'))).toEqual([
      { apiVersion: 'eventing.knative.dev/v1', kind: 'Broker', name: BROKER },
    ]);
  });

  test('the Namespace, if shipped, is the kustomization namespace', () => {
    expect(ofKind('v1 Namespace').map((n) => nameOf(n.doc))).toEqual([NAMESPACE]);
  });
});

describe('delivery durations', () => {
  test.each([
    ['PT285S', 285],
    ['PT2S', 2],
    ['PT0.2S', 0.2],
    ['PT1H', 3600],
    ['PT4M45S', 285],
    ['P1DT1S', 86401],
  ])('%s = %s s', (d, s) => {
    expect(isoDurationSeconds(d)).toBeCloseTo(s);
  });
  test.each(['285s', 'P', 'PT', '', 'PT-1S'])('%s is refused', (d) => {
    expect(() => isoDurationSeconds(d)).toThrow();
  });
});
