import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import path from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { apiErrorFrom, KubeTransportError } from './errors';
import { callTimeout } from './deadline';

export interface KubeRequest {
  method: 'GET' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';
  path: string;
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
  timeoutMs?: number;
}

export interface KubeConnection {
  readonly kubeConfig: KubeConfig;
  readonly server: string;
  /** Resolves with the decoded JSON body of a 2xx answer (undefined when empty); rejects with KubeApiError / KubeTransportError. */
  request<T = unknown>(req: KubeRequest): Promise<T>;
  close(): void;
}

/** Auth headers can rotate (exec plugins, projected service-account tokens): refresh them this often. */
const AUTH_REFRESH_MS = 60_000;

/**
 * Load the standard client configuration (KUBECONFIG, else ~/.kube/config, else
 * in-cluster) with @kubernetes/client-node and turn it into one keep-alive agent.
 *
 * client-node hands TLS settings over as an https.Agent built per call; we take
 * the TLS material it resolved and keep one agent so connections are reused.
 */
export async function connect(
  opts: { kubeConfig?: KubeConfig; kubeconfigEnv?: string; timeoutMs?: number } = {},
): Promise<KubeConnection> {
  const kc = opts.kubeConfig ?? loadKubeConfig(opts.kubeconfigEnv);
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('kubeconfig has no current cluster');
  const base = new URL(cluster.server);
  const isHttps = base.protocol === 'https:';
  const defaultTimeout = opts.timeoutMs ?? 10_000;

  let resolved = await resolveOptions(kc);
  let resolvedAt = Date.now();
  const agent = isHttps
    ? new https.Agent({ ...tlsFields(resolved), keepAlive: true, maxSockets: 64 })
    : new http.Agent({ keepAlive: true, maxSockets: 64 });
  const transport = isHttps ? https : http;
  const basePath = base.pathname.replace(/\/$/, '');

  async function authHeaders(): Promise<Record<string, string>> {
    if (Date.now() - resolvedAt > AUTH_REFRESH_MS) {
      resolved = await resolveOptions(kc);
      resolvedAt = Date.now();
    }
    return (resolved.headers ?? {}) as Record<string, string>;
  }

  function request<T>(req: KubeRequest): Promise<T> {
    return authHeaders().then(
      (auth) =>
        new Promise<T>((resolve, reject) => {
          const payload = req.body === undefined ? undefined : Buffer.from(JSON.stringify(req.body));
          const headers: Record<string, string | number> = { ...auth, accept: 'application/json' };
          if (payload) {
            headers['content-type'] = req.contentType ?? 'application/json';
            headers['content-length'] = payload.length;
          }
          const r = transport.request(
            {
              protocol: base.protocol,
              hostname: base.hostname,
              port: base.port || (isHttps ? 443 : 80),
              path: basePath + req.path + queryString(req.query),
              method: req.method,
              headers,
              agent,
              auth: resolved.auth,
            },
            (res) => {
              const chunks: Buffer[] = [];
              res.on('data', (c: Buffer) => chunks.push(c));
              res.on('error', (e) =>
                reject(
                  new KubeTransportError(`response from ${req.method} ${req.path} broke: ${e.message}`, codeOf(e)),
                ),
              );
              res.on('end', () => {
                const body = Buffer.concat(chunks);
                const status = res.statusCode ?? 0;
                if (status < 200 || status >= 300) {
                  reject(apiErrorFrom(status, body, res.headers['retry-after']));
                  return;
                }
                if (body.length === 0) {
                  resolve(undefined as T);
                  return;
                }
                try {
                  resolve(JSON.parse(body.toString('utf8')) as T);
                } catch {
                  reject(
                    new KubeTransportError(`${req.method} ${req.path} answered ${status} with a body that is not JSON`),
                  );
                }
              });
            },
          );
          const timeoutMs = req.timeoutMs ?? callTimeout(defaultTimeout);
          r.setTimeout(timeoutMs, () =>
            r.destroy(new KubeTransportError(`${req.method} ${req.path} timed out after ${timeoutMs} ms`, 'ETIMEDOUT')),
          );
          r.on('error', (e) =>
            reject(
              e instanceof KubeTransportError
                ? e
                : new KubeTransportError(`${req.method} ${req.path} failed: ${e.message}`, codeOf(e)),
            ),
          );
          r.end(payload);
        }),
    );
  }

  return {
    kubeConfig: kc,
    server: cluster.server,
    request,
    close: () => agent.destroy(),
  };
}

/**
 * KUBECONFIG (one path or a list, merged as kubectl does), else ~/.kube/config,
 * else the in-cluster service account. Takes the variable as an argument so a
 * server built in-process reads its own environment, not the test runner's.
 */
export function loadKubeConfig(kubeconfigEnv: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  const files = (kubeconfigEnv ?? '').split(path.delimiter).filter(Boolean);
  if (files.length === 0) {
    kc.loadFromDefault();
    return kc;
  }
  kc.loadFromFile(files[0]);
  for (const file of files.slice(1)) {
    const more = new KubeConfig();
    more.loadFromFile(file);
    kc.mergeConfig(more, true);
  }
  return kc;
}

type ResolvedOptions = https.RequestOptions & { headers?: Record<string, unknown> };

async function resolveOptions(kc: KubeConfig): Promise<ResolvedOptions> {
  const opts: ResolvedOptions = { headers: {} };
  await kc.applyToHTTPSOptions(opts);
  return opts;
}

/**
 * The agent's TLS options. The CA, client certificate and key go into one
 * SecureContext shared by every connection: given only the PEMs, tls.connect
 * builds a context per new connection (~0.4 ms each, more for a burst that
 * opens many).
 */
function tlsFields(o: ResolvedOptions): https.AgentOptions {
  const material: tls.SecureContextOptions = {};
  if (o.ca) material.ca = o.ca;
  if (o.cert) material.cert = o.cert;
  if (o.key) material.key = o.key;
  if (o.pfx) material.pfx = o.pfx;
  if (o.passphrase) material.passphrase = o.passphrase;
  const out: https.AgentOptions = { secureContext: tls.createSecureContext(material) };
  if (o.servername) out.servername = o.servername;
  if (o.rejectUnauthorized !== undefined) out.rejectUnauthorized = o.rejectUnauthorized;
  return out;
}

function queryString(q: KubeRequest['query']): string {
  if (!q) return '';
  const parts: string[] = [];
  for (const [k, v] of Object.entries(q)) {
    if (v !== undefined) parts.push(`${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`);
  }
  return parts.length ? `?${parts.join('&')}` : '';
}

function codeOf(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e ? String((e as { code: unknown }).code) : undefined;
}
