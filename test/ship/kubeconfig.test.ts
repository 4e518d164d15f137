import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import path from 'node:path';
import pino from 'pino';
import { load } from 'js-yaml';
import { startSimulator, type Simulator, type SimOptions } from '../../simulator';
import { createApp, type App } from '../../functions/app';
import { ensureBundle, kubeconfigFile, startProgram } from './program';

// Every kind of kubeconfig kubectl accepts works for every function (commands and their
// watches, the reaper, the wake proxy); every kubeconfig that cannot work stops the program
// that ships at start with one line and exit code 2.

const OPT_IN = { 'virtwake.io/enabled': 'true' };
const tmpDirs: string[] = [];
afterAll(() => {
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
});

function writeKubeconfig(doc: unknown, files: Record<string, string> = {}): string {
  const { file, dir } = kubeconfigFile(typeof doc === 'string' ? doc : JSON.stringify(doc));
  tmpDirs.push(dir);
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  return file;
}

function config(cluster: Record<string, unknown>, user?: Record<string, unknown>) {
  return {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'c', cluster }],
    users: user ? [{ name: 'u', user }] : [],
    contexts: [{ name: 'ctx', context: { cluster: 'c', ...(user ? { user: 'u' } : {}), namespace: 'default' } }],
    'current-context': 'ctx',
  };
}

/** The simulator's own kubeconfig, as data: its CA, token, client certificate. */
function simMaterial(sim: Simulator) {
  const doc = load(sim.kubeconfig) as any;
  const b64 = (s?: string) => (s ? Buffer.from(s, 'base64').toString() : undefined);
  return {
    server: sim.url,
    ca: b64(doc.clusters[0].cluster['certificate-authority-data']),
    cert: b64(doc.users[0].user['client-certificate-data']),
    key: b64(doc.users[0].user['client-key-data']),
  };
}

function post(base: string, type: string, data: unknown): Promise<Response> {
  return fetch(base, {
    method: 'POST',
    headers: {
      'ce-specversion': '1.0',
      'ce-id': `kc-${Math.random().toString(36).slice(2)}`,
      'ce-source': '/test/kubeconfig',
      'ce-type': type,
      'content-type': 'application/json',
    },
    body: JSON.stringify(data),
  });
}

async function listen(app: App): Promise<string> {
  await new Promise<void>((r) => app.server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(app.server.address() as net.AddressInfo).port}`;
}

interface Kind {
  name: string;
  sim: SimOptions;
  kubeconfig(sim: Simulator): string;
}

const EXEC_TOKEN = 'from-the-exec-plugin';
const execCredential = JSON.stringify({
  apiVersion: 'client.authentication.k8s.io/v1',
  kind: 'ExecCredential',
  status: { token: EXEC_TOKEN },
});

const KINDS: Kind[] = [
  {
    // What `kubectl proxy` serves: plain http on loopback, the proxy holds the credentials.
    name: 'plain http, no user (kubectl proxy)',
    sim: {},
    kubeconfig: (sim) => writeKubeconfig(config({ server: sim.url })),
  },
  {
    name: 'https, CA file and bearer token',
    sim: { tls: true, token: 'bearer-kind' },
    kubeconfig: (sim) =>
      writeKubeconfig(config({ server: sim.url, 'certificate-authority': 'ca.pem' }, { token: 'bearer-kind' }), {
        'ca.pem': simMaterial(sim).ca!,
      }),
  },
  {
    // Relative paths are relative to the kubeconfig file, as kubectl reads them.
    name: 'https, client certificate and key files',
    sim: { tls: true, clientCertAuth: true },
    kubeconfig: (sim) => {
      const m = simMaterial(sim);
      return writeKubeconfig(
        config(
          { server: sim.url, 'certificate-authority-data': Buffer.from(m.ca!).toString('base64') },
          { 'client-certificate': 'client.crt', 'client-key': 'client.key' },
        ),
        { 'client.crt': m.cert!, 'client.key': m.key! },
      );
    },
  },
  {
    name: 'https, exec plugin',
    sim: { tls: true, token: EXEC_TOKEN },
    kubeconfig: (sim) =>
      writeKubeconfig(
        config(
          { server: sim.url, 'certificate-authority-data': Buffer.from(simMaterial(sim).ca!).toString('base64') },
          {
            exec: {
              apiVersion: 'client.authentication.k8s.io/v1',
              command: process.execPath,
              args: ['-e', `process.stdout.write(${JSON.stringify(execCredential)})`],
              interactiveMode: 'Never',
            },
          },
        ),
      ),
  },
];

describe.each(KINDS.map((k) => [k.name, k] as const))('%s', (_name, kind) => {
  let sim: Simulator;
  let kubeconfig: string;
  let guest: http.Server;
  const apps: App[] = [];

  beforeAll(async () => {
    sim = await startSimulator({ ...kind.sim, stepMs: 5 });
    kubeconfig = kind.kubeconfig(sim);
    guest = http.createServer((req, res) => res.end(`guest says ${req.url}`));
    await new Promise<void>((r) => guest.listen(0, '127.0.0.1', r));
  });
  afterAll(async () => {
    for (const a of apps) await a.close();
    guest.close();
    await sim.close();
  });

  async function app(env: Record<string, string> = {}): Promise<string> {
    const a = await createApp({
      env: { KUBECONFIG: kubeconfig, VIRTWAKE_NAMESPACE: 'default', LOG_LEVEL: 'silent', ...env },
      logger: pino({ level: 'silent' }),
    });
    apps.push(a);
    return listen(a);
  }

  test('a start that waits (a watch) completes', async () => {
    sim.store.addVM({ metadata: { name: 'cmd', labels: OPT_IN }, spec: { runStrategy: 'Halted' } });
    const res = await post(await app(), 'io.virtwake.vm.start', { name: 'cmd', wait: { timeoutSeconds: 20 } });
    expect([res.status, res.headers.get('ce-type')]).toEqual([200, 'io.virtwake.vm.start.completed']);
    expect(sim.calls).toContainEqual(expect.objectContaining({ method: 'PUT', subresource: 'start', name: 'cmd' }));
  });

  test('the reaper stops an idle VM', async () => {
    sim.store.addVM(
      {
        metadata: { name: 'idle', labels: OPT_IN, annotations: { 'virtwake.io/idle-timeout': '30m' } },
        spec: { runStrategy: 'Always' },
      },
      { running: true, vmiCreatedAt: new Date(Date.now() - 2 * 3600_000) },
    );
    const res = await post(await app(), 'dev.knative.sources.ping', {});
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ stopped: expect.arrayContaining(['default/idle']) });
  });

  test('the wake proxy wakes a stopped VM and forwards to it', async () => {
    sim.store.addVM({ metadata: { name: 'web', labels: OPT_IN }, spec: { runStrategy: 'Halted' } });
    sim.store.addService('default', 'web', {
      vmName: 'web',
      port: 80,
      upstreamPort: (guest.address() as net.AddressInfo).port,
    });
    const routes = writeKubeconfig(
      'routes:\n  - vm: {namespace: default, name: web}\n    service: {name: web, port: 80}\n',
    );
    const base = await app({ VIRTWAKE_FUNCTIONS: 'wake-proxy', VIRTWAKE_PROXY_ROUTES: routes });
    const res = await fetch(`${base}/hello`);
    expect([res.status, await res.text()]).toEqual([200, 'guest says /hello']);
    expect(sim.calls).toContainEqual(expect.objectContaining({ method: 'PUT', subresource: 'start', name: 'web' }));
  });
});

describe('the program that ships, given a kubeconfig that cannot work', () => {
  beforeAll(() => ensureBundle(), 180_000);

  /** Start dist/virtwake.js; it must exit 2 with exactly one line on stderr and nothing else. */
  async function refused(env: Record<string, string>): Promise<string> {
    const p = startProgram({ PORT: '0', VIRTWAKE_NAMESPACE: 'default', ...env });
    // A program that starts anyway is a failure, not a hang.
    const timer = setTimeout(() => p.child.kill('SIGKILL'), 20_000);
    const code = await p.exited;
    clearTimeout(timer);
    const err = p.stderr();
    expect({ code, stdout: p.lines.filter((l) => !err.includes(l)) }).toEqual({ code: 2, stdout: [] });
    expect(err).not.toMatch(/\n\s+at /);
    expect(err.trimEnd().split('\n')).toHaveLength(1);
    expect(err).toMatch(/^virtwake: configuration error: kubeconfig: /);
    return err.trim();
  }

  const https = (extra: Record<string, unknown> = {}) => ({ server: 'https://127.0.0.1:6443', ...extra });

  test('a KUBECONFIG file that does not exist', async () => {
    expect(await refused({ KUBECONFIG: '/nonexistent/kubeconfig' })).toMatch(
      /cannot read \/nonexistent\/kubeconfig \(from KUBECONFIG\): no such file$/,
    );
  });

  test('a file that is not a kubeconfig', async () => {
    expect(await refused({ KUBECONFIG: writeKubeconfig('clusters: [unclosed') })).toMatch(
      /kubeconfig: .*kubeconfig is not a valid kubeconfig: /,
    );
  });

  test('no kubeconfig anywhere and not in a pod', async () => {
    const home = path.dirname(writeKubeconfig('{}'));
    expect(await refused({ HOME: home })).toMatch(
      /none found: set KUBECONFIG, create .*\.kube\/config, or run in a pod/,
    );
  });

  test('a current-context that is not defined', async () => {
    const doc = { ...config(https(), { token: 't' }), 'current-context': 'prod' };
    expect(await refused({ KUBECONFIG: writeKubeconfig(doc) })).toMatch(
      /current-context "prod" is not one of its contexts \(ctx\)$/,
    );
  });

  test('a context that names a cluster that is not defined', async () => {
    const doc = config(https(), { token: 't' });
    doc.contexts[0].context.cluster = 'elsewhere';
    expect(await refused({ KUBECONFIG: writeKubeconfig(doc) })).toMatch(
      /context "ctx" names cluster "elsewhere", which is not defined$/,
    );
  });

  test('a certificate authority file that cannot be read', async () => {
    const kc = writeKubeconfig(config(https({ 'certificate-authority': 'missing-ca.pem' }), { token: 't' }));
    expect(await refused({ KUBECONFIG: kc })).toMatch(
      new RegExp(`cluster "c": certificate-authority ${path.dirname(kc)}/missing-ca.pem cannot be read: no such file$`),
    );
  });

  test('certificate authority data that is not a certificate', async () => {
    const doc = config(https({ 'certificate-authority-data': Buffer.from('not a pem').toString('base64') }), {
      token: 't',
    });
    expect(await refused({ KUBECONFIG: writeKubeconfig(doc) })).toMatch(
      /TLS material is unusable: the certificate authority holds no PEM certificate$/,
    );
  });

  test('an exec plugin that fails', async () => {
    const doc = config(https(), {
      exec: {
        apiVersion: 'client.authentication.k8s.io/v1',
        command: process.execPath,
        args: ['-e', 'console.error("token expired, run login"); process.exit(1)'],
      },
    });
    expect(await refused({ KUBECONFIG: writeKubeconfig(doc) })).toMatch(
      /user "u": exec plugin ".*node" failed: token expired, run login$/,
    );
  });

  test('an exec plugin that is not installed', async () => {
    const doc = config(https(), {
      exec: { apiVersion: 'client.authentication.k8s.io/v1', command: 'virtwake-no-such-plugin' },
    });
    expect(await refused({ KUBECONFIG: writeKubeconfig(doc) })).toMatch(
      /user "u": exec plugin "virtwake-no-such-plugin" failed: .*ENOENT/,
    );
  });

  test('plain http to another host with a bearer token: refused, the token would cross the network in clear', async () => {
    const doc = config({ server: 'http://10.20.30.40:8080' }, { token: 'secret' });
    expect(await refused({ KUBECONFIG: writeKubeconfig(doc) })).toMatch(
      /cluster "c" is plain http at 10\.20\.30\.40:8080 and user "u" carries a bearer token, which would cross the network unencrypted: use https/,
    );
  });
});

test('npm start with a kubectl-proxy-style kubeconfig (plain http, no auth) processes a start command', async () => {
  await ensureBundle();
  const sim = await startSimulator({ stepMs: 5 });
  sim.store.addVM({ metadata: { name: 'via-proxy', labels: OPT_IN }, spec: { runStrategy: 'Halted' } });
  const kubeconfig = writeKubeconfig(
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: proxy',
      '  cluster:',
      `    server: ${sim.url}`,
      'contexts:',
      '- name: proxy',
      '  context: {cluster: proxy, namespace: default}',
      'current-context: proxy',
      '',
    ].join('\n'),
  );
  // Its own process group, so the test can stop npm and the node it started together.
  const p = startProgram({ KUBECONFIG: kubeconfig, PORT: '0', VIRTWAKE_NAMESPACE: 'default' }, ['npm', 'start'], {
    detached: true,
  });
  try {
    const { port } = await p.logLine('virtwake listening');
    const res = await post(`http://127.0.0.1:${port}`, 'io.virtwake.vm.start', { name: 'via-proxy' });
    expect(res.status).toBe(200);
    expect(res.headers.get('ce-type')).toMatch(/^io\.virtwake\.vm\.start\.(accepted|completed)$/);
    expect(sim.calls).toContainEqual(
      expect.objectContaining({
        method: 'PUT',
        path: '/apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachines/via-proxy/start',
        status: 202,
      }),
    );
  } finally {
    try {
      process.kill(-p.child.pid!, 'SIGTERM');
    } catch {
      // already gone
    }
    await p.exited;
    await sim.close();
  }
}, 120_000);
