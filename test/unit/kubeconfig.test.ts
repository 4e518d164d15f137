import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { KubeconfigError, loadKubeConfig } from '../../functions/runtime/kube/kubeconfig';

// The one kubeconfig loader: where it looks, how files merge, and what plain http changes
// (only the http cluster is touched; every https cluster keeps its TLS verification).

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'virtwake-kcu-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

function file(name: string, doc: unknown): string {
  const p = path.join(dir, name);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, JSON.stringify(doc));
  return p;
}

const cluster = (name: string, server: string, extra: Record<string, unknown> = {}) => ({
  name,
  cluster: { server, ...extra },
});
const context = (name: string, c: string, user?: string) => ({ name, context: { cluster: c, user } });

test('plain http: that cluster alone is marked for client-node; an https cluster beside it stays verified', () => {
  const kc = file('kc', {
    clusters: [cluster('proxy', 'http://127.0.0.1:8001'), cluster('prod', 'https://10.0.0.1:6443')],
    contexts: [context('proxy', 'proxy'), context('prod', 'prod')],
    'current-context': 'proxy',
  });
  const { kubeConfig } = loadKubeConfig({ KUBECONFIG: kc });
  expect(kubeConfig.getCurrentCluster()).toMatchObject({ server: 'http://127.0.0.1:8001', skipTLSVerify: true });
  expect(kubeConfig.getCluster('prod')?.skipTLSVerify).toBeFalsy();
  kubeConfig.setCurrentContext('prod');
  expect(kubeConfig.getCurrentCluster()?.skipTLSVerify).toBeFalsy();
});

test('an https kubeconfig is returned as written', () => {
  const kc = file('kc', {
    clusters: [cluster('prod', 'https://10.0.0.1:6443')],
    users: [{ name: 'u', user: { token: 't' } }],
    contexts: [context('prod', 'prod', 'u')],
    'current-context': 'prod',
  });
  const { kubeConfig } = loadKubeConfig({ KUBECONFIG: kc });
  expect(kubeConfig.getCurrentCluster()?.skipTLSVerify).toBeFalsy();
  expect(kubeConfig.getCurrentUser()?.token).toBe('t');
});

test('credentials over plain http: allowed to this host, refused to another', () => {
  const withToken = (server: string) =>
    file(`kc-${server.replace(/\W/g, '')}`, {
      clusters: [cluster('c', server)],
      users: [{ name: 'u', user: { token: 't' } }],
      contexts: [context('ctx', 'c', 'u')],
      'current-context': 'ctx',
    });
  for (const local of ['http://127.0.0.1:8001', 'http://localhost:8001', 'http://[::1]:8001'])
    expect(loadKubeConfig({ KUBECONFIG: withToken(local) }).kubeConfig.getCurrentCluster()?.server).toBe(local);
  expect(() => loadKubeConfig({ KUBECONFIG: withToken('http://proxy.internal:8001') })).toThrow(
    new KubeconfigError(
      'cluster "c" is plain http at proxy.internal:8001 and user "u" carries a bearer token, which would cross the network unencrypted: use https, or run kubectl proxy on this host and point the server at it',
    ),
  );
  // No credentials: nothing to leak, so any host (a kubectl proxy on another machine) is fine.
  const open = file('open', {
    clusters: [cluster('c', 'http://proxy.internal:8001')],
    contexts: [context('ctx', 'c')],
    'current-context': 'ctx',
  });
  expect(loadKubeConfig({ KUBECONFIG: open }).kubeConfig.getCurrentCluster()?.skipTLSVerify).toBe(true);
});

test('a KUBECONFIG list merges as kubectl does: the first current-context wins, later files add entries', () => {
  const a = file('a', { clusters: [], contexts: [], 'current-context': 'b-ctx' });
  const b = file('b', {
    clusters: [cluster('b', 'https://10.0.0.2:6443')],
    contexts: [context('b-ctx', 'b')],
    'current-context': 'other',
  });
  const { kubeConfig, source } = loadKubeConfig({ KUBECONFIG: [a, b].join(path.delimiter) });
  expect(source).toBe([a, b].join(path.delimiter));
  expect(kubeConfig.getCurrentContext()).toBe('b-ctx');
  expect(kubeConfig.getCurrentCluster()?.server).toBe('https://10.0.0.2:6443');
});

test('without KUBECONFIG: ~/.kube/config, with relative paths read from its directory', () => {
  fs.writeFileSync(path.join(dir, 'ca.pem'), 'x');
  const home = file('.kube/config', {
    clusters: [cluster('c', 'https://10.0.0.1:6443', { 'certificate-authority': '../ca.pem' })],
    contexts: [context('ctx', 'c')],
    'current-context': 'ctx',
  });
  const { kubeConfig, source } = loadKubeConfig({ HOME: dir });
  expect(source).toBe(home);
  expect(kubeConfig.getCurrentCluster()?.caFile).toBe(path.join(dir, 'ca.pem'));
});

test('a user the context names must exist; a server must be an http(s) URL', () => {
  const base = { clusters: [cluster('c', 'https://10.0.0.1:6443')], 'current-context': 'ctx' };
  expect(() =>
    loadKubeConfig({ KUBECONFIG: file('u', { ...base, contexts: [context('ctx', 'c', 'ghost')] }) }),
  ).toThrow('context "ctx" names user "ghost", which is not defined');
  const ftp = file('s', {
    clusters: [cluster('c', 'ftp://10.0.0.1')],
    contexts: [context('ctx', 'c')],
    'current-context': 'ctx',
  });
  expect(() => loadKubeConfig({ KUBECONFIG: ftp })).toThrow('server ftp://10.0.0.1 must be https:// or http://');
});

test("kubectl's tokenFile: read relative to the kubeconfig, trimmed, over token; one that cannot be read is refused", () => {
  fs.writeFileSync(path.join(dir, 'token'), 'from-the-file\n');
  const doc = (tokenFile: string) => ({
    clusters: [cluster('prod', 'https://10.0.0.1:6443')],
    users: [{ name: 'u', user: { token: 'inline', tokenFile } }],
    contexts: [context('prod', 'prod', 'u')],
    'current-context': 'prod',
  });
  expect(loadKubeConfig({ KUBECONFIG: file('kc', doc('token')) }).kubeConfig.getCurrentUser()?.token).toBe(
    'from-the-file',
  );
  const missing = file('kc-missing', doc('nowhere/token'));
  expect(() => loadKubeConfig({ KUBECONFIG: missing })).toThrow(
    new KubeconfigError(
      `${missing}: user "u": tokenFile ${path.join(dir, 'nowhere/token')} cannot be read: no such file`,
    ),
  );
});
