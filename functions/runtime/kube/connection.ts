import http from 'node:http';
import https from 'node:https';
import { X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import { KubeConfig } from '@kubernetes/client-node';
import { apiErrorFrom, KubeApiError, KubeTransportError } from './errors';
import { callTimeout } from './deadline';
import { checkKubeConfig, KubeconfigError, loadKubeConfig } from './kubeconfig';

export interface KubeRequest {
  method: 'GET' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';
  path: string;
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
  timeoutMs?: number;
}

export interface KubeConnection {
  /** The configuration in use (read again when the credentials stop working; watches take it per stream). */
  readonly kubeConfig: KubeConfig;
  readonly server: string;
  /** Resolves with the decoded JSON body of a 2xx answer (undefined when empty); rejects with KubeApiError / KubeTransportError. */
  request<T = unknown>(req: KubeRequest): Promise<T>;
  /**
   * Why this instance cannot reach the API server with what it has (a certificate or credentials the
   * server refuses, still so after reading them again), for readiness; undefined when fine.
   */
  problem(): string | undefined;
  /**
   * A watch of `collection` the API server refused for good (its message), or undefined once one is served
   * again (watch-loop.ts).
   */
  noteWatch(collection: string, refusal: string | undefined): void;
  /**
   * What this instance cannot do although it can reach the API server (watches refused, so a wait fails),
   * for readiness to report; it stays ready, since everything else still works.
   */
  refusals(): string[];
  close(): void;
}

/** Reading the kubeconfig and credentials again after a refusal: at most this often. */
const RELOAD_MIN_INTERVAL_MS = 1_000;

/** Node's codes for a server certificate that does not verify against our CA, and TLS alerts from the server. */
const TLS_REFUSALS =
  /^(UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|CERT_HAS_EXPIRED|CERT_NOT_YET_VALID|CERT_SIGNATURE_FAILURE|UNABLE_TO_GET_ISSUER_CERT(_LOCALLY)?|ERR_TLS_CERT_ALTNAME_INVALID|ERR_SSL_.*|EPROTO)$/;

/** Auth headers can rotate (exec plugins, projected service-account tokens): refresh them this often. */
const AUTH_REFRESH_MS = 60_000;

/**
 * Load the client configuration (kubeconfig.ts: KUBECONFIG, ~/.kube/config, in-cluster)
 * with @kubernetes/client-node and turn it into one keep-alive agent.
 *
 * client-node hands TLS settings over as an https.Agent built per call; we take
 * the TLS material it resolved and keep one agent so connections are reused.
 * Credentials are resolved once here (an exec plugin runs now), so a kubeconfig that
 * cannot authenticate stops the process at start with a KubeconfigError.
 */
export async function connect(
  opts: { kubeConfig?: KubeConfig; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<KubeConnection> {
  const kc = opts.kubeConfig ? checkKubeConfig(opts.kubeConfig) : loadKubeConfig(opts.env).kubeConfig;
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new KubeconfigError('no current cluster');
  const base = new URL(cluster.server);
  const isHttps = base.protocol === 'https:';
  const defaultTimeout = opts.timeoutMs ?? 10_000;

  let resolved: ResolvedOptions;
  try {
    resolved = await resolveOptions(kc);
  } catch (e) {
    throw new KubeconfigError(
      `${credentialsOf(kc)}: ${(e as Error).message?.trim() || 'it exited non-zero and wrote nothing to stderr'}`,
    );
  }
  let resolvedAt = Date.now();
  let agent: http.Agent;
  let current = kc;
  const makeAgent = (o: ResolvedOptions) =>
    isHttps
      ? new https.Agent({ ...tlsFields(o), keepAlive: true, maxSockets: 64 })
      : new http.Agent({ keepAlive: true, maxSockets: 64 });
  try {
    agent = makeAgent(resolved);
  } catch (e) {
    // A PEM that does not parse: the CA, client certificate or key.
    throw new KubeconfigError(
      `cluster "${cluster.name}" / user "${kc.getCurrentUser()?.name}": TLS material is unusable: ${(e as Error).message}`,
    );
  }
  const transport = isHttps ? https : http;
  const basePath = base.pathname.replace(/\/$/, '');

  // Certificates and tokens rotate (a renewed CA or client certificate in a mounted Secret, a
  // rotated token file). When the server refuses what we have, read it all again, from the
  // files, and build a new agent; if the refusals go on with what was read, say so to readiness.
  let generation = 0;
  /** The material in use was read because the server refused what we had before. */
  let rereadAfterRefusal = false;
  let reloadedAt = 0;
  let reloading: Promise<void> | undefined;
  let problem: string | undefined;
  const refusedWatches = new Map<string, string>();

  function reload(): Promise<void> {
    if (reloading || Date.now() - reloadedAt < RELOAD_MIN_INTERVAL_MS) return reloading ?? Promise.resolve();
    reloading = (async () => {
      try {
        const next = opts.kubeConfig ?? loadKubeConfig(opts.env).kubeConfig;
        const o = await resolveOptions(next);
        const old = agent;
        agent = makeAgent(o);
        resolved = o;
        resolvedAt = Date.now();
        current = next;
        generation++;
        rereadAfterRefusal = true;
        // Calls still in flight on the old agent finish (or time out) there.
        setTimeout(() => old.destroy(), defaultTimeout).unref();
      } catch (e) {
        problem = `the kubeconfig or its credentials could not be read again: ${(e as Error).message}`;
      } finally {
        reloadedAt = Date.now();
        reloading = undefined;
      }
    })();
    return reloading;
  }

  /** The server refused our certificate or credentials: read them again; refused again after that, it is a problem. */
  function refused(what: string, usedGeneration: number): void {
    // A call made with material already replaced says nothing about the new one.
    if (usedGeneration !== generation) return;
    if (rereadAfterRefusal)
      problem = `the API server still refuses virtwake after its kubeconfig and credentials were read again: ${what}`;
    void reload();
  }

  async function authHeaders(): Promise<Record<string, string>> {
    if (Date.now() - resolvedAt > AUTH_REFRESH_MS) {
      try {
        resolved = await resolveOptions(current);
      } catch (e) {
        // An exec plugin or token file that fails later is a failed call (retried, then 503), not a crash.
        throw new KubeTransportError(`${credentialsOf(current)}: ${(e as Error).message?.trim() || 'no message'}`);
      }
      resolvedAt = Date.now();
    }
    return (resolved.headers ?? {}) as Record<string, string>;
  }

  function request<T>(req: KubeRequest): Promise<T> {
    const used = generation;
    return send<T>(req).then(
      (out) => {
        problem = undefined;
        rereadAfterRefusal = false;
        return out;
      },
      (e: unknown) => {
        if (e instanceof KubeApiError && e.status === 401) refused(`401 ${e.message}`, used);
        else if (e instanceof KubeApiError)
          problem = undefined; // it answered: TLS and credentials work
        else if (e instanceof KubeTransportError && e.code && TLS_REFUSALS.test(e.code))
          refused(`${e.code} ${e.message}`, used);
        throw e;
      },
    );
  }

  function send<T>(req: KubeRequest): Promise<T> {
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
    get kubeConfig() {
      return current;
    },
    server: cluster.server,
    request,
    problem: () => problem,
    noteWatch(collection, refusal) {
      if (refusal === undefined) refusedWatches.delete(collection);
      else refusedWatches.set(collection, refusal);
    },
    refusals: () => [...refusedWatches.values()],
    close: () => agent.destroy(),
  };
}

/** Which credential failed to resolve, for the start-up error. */
function credentialsOf(kc: KubeConfig): string {
  const user = kc.getCurrentUser();
  const exec = user?.exec as { command?: string } | undefined;
  if (exec) return `user "${user?.name}": exec plugin ${JSON.stringify(exec.command ?? '')} failed`;
  if (user?.authProvider) return `user "${user.name}": auth provider failed`;
  return `user "${user?.name}": credentials could not be read`;
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
  if (o.ca) material.ca = certificates(o.ca);
  if (o.cert) material.cert = o.cert;
  if (o.key) material.key = o.key;
  if (o.pfx) material.pfx = o.pfx;
  if (o.passphrase) material.passphrase = o.passphrase;
  const out: https.AgentOptions = { secureContext: tls.createSecureContext(material) };
  if (o.servername) out.servername = o.servername;
  if (o.rejectUnauthorized !== undefined) out.rejectUnauthorized = o.rejectUnauthorized;
  return out;
}

/** Node takes a CA that holds no certificate without a word, then fails every handshake: refuse it at start. */
function certificates(ca: NonNullable<https.AgentOptions['ca']>): typeof ca {
  const text = (Array.isArray(ca) ? ca : [ca]).map((c) => c.toString()).join('\n');
  const pems = text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (pems.length === 0) throw new Error('the certificate authority holds no PEM certificate');
  for (const pem of pems) new X509Certificate(pem);
  return ca;
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
