import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { KubeConfig, loadYaml } from '@kubernetes/client-node';
import { ConfigError } from '../config';

// The one place a kubeconfig is found, read and checked, as kubectl would take it:
// KUBECONFIG (one path or a list, merged), else ~/.kube/config, else the pod's service
// account. Everything that makes a kubeconfig unusable is found here, at start, and said in
// one line that names the file, context, cluster or user to fix (contract §7).

/** A kubeconfig that cannot work. main.ts prints the message and exits 2, like any configuration error. */
export class KubeconfigError extends ConfigError {
  constructor(message: string) {
    super(`kubeconfig: ${oneLine(message)}`);
  }
}

// Named through KubeConfig: scripts/build.mjs narrows client-node to the few names imported from it.
type Cluster = KubeConfig['clusters'][number];
type User = KubeConfig['users'][number];

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** Where the configuration came from, for the start log and error messages. */
export interface LoadedKubeConfig {
  kubeConfig: KubeConfig;
  source: string;
}

export function loadKubeConfig(env: NodeJS.ProcessEnv = process.env): LoadedKubeConfig {
  const files = (env.KUBECONFIG ?? '').split(path.delimiter).filter(Boolean);
  if (files.length > 0) {
    const kc = readFile(files[0]);
    // kubectl's merge: the first file that sets a value wins, current-context included.
    for (const file of files.slice(1)) kc.mergeConfig(readFile(file), true);
    return { kubeConfig: checked(kc, files.join(path.delimiter)), source: files.join(path.delimiter) };
  }
  const home = path.join(env.HOME || os.homedir(), '.kube', 'config');
  if (fs.existsSync(home)) return { kubeConfig: checked(readFile(home), home), source: home };
  if (env.KUBERNETES_SERVICE_HOST && fs.existsSync(path.join(SA_DIR, 'token'))) {
    const kc = new KubeConfig();
    kc.loadFromCluster();
    return { kubeConfig: checked(kc, 'in-cluster service account'), source: 'in-cluster service account' };
  }
  throw new KubeconfigError(
    `none found: set KUBECONFIG, create ${home}, or run in a pod with a service account (${
      env.KUBERNETES_SERVICE_HOST ? `no token at ${SA_DIR}/token` : 'KUBERNETES_SERVICE_HOST is unset'
    })`,
  );
}

/** Check a configuration built elsewhere (tests hand one in) the same way a loaded one is. */
export function checkKubeConfig(kc: KubeConfig, where = 'the given kubeconfig'): KubeConfig {
  return checked(kc, where);
}

function readFile(file: string): KubeConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new KubeconfigError(`cannot read ${file} (from KUBECONFIG): ${reason(e)}`);
  }
  const kc = new KubeConfig();
  try {
    kc.loadFromString(text);
  } catch (e) {
    const missing = (e as { path?: string }).path;
    // client-node reads token-file while parsing.
    if (missing) throw new KubeconfigError(`${file} names ${missing}, which cannot be read: ${reason(e)}`);
    throw new KubeconfigError(`${file} is not a valid kubeconfig: ${reason(e)}`);
  }
  // Relative certificate and key paths are relative to the file, as kubectl reads them.
  const dir = path.dirname(path.resolve(file));
  kc.makePathsAbsolute(dir);
  return withTokenFiles(kc, text, file, dir);
}

/**
 * kubectl's `tokenFile` (client-go's AuthInfo.TokenFile), which client-node does not know (it reads only
 * its own `token-file`): the token is read from the file, relative to the kubeconfig's directory and
 * trimmed, and wins over `token`, as client-go has it. Read here, on every load: connection.ts loads the
 * kubeconfig again when the API server refuses the token (401), so a file rotated on disk is picked up.
 */
function withTokenFiles(kc: KubeConfig, text: string, file: string, dir: string): KubeConfig {
  const doc = loadYaml(text) as { users?: { name?: unknown; user?: { tokenFile?: unknown } }[] } | undefined;
  const files = new Map<string, string>();
  for (const u of Array.isArray(doc?.users) ? doc.users : []) {
    const f = u?.user?.tokenFile;
    if (typeof u?.name === 'string' && typeof f === 'string' && f) files.set(u.name, path.resolve(dir, f));
  }
  if (files.size === 0) return kc;
  const users = kc.users.map((u) => {
    const tokenFile = files.get(u.name);
    if (!tokenFile) return u;
    try {
      return { ...u, token: fs.readFileSync(tokenFile, 'utf8').trim() };
    } catch (e) {
      throw new KubeconfigError(`${file}: user "${u.name}": tokenFile ${tokenFile} cannot be read: ${reason(e)}`);
    }
  });
  const out = new KubeConfig();
  out.loadFromOptions({ clusters: kc.clusters, contexts: kc.contexts, users, currentContext: kc.getCurrentContext() });
  return out;
}

function checked(kc: KubeConfig, where: string): KubeConfig {
  const current = kc.getCurrentContext();
  if (!current && kc.contexts.length > 0)
    throw new KubeconfigError(`${where} sets no current-context (contexts: ${names(kc.contexts)})`);
  const context = current ? kc.getContextObject(current) : null;
  if (current && !context)
    throw new KubeconfigError(
      `${where}: current-context "${current}" is not one of its contexts (${names(kc.contexts) || 'none'})`,
    );
  const cluster = kc.getCurrentCluster();
  if (!cluster)
    throw new KubeconfigError(
      context
        ? `${where}: context "${context.name}" names cluster "${context.cluster}", which is not defined`
        : `${where} defines no context and no cluster`,
    );
  if (context?.user && !kc.getCurrentUser())
    throw new KubeconfigError(`${where}: context "${context.name}" names user "${context.user}", which is not defined`);
  const user = kc.getCurrentUser();

  let server: URL;
  try {
    server = new URL(cluster.server);
  } catch {
    throw new KubeconfigError(`cluster "${cluster.name}": server ${JSON.stringify(cluster.server)} is not a URL`);
  }
  if (server.protocol !== 'https:' && server.protocol !== 'http:')
    throw new KubeconfigError(`cluster "${cluster.name}": server ${cluster.server} must be https:// or http://`);

  readable(`cluster "${cluster.name}": certificate-authority`, cluster.caFile);
  readable(`user "${user?.name}": client-certificate`, user?.certFile);
  readable(`user "${user?.name}": client-key`, user?.keyFile);

  if (server.protocol === 'http:') return plainHttp(kc, cluster, user, server);
  return kc;
}

/**
 * Plain http is what `kubectl proxy` serves: the proxy holds the credentials and the
 * kubeconfig has none. kubectl accepts it, so do we, unless credentials would cross a
 * network unencrypted. client-node 1.x refuses http unless the cluster says
 * insecure-skip-tls-verify; there is no TLS on http to skip, so setting it for this cluster
 * alone changes nothing else and leaves every https cluster verified.
 */
function plainHttp(kc: KubeConfig, cluster: Cluster, user: User | null, server: URL): KubeConfig {
  const creds = credentialsOf(user);
  if (creds.length > 0 && !isLoopback(server.hostname))
    throw new KubeconfigError(
      `cluster "${cluster.name}" is plain http at ${server.host} and user "${user?.name}" carries ${creds.join(', ')}, ` +
        'which would cross the network unencrypted: use https, or run kubectl proxy on this host and point the server at it',
    );
  if (cluster.skipTLSVerify) return kc;
  const out = new KubeConfig();
  out.loadFromOptions({
    clusters: kc.clusters.map((c) => (c.name === cluster.name ? { ...c, skipTLSVerify: true } : c)),
    contexts: kc.contexts,
    users: kc.users,
    currentContext: kc.getCurrentContext(),
  });
  return out;
}

function credentialsOf(user: User | null): string[] {
  if (!user) return [];
  const u = user;
  const out: string[] = [];
  if (u.token) out.push('a bearer token');
  if (u.certData || u.certFile || u.keyData || u.keyFile) out.push('a client certificate');
  if (u.username || u.password) out.push('a password');
  if (u.exec) out.push('an exec plugin');
  if (u.authProvider) out.push('an auth provider');
  return out;
}

function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  if (h === 'localhost') return true;
  if (net.isIPv4(h)) return h.startsWith('127.');
  return h === '::1';
}

function readable(what: string, file: string | undefined): void {
  if (!file) return;
  try {
    fs.accessSync(file, fs.constants.R_OK);
  } catch (e) {
    throw new KubeconfigError(`${what} ${file} cannot be read: ${reason(e)}`);
  }
}

function names(list: { name: string }[]): string {
  return list.map((c) => c.name).join(', ');
}

function reason(e: unknown): string {
  const err = e as { code?: string; message?: string };
  if (err?.code === 'ENOENT') return 'no such file';
  if (err?.code === 'EACCES') return 'permission denied';
  return oneLine(err?.message ?? String(e));
}

export function oneLine(s: string): string {
  const first = s
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  return first.join(' ').slice(0, 400);
}
