// The kubeconfig a client (client-node, kubectl) loads to reach the simulator.

import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { dump } from 'js-yaml';

export interface KubeconfigInput {
  server: string;
  caCert?: string;
  token?: string;
  clientCert?: string;
  clientKey?: string;
  namespace?: string;
}

const b64 = (s: string) => Buffer.from(s).toString('base64');

export function renderKubeconfig(k: KubeconfigInput): string {
  const user: Record<string, string> = {};
  if (k.token) user.token = k.token;
  if (k.clientCert && k.clientKey) {
    user['client-certificate-data'] = b64(k.clientCert);
    user['client-key-data'] = b64(k.clientKey);
  }
  const cluster: Record<string, string | boolean> = { server: k.server };
  if (k.caCert) cluster['certificate-authority-data'] = b64(k.caCert);
  // client-node 1.x refuses plain http:// unless TLS verification is explicitly skipped.
  if (k.server.startsWith('http:')) cluster['insecure-skip-tls-verify'] = true;
  const doc = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'virtwake-sim', cluster }],
    users: [{ name: 'virtwake-sim-user', user }],
    contexts: [
      {
        name: 'virtwake-sim',
        context: { cluster: 'virtwake-sim', user: 'virtwake-sim-user', namespace: k.namespace ?? 'default' },
      },
    ],
    'current-context': 'virtwake-sim',
    preferences: {},
  };
  return dump(doc, { lineWidth: -1 });
}

export function writeKubeconfig(text: string, path?: string): string {
  const target = path ?? join(mkdtempSync(join(tmpdir(), 'virtwake-sim-')), 'kubeconfig');
  mkdirSync(dirname(target), { recursive: true });
  writeFileSync(target, text, { mode: 0o600 });
  return target;
}
