// Shared test plumbing: a simulator plus a client-node KubeConfig pointed at it, and a raw
// HTTP(S) request helper that uses the kubeconfig's TLS/auth settings (client-node hands
// those over as an https.Agent, which global fetch would ignore).

import http from 'node:http';
import https from 'node:https';
import { CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { startSimulator, type SimOptions, type Simulator } from '../../simulator';

export interface TestEnv {
  sim: Simulator;
  kc: KubeConfig;
  api: CustomObjectsApi;
}

export async function startEnv(opts: SimOptions = {}): Promise<TestEnv> {
  const sim = await startSimulator({ stepMs: 5, snapshotStepMs: 5, ...opts });
  const kc = new KubeConfig();
  kc.loadFromFile(sim.kubeconfigPath);
  return { sim, kc, api: kc.makeApiClient(CustomObjectsApi) };
}

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  json: any;
}

export async function request(
  kc: KubeConfig,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
  extra: { timeoutMs?: number } = {},
): Promise<RawResponse> {
  const opts: https.RequestOptions = {};
  await kc.applyToHTTPSOptions(opts);
  const url = new URL(kc.getCurrentCluster()!.server + path);
  const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
  const mod = url.protocol === 'https:' ? https : http;
  return new Promise<RawResponse>((resolve, reject) => {
    const req = mod.request(
      url,
      {
        method,
        agent: opts.agent,
        headers: {
          ...(opts.headers as Record<string, string>),
          ...(payload !== undefined
            ? { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(payload)) }
            : {}),
          ...headers,
        },
        timeout: extra.timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: any;
          try {
            json = text ? JSON.parse(text) : undefined;
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

/** PUT a KubeVirt subresource (start/stop/restart on VMs, pause/unpause/... on VMIs). */
export function subresource(
  kc: KubeConfig,
  kind: 'virtualmachines' | 'virtualmachineinstances',
  name: string,
  action: string,
  body?: unknown,
  ns = 'default',
  version = 'v1',
) {
  return request(
    kc,
    'PUT',
    `/apis/subresources.kubevirt.io/${version}/namespaces/${ns}/${kind}/${name}/${action}`,
    body,
  );
}

export const vmPath = (ns = 'default', name?: string) =>
  `/apis/kubevirt.io/v1/namespaces/${ns}/virtualmachines${name ? `/${name}` : ''}`;

export function vmManifest(
  name: string,
  spec: Record<string, unknown> = { runStrategy: 'Halted' },
  labels: Record<string, string> = {},
) {
  return {
    apiVersion: 'kubevirt.io/v1',
    kind: 'VirtualMachine',
    metadata: { name, labels },
    spec: {
      ...spec,
      template: { metadata: { labels: { 'kubevirt.io/vm': name } }, spec: { domain: { devices: {} } } },
    },
  };
}

/** Poll the in-process store until a predicate holds (used only where no watch is handier). */
export async function until<T>(fn: () => T | undefined | false, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}
