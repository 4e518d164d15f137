// A throwaway PKI per simulator: a CA, a server certificate for 127.0.0.1/localhost, and
// a client certificate the kubeconfig can carry when client-cert auth is on.

import { generate } from 'selfsigned';

export interface SimPki {
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

export async function createPki(clientCommonName = 'virtwake-sim-user'): Promise<SimPki> {
  const notBeforeDate = new Date(Date.now() - 60 * 60 * 1000);
  const notAfterDate = new Date(Date.now() + 7 * 24 * 60 * 60 * 1000);
  const common = { keyType: 'ec' as const, curve: 'P-256' as const, algorithm: 'sha256', notBeforeDate, notAfterDate };
  const ca = await generate([{ name: 'commonName', value: 'virtwake-sim-ca' }], {
    ...common,
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  });
  const caPair = { key: ca.private, cert: ca.cert };
  const server = await generate([{ name: 'commonName', value: 'kube-apiserver' }], {
    ...common,
    ca: caPair,
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
          { type: 7, ip: '::1' },
        ],
      },
    ],
  });
  const client = await generate(
    [
      { name: 'commonName', value: clientCommonName },
      { name: 'organizationName', value: 'virtwake' },
    ],
    {
      ...common,
      ca: caPair,
      extensions: [
        { name: 'basicConstraints', cA: false },
        { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
        { name: 'extKeyUsage', clientAuth: true },
      ],
    },
  );
  return {
    caCert: ca.cert,
    caKey: ca.private,
    serverCert: server.cert,
    serverKey: server.private,
    clientCert: client.cert,
    clientKey: client.private,
  };
}
