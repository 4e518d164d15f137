import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startSimulator, type Simulator } from '../../simulator';
import { createApp } from '../../functions/app';
import { ConfigError } from '../../functions/runtime/config';

// A bad TCP route stops the program at start: exit code 2 and a message that
// names the route, before anything listens or touches a VM. Three cases run
// the program itself; the rest build the app in-process (the same ConfigError
// main.ts turns into exit 2).

const ROOT = path.resolve(__dirname, '../..');
let sim: Simulator;
let busy: net.Server;
let busyPort: number;

beforeAll(async () => {
  sim = await startSimulator({ tls: true, token: 'virtwake-test-token' });
  busy = net.createServer();
  await new Promise<void>((r) => busy.listen(0, r));
  busyPort = (busy.address() as net.AddressInfo).port;
});
afterAll(async () => {
  busy?.close();
  await sim?.close();
});

function routesFile(text: string): string {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'virtwake-bad-routes-')), 'routes.yaml');
  fs.writeFileSync(file, text);
  return file;
}

function run(routes: string, env: Record<string, string> = {}): Promise<{ code: number | null; stderr: string }> {
  const proc = spawn(process.execPath, ['--import', 'tsx', 'functions/main.ts'], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      PORT: '0',
      KUBECONFIG: sim.kubeconfigPath,
      VIRTWAKE_NAMESPACE: 'default',
      VIRTWAKE_FUNCTIONS: 'wake-proxy',
      VIRTWAKE_PROXY_ROUTES: routesFile(routes),
      LOG_LEVEL: 'silent',
      ...env,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  proc.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  // A good file would leave it serving: stop it so the test sees the difference as a wrong code, not a hang.
  // Generous: under a full parallel test run, tsx alone can take many seconds to start.
  const guard = setTimeout(() => proc.kill('SIGTERM'), 50_000);
  return new Promise((resolve) =>
    proc.on('exit', (code) => {
      clearTimeout(guard);
      resolve({ code, stderr });
    }),
  );
}

const tcp = (port: number, vm = 'db', extra = '') =>
  `  - listen: {tcp: ${port}}\n    vm: {name: ${vm}}\n    service: {name: ${vm}, port: 5432}\n${extra}`;

test.each([
  [
    'an unknown field',
    () => `routes:\n${tcp(15432, 'db', '    timeout: 5\n')}`,
    () => /routes\[0\]\.timeout: unknown field \(the TCP route listening on 15432\)/,
  ],
  [
    'a duplicate port',
    () => `routes:\n${tcp(15433, 'a')}${tcp(15433, 'b')}`,
    () => /routes\[1\] \(listen tcp 15433 → VM default\/b\): port 15433 is already taken by routes\[0\]/,
  ],
  [
    'a port in use',
    () => `routes:\n${tcp(busyPort, 'pg')}`,
    () => new RegExp(`routes\\[0\\] \\(listen tcp ${busyPort} → VM default/pg\\): port ${busyPort} is already in use`),
  ],
])(
  '%s: exit 2 naming the route',
  async (_what, routes, message) => {
    const { code, stderr } = await run(routes());
    expect(stderr).toMatch(/^virtwake: configuration error: VIRTWAKE_PROXY_ROUTES: /);
    expect(stderr).toMatch(message());
    expect(stderr).not.toMatch(/\n\s+at /);
    expect(code).toBe(2);
  },
  60_000,
);

async function refusal(routes: string, env: Record<string, string> = {}): Promise<string> {
  try {
    const app = await createApp({
      env: {
        KUBECONFIG: sim.kubeconfigPath,
        VIRTWAKE_NAMESPACE: 'default',
        VIRTWAKE_FUNCTIONS: 'wake-proxy',
        VIRTWAKE_PROXY_ROUTES: routesFile(routes),
        LOG_LEVEL: 'silent',
        ...env,
      },
    });
    await app.close();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error('accepted');
}

test.each([
  [
    'a port out of range',
    `routes:\n${tcp(70000, 'pg')}`,
    {},
    /routes\[0\]\.listen\.tcp: must be a port number from 1 to 65535 \(got 70000\)/,
  ],
  [
    'a listen without tcp',
    'routes:\n  - listen: {udp: 53}\n    vm: {name: dns}\n    service: {name: dns, port: 53}\n',
    {},
    /routes\[0\]\.listen\.tcp: required; routes\[0\]\.listen\.udp: unknown field/,
  ],
  [
    'an HTTP field on a TCP route',
    `routes:\n${tcp(15435, 'db', '    pathPrefix: /x\n')}`,
    {},
    /routes\[0\]\.pathPrefix: unknown field \(the TCP route listening on 15435\)/,
  ],
  [
    "the proxy's own HTTP port",
    `routes:\n${tcp(18080)}`,
    { PORT: '18080' },
    /routes\[0\] \(listen tcp 18080 → VM default\/db\): port 18080 is the proxy's own HTTP port/,
  ],
  [
    'a Knative Service, which delivers only HTTP',
    `routes:\n${tcp(15434)}`,
    { K_SERVICE: 'virtwake-wake-proxy' },
    /TCP routes cannot be served by a Knative Service.*knative\/tcp-proxy/,
  ],
])('refused: %s', async (_what, routes, env, message) => {
  expect(await refusal(routes, env)).toMatch(message);
});

test('a good file with TCP routes binds them and closes them again', async () => {
  const free = net.createServer();
  await new Promise<void>((r) => free.listen(0, r));
  const port = (free.address() as net.AddressInfo).port;
  await new Promise((r) => free.close(r));
  const app = await createApp({
    env: {
      KUBECONFIG: sim.kubeconfigPath,
      VIRTWAKE_NAMESPACE: 'default',
      VIRTWAKE_FUNCTIONS: 'wake-proxy',
      VIRTWAKE_PROXY_ROUTES: routesFile(`routes:\n${tcp(port, 'a')}`),
      LOG_LEVEL: 'silent',
    },
  });
  const probe = net.connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => probe.once('connect', resolve).once('error', reject));
  probe.destroy();
  await app.close();
  const again = net.createServer();
  await new Promise<void>((resolve, reject) => again.once('error', reject).listen(port, resolve));
  await new Promise((r) => again.close(r));
});
