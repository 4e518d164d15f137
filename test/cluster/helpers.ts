// What the rig scenarios share: the rig's state, an admin client for seeding and
// asserting, virtwake started as its own process with a ServiceAccount kubeconfig, and
// CloudEvents posted to it over HTTP.

import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import path from 'node:path';
import { adminKube, freePort, readState, VIRTWAKE_NS, type RigState, type TestKube } from './rig/cluster';

const REPO = path.join(__dirname, '../..');
export const NS = VIRTWAKE_NS;
export const OPT_IN = { 'virtwake.io/enabled': 'true' };

export function rig(): { state: RigState; kube: TestKube } {
  const file = process.env.VIRTWAKE_RIG_STATE;
  if (!file) throw new Error('VIRTWAKE_RIG_STATE is not set: run these through `npm run test:cluster`');
  const state = readState(file);
  return { state, kube: adminKube(state) };
}

export interface Virtwake {
  url: string;
  logFile: string;
  stop(): Promise<void>;
}

let instances = 0;

/** virtwake as it runs in a Knative Service: its own process, configured by its environment. */
export async function startVirtwake(state: RigState, env: Record<string, string> = {}): Promise<Virtwake> {
  const port = await freePort();
  const logFile = path.join(state.dir, `virtwake-${process.pid}-${++instances}.log`);
  const child: ChildProcess = spawn(
    process.execPath,
    [path.join(REPO, 'node_modules/tsx/dist/cli.mjs'), path.join(REPO, 'functions/main.ts')],
    {
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        PORT: String(port),
        KUBECONFIG: state.virtwakeKubeconfig,
        VIRTWAKE_NAMESPACE: NS,
        LOG_LEVEL: 'info',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const out = createWriteStream(logFile);
  child.stdout!.pipe(out);
  child.stderr!.pipe(out);
  const url = `http://127.0.0.1:${port}`;
  const end = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null)
      throw new Error(`virtwake exited with ${child.exitCode}: ${readFileSync(logFile, 'utf8').slice(-2000)}`);
    try {
      if ((await fetch(`${url}/health/readiness`)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > end) throw new Error('virtwake did not become ready within 60 s');
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    url,
    logFile,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

export interface Answer {
  status: number;
  type: string | null;
  data: any;
}

let seq = 0;

/** A binary-mode CloudEvent, as a Knative Trigger delivers it. */
export async function send(
  vw: Virtwake,
  type: string,
  data: unknown,
  id = `rig-${process.pid}-${++seq}`,
): Promise<Answer> {
  const res = await fetch(`${vw.url}/`, {
    method: 'POST',
    headers: {
      'ce-specversion': '1.0',
      'ce-id': id,
      'ce-source': '/test/rig',
      'ce-type': type,
      'content-type': 'application/json',
    },
    body: JSON.stringify(data),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    // plain text answer
  }
  return { status: res.status, type: res.headers.get('ce-type'), data: parsed };
}

export const vmPath = (name?: string, ns = NS) =>
  `/apis/kubevirt.io/v1/namespaces/${ns}/virtualmachines${name ? `/${name}` : ''}`;
export const vmiPath = (name?: string) =>
  `/apis/kubevirt.io/v1/namespaces/${NS}/virtualmachineinstances${name ? `/${name}` : ''}`;

export function vmManifest(
  name: string,
  runStrategy: string,
  labels: Record<string, string> = OPT_IN,
  annotations: Record<string, string> = {},
  ns = NS,
) {
  return {
    apiVersion: 'kubevirt.io/v1',
    kind: 'VirtualMachine',
    metadata: { name, namespace: ns, labels, annotations },
    spec: {
      runStrategy,
      template: {
        metadata: { labels: { 'kubevirt.io/vm': name } },
        // No shutdown grace unless a test asks for one: the rig's virt-handler waits it out in real time.
        spec: {
          terminationGracePeriodSeconds: 0,
          domain: { devices: {}, resources: { requests: { memory: '64Mi' } } },
        },
      },
    },
  };
}

export async function createVM(
  kube: TestKube,
  name: string,
  runStrategy: string,
  labels?: Record<string, string>,
  annotations?: Record<string, string>,
  ns = NS,
) {
  return kube.request('POST', vmPath(undefined, ns), vmManifest(name, runStrategy, labels, annotations, ns));
}

/** Poll the real API until `test` holds (a liveness bound, not a speed claim). */
export async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  ms = 60_000,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`${what}: not observed within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function vmRunning(kube: TestKube, name: string, ns = NS) {
  return eventually(`${name} Running and ready`, async () => {
    const vm = await kube.get(vmPath(name, ns));
    return vm?.status?.printableStatus === 'Running' && vm.status.ready === true ? vm : undefined;
  });
}
