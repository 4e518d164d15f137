// The rig's throwaway PKI, made with the openssl command line: a cluster CA (serving and
// client certificates), a front-proxy CA (the aggregator's client certificate), and the
// ServiceAccount token signing key. Laid out as kubeadm does under /etc/kubernetes/pki.

import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface Pki {
  dir: string;
  ca: string;
  caKey: string;
  apiserverCert: string;
  apiserverKey: string;
  adminCert: string;
  adminKey: string;
  frontProxyCA: string;
  frontProxyClientCert: string;
  frontProxyClientKey: string;
  saKey: string;
  saPub: string;
  virtApiCert: string;
  virtApiKey: string;
}

function ssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function makeCA(dir: string, name: string, cn: string): void {
  ssl(
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '3',
      '-subj',
      `/CN=${cn}`,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.crt`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign,digitalSignature',
    ],
    dir,
  );
}

function makeCert(dir: string, ca: string, name: string, subj: string, ext: string): void {
  writeFileSync(path.join(dir, `${name}.ext`), ext);
  ssl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', subj, '-keyout', `${name}.key`, '-out', `${name}.csr`], dir);
  ssl(
    [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      `${ca}.crt`,
      '-CAkey',
      `${ca}.key`,
      '-CAcreateserial',
      '-days',
      '3',
      '-out',
      `${name}.crt`,
      '-extfile',
      `${name}.ext`,
    ],
    dir,
  );
}

const SERVER =
  'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n';
const CLIENT =
  'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n';

/** `extraIPs`: further addresses the API is reached at (the pod network's host address). */
export function createPki(dir: string, extraIPs: string[] = []): Pki {
  const f = (n: string) => path.join(dir, n);
  if (!existsSync(f('virt-api.crt'))) {
    makeCA(dir, 'ca', 'rig-cluster-ca');
    makeCA(dir, 'front-proxy-ca', 'rig-front-proxy-ca');
    makeCert(
      dir,
      'ca',
      'apiserver',
      '/CN=kube-apiserver',
      `${SERVER}subjectAltName=IP:127.0.0.1,${extraIPs.map((a) => `IP:${a},`).join('')}DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\n`,
    );
    // O=system:masters: the rig's own setup and KubeVirt's controllers act as cluster admin.
    makeCert(dir, 'ca', 'admin', '/O=system:masters/CN=rig-admin', CLIENT);
    makeCert(dir, 'front-proxy-ca', 'front-proxy-client', '/CN=front-proxy-client', CLIENT);
    // The aggregator checks virt-api's certificate against the Service name it resolved.
    makeCert(
      dir,
      'ca',
      'virt-api',
      '/CN=virt-api.kubevirt.svc',
      `${SERVER}subjectAltName=DNS:virt-api.kubevirt.svc,DNS:virt-api.kubevirt.svc.cluster.local,DNS:localhost,IP:127.0.0.1\n`,
    );
    ssl(['genrsa', '-out', 'sa.key', '2048'], dir);
    ssl(['rsa', '-in', 'sa.key', '-pubout', '-out', 'sa.pub'], dir);
  }
  return {
    dir,
    ca: f('ca.crt'),
    caKey: f('ca.key'),
    apiserverCert: f('apiserver.crt'),
    apiserverKey: f('apiserver.key'),
    adminCert: f('admin.crt'),
    adminKey: f('admin.key'),
    frontProxyCA: f('front-proxy-ca.crt'),
    frontProxyClientCert: f('front-proxy-client.crt'),
    frontProxyClientKey: f('front-proxy-client.key'),
    saKey: f('sa.key'),
    saPub: f('sa.pub'),
    virtApiCert: f('virt-api.crt'),
    virtApiKey: f('virt-api.key'),
  };
}
