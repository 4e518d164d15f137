// The container build (Containerfile, .dockerignore) and the cluster scripts
// (scripts/cluster-up.sh, scripts/e2e.sh). The scripts need a kind cluster
// and cannot run in CI; here they are syntax-checked, linted with shellcheck,
// and the YAML they embed is validated.
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { CORE_SCHEMA, load, loadAll } from 'js-yaml';
import Ajv from 'ajv';
import { ROOT, at, isObj, schemaFileFor, str, validate, validatorFor } from './manifests';

const SCRIPTS = ['scripts/cluster-up.sh', 'scripts/e2e.sh', 'scripts/send-event.sh'];
const read = (rel: string) => readFileSync(path.join(ROOT, rel), 'utf8');

/** The body of the heredoc `<<'TAG'` / `<<TAG` in a script. */
function heredoc(script: string, tag: string): string {
  const lines = script.split('\n');
  const start = lines.findIndex((l) => new RegExp(`<<-?'?${tag}'?\\s*$`).test(l));
  if (start < 0) throw new Error(`no heredoc ${tag}`);
  const end = lines.findIndex((l, i) => i > start && l === tag);
  if (end < 0) throw new Error(`heredoc ${tag} is not closed`);
  return lines.slice(start + 1, end).join('\n');
}

describe.each(SCRIPTS)('%s', (rel) => {
  const file = path.join(ROOT, rel);

  test('is executable and strict', () => {
    expect(statSync(file).mode & 0o111).not.toBe(0);
    const text = read(rel);
    expect(text.startsWith('#!/usr/bin/env bash\n')).toBe(true);
    expect(text).toMatch(/^set -euo pipefail$/m);
  });

  test('bash -n', () => {
    const r = spawnSync('bash', ['-n', file], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  test('shellcheck', () => {
    const probe = spawnSync('shellcheck', ['--version'], { encoding: 'utf8' });
    if (probe.error || probe.status !== 0) {
      throw new Error(
        'shellcheck is not installed: run `apt-get update && apt-get install -y shellcheck` (CI installs it in .ci/run)',
      );
    }
    const r = spawnSync('shellcheck', ['--severity=style', '--shell=bash', file], { encoding: 'utf8' });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});

describe('scripts/cluster-up.sh', () => {
  const text = read('scripts/cluster-up.sh');

  test('pins every version in a variable near the top', () => {
    const head = text.split('\n').slice(0, 30).join('\n');
    for (const v of [
      'KIND_NODE_IMAGE',
      'KUBEVIRT_VERSION',
      'KNATIVE_SERVING_VERSION',
      'KNATIVE_KOURIER_VERSION',
      'KNATIVE_EVENTING_VERSION',
    ]) {
      const m = new RegExp(`^${v}="\\$\\{${v}:-([^}]+)\\}"`, 'm').exec(head);
      expect([v, m?.[1]]).toEqual([v, expect.stringMatching(/\d+\.\d+\.\d+/)]);
      expect(m![1]).not.toMatch(/latest/);
    }
  });

  test('turns on KubeVirt software emulation and installs the pieces virtwake needs', () => {
    expect(text).toMatch(/"useEmulation":true/);
    for (const f of [
      'kubevirt-operator.yaml',
      'kubevirt-cr.yaml',
      'serving-crds.yaml',
      'serving-core.yaml',
      'kourier.yaml',
      'eventing-crds.yaml',
      'eventing-core.yaml',
      'in-memory-channel.yaml',
      'mt-channel-broker.yaml',
    ]) {
      expect(text).toContain(`/${f}"`);
    }
  });

  // kind decodes its config strictly (unknown fields are errors). This schema
  // follows kind's v1alpha4 types (pkg/apis/config/v1alpha4/types.go, v0.32).
  const mapOf = (type: string) => ({ type: 'object', additionalProperties: { type } });
  const port = { type: 'integer', minimum: 0, maximum: 65535 };
  const patches6902 = {
    type: 'array',
    items: {
      type: 'object',
      additionalProperties: false,
      required: ['group', 'version', 'kind', 'patch'],
      properties: {
        group: { type: 'string' },
        version: { type: 'string' },
        kind: { type: 'string' },
        patch: { type: 'string' },
      },
    },
  };
  const strings = { type: 'array', items: { type: 'string' } };
  const kindConfigSchema = {
    type: 'object',
    additionalProperties: false,
    required: ['kind', 'apiVersion'],
    properties: {
      kind: { const: 'Cluster' },
      apiVersion: { const: 'kind.x-k8s.io/v1alpha4' },
      name: { type: 'string' },
      featureGates: mapOf('boolean'),
      runtimeConfig: mapOf('string'),
      kubeadmConfigPatches: strings,
      kubeadmConfigPatchesJSON6902: patches6902,
      containerdConfigPatches: strings,
      containerdConfigPatchesJSON6902: strings,
      networking: {
        type: 'object',
        additionalProperties: false,
        properties: {
          ipFamily: { enum: ['ipv4', 'ipv6', 'dual'] },
          apiServerPort: port,
          apiServerAddress: { type: 'string' },
          podSubnet: { type: 'string' },
          serviceSubnet: { type: 'string' },
          disableDefaultCNI: { type: 'boolean' },
          kubeProxyMode: { enum: ['iptables', 'ipvs', 'nftables', 'none'] },
          dnsSearch: strings,
        },
      },
      nodes: {
        type: 'array',
        minItems: 1,
        items: {
          type: 'object',
          additionalProperties: false,
          properties: {
            role: { enum: ['control-plane', 'worker'] },
            image: { type: 'string' },
            labels: mapOf('string'),
            kubeadmConfigPatches: strings,
            kubeadmConfigPatchesJSON6902: patches6902,
            extraMounts: {
              type: 'array',
              items: {
                type: 'object',
                additionalProperties: false,
                properties: {
                  containerPath: { type: 'string' },
                  hostPath: { type: 'string' },
                  readOnly: { type: 'boolean' },
                  selinuxRelabel: { type: 'boolean' },
                  propagation: { enum: ['None', 'HostToContainer', 'Bidirectional'] },
                },
              },
            },
            extraPortMappings: {
              type: 'array',
              items: {
                type: 'object',
                additionalProperties: false,
                properties: {
                  containerPort: port,
                  hostPort: port,
                  listenAddress: { type: 'string' },
                  protocol: { enum: ['TCP', 'UDP', 'SCTP'] },
                },
              },
            },
          },
        },
      },
    },
  };
  const validateKindConfig = new Ajv({ allErrors: true }).compile(kindConfigSchema);

  test('its kind cluster config is a valid kind v1alpha4 Cluster', () => {
    const config = load(heredoc(text, 'KIND_CONFIG'), { schema: CORE_SCHEMA });
    expect(validate(validateKindConfig, config)).toEqual([]);
    // The NodePort Kourier is patched to must be the one mapped to the host.
    const mapped = (config as { nodes: { extraPortMappings?: { containerPort: number }[] }[] }).nodes
      .flatMap((n) => n.extraPortMappings ?? [])
      .map((p) => p.containerPort);
    const nodePort = /"nodePort":(\d+)/.exec(text)?.[1];
    expect(mapped).toContain(Number(nodePort));
  });

  test('the kind config schema refuses a misspelt field', () => {
    expect(
      validate(validateKindConfig, {
        kind: 'Cluster',
        apiVersion: 'kind.x-k8s.io/v1alpha4',
        nodes: [{ rol: 'worker' }],
      }).join(),
    ).toMatch(/rol/);
  });
});

describe('scripts/e2e.sh', () => {
  const text = read('scripts/e2e.sh');

  test('its demo VM is a valid, opted-in KubeVirt VirtualMachine', () => {
    const yaml = heredoc(text, 'DEMO_VM').replace(/\$\{(\w+)\}/g, (_m, v: string) =>
      v === 'NS' ? 'virtwake' : `x-${v.toLowerCase()}`,
    );
    const vm = load(yaml, { schema: CORE_SCHEMA });
    if (!isObj(vm)) throw new Error('demo VM is not a mapping');
    expect(validate(validatorFor(schemaFileFor(str(vm.apiVersion), str(vm.kind))), vm)).toEqual([]);
    expect(vm.kind).toBe('VirtualMachine');
    expect((vm.metadata as { labels: Record<string, string> }).labels['virtwake.io/enabled']).toBe('true');
  });

  test('sends every command type and waits for its result', () => {
    for (const t of ['start', 'stop', 'restart', 'pause', 'unpause', 'activity', 'snapshot', 'restore']) {
      expect(text).toMatch(new RegExp(`^send io\\.virtwake\\.vm\\.${t} `, 'm'));
      expect(text).toMatch(new RegExp(`^expect_reply io\\.virtwake\\.vm\\.${t}\\.completed `, 'm'));
    }
  });

  // The reaper is driven by the PingSource's own ticks (every minute in the e2e overlay), not a hand-sent ping.
  test('reaps on a real PingSource tick', () => {
    expect(text).not.toMatch(/^send dev\.knative\.sources\.ping /m);
    expect(text).toMatch(/path: \/spec\/schedule\n\s+value: "\* \* \* \* \*"/);
    expect(text).toMatch(/count_type io\.virtwake\.reaper\.completed\)" > reaps_before/);
  });

  test('wakes the stopped VM through the wake proxy and expects its answer', () => {
    expect(text).toMatch(/get ksvc virtwake-wake-proxy -o jsonpath='\{\.status\.address\.url\}'/);
    expect(text).toMatch(/== "hello virtwake" \]\]/);
    expect(text).toMatch(/pathPrefix: \/\$\{VM\}/);
  });

  test('result Triggers are valid, carry their own dead-letter sink, and one filters on vmname', () => {
    const yaml = heredoc(text, 'RESULT_TRIGGERS').replace(/\$\{(\w+)\}/g, (_m, v: string) =>
      v === 'NS' ? 'virtwake' : `x-${v.toLowerCase().replace(/_/g, '-')}`,
    );
    const docs = loadAll(yaml, { schema: CORE_SCHEMA }).filter(isObj);
    expect(docs).toHaveLength(2);
    for (const t of docs) {
      expect(validate(validatorFor(schemaFileFor(str(t.apiVersion), str(t.kind))), t)).toEqual([]);
      expect(at(t, 'spec', 'delivery', 'deadLetterSink', 'ref', 'name')).toBe('virtwake-deadletter');
    }
    expect(docs.map((t) => at(t, 'spec', 'filters', 0, 'exact'))).toContainEqual({
      vmnamespace: 'virtwake',
      vmname: 'x-vm',
    });
  });

  test('BUILDER=func also deploys the kn func path with the labelled prerequisites and checks it', () => {
    expect(text).toMatch(/kubectl apply -k "\$\{WORK\}\/func-overlay" -l virtwake\.io\/kn-func=prerequisite/);
    expect(text).toMatch(/\$\{FUNC_CLI\} deploy --path /);
    expect(text).toMatch(/\*\.svc\.cluster\.local \]\] \|\| fail/);
  });

  test('cleans up on exit', () => {
    expect(text).toMatch(/^trap cleanup EXIT$/m);
  });
});

describe('Containerfile', () => {
  const text = read('Containerfile');
  // Instructions, with continuation lines joined and comments dropped.
  const instructions = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const stages: string[][] = [];
  for (const ins of instructions) {
    if (/^FROM\s/i.test(ins)) stages.push([ins]);
    else if (stages.length > 0) stages[stages.length - 1].push(ins);
  }
  const final = stages[stages.length - 1];
  const argDefault = (name: string) => new RegExp(`^ARG ${name}=(\\S+)`, 'm').exec(text)?.[1];

  test('is multi-stage on a Node LTS image pinned by major version', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const s of stages) {
      const image = s[0].split(/\s+/)[1].replace(/^\$\{(\w+)\}$/, (_m, v: string) => argDefault(v) ?? '');
      expect(image).toMatch(/^node:24(-[a-z]+)*$/);
    }
  });

  test('installs the locked dependencies, runs npm run build, ships production dependencies only', () => {
    const build = stages.find((s) => s.some((i) => /^RUN npm run build\b/.test(i)));
    expect(build?.some((i) => /^RUN npm ci\b/.test(i))).toBe(true);
    expect(instructions.some((i) => /^RUN npm ci\b.*--omit=dev/.test(i))).toBe(true);
    const copies = final.filter((i) => /^COPY --from=/.test(i)).join('\n');
    expect(copies).toMatch(/\bnode_modules\b/);
    expect(copies).toMatch(/\/dist\b/);
    expect(copies).toMatch(/\/schemas\b/);
    expect(final.some((i) => /^RUN\b/.test(i))).toBe(false); // nothing installed or written in the runtime stage
  });

  test('the final stage runs as a numeric non-root user', () => {
    const users = final.filter((i) => /^USER\s/i.test(i));
    expect(users.length).toBeGreaterThan(0);
    const user = users[users.length - 1].split(/\s+/)[1];
    const [uid, gid] = user.split(':');
    expect(uid).toMatch(/^\d+$/);
    expect(Number(uid)).toBeGreaterThan(0);
    if (gid !== undefined) expect(Number(gid)).toBeGreaterThan(0);
  });

  test('production env, port 8080, exec-form CMD', () => {
    expect(final.some((i) => /^ENV\b.*\bNODE_ENV=production\b/.test(i))).toBe(true);
    expect(final).toContain('EXPOSE 8080');
    const cmd = final.filter((i) => /^CMD\s/.test(i)).pop();
    expect(JSON.parse(cmd!.slice(4))).toEqual(['node', 'dist/virtwake.js']);
  });

  test('.dockerignore keeps local builds and secrets out of the context', () => {
    const ignored = read('.dockerignore')
      .split('\n')
      .map((l) => l.trim());
    for (const p of ['node_modules', 'dist', '.git']) expect(ignored).toContain(p);
    // But not what the build needs.
    for (const p of ['package.json', 'package-lock.json', 'functions', 'schemas', 'scripts'])
      expect(ignored).not.toContain(p);
  });

  test('package.json has the scripts the image and the buildpacks run', () => {
    const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
    expect(pkg.scripts.build).toBeDefined();
    expect(pkg.scripts.start).toBe('node dist/virtwake.js');
  });
});
