// A TCP forwarder in front of kube-apiserver that a test can cut, as a load balancer or a
// node's network drops every open connection. TLS passes through untouched.

import net from 'node:net';

export interface CutProxy {
  url: string;
  /** Destroy every open connection (watch streams end with ECONNRESET). */
  cut(): number;
  close(): Promise<void>;
}

export async function startCutProxy(target: URL): Promise<CutProxy> {
  const open = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    open.add(client);
    open.add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `https://127.0.0.1:${port}`,
    cut() {
      const n = open.size;
      for (const s of [...open]) s.destroy();
      open.clear();
      return n;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** etcd's current revision and a compaction up to it, through etcd's JSON gateway. */
export async function compactEtcd(etcdUrl: string): Promise<number> {
  const range = await fetch(`${etcdUrl}/v3/kv/range`, {
    method: 'POST',
    body: JSON.stringify({ key: Buffer.from('/registry/namespaces/').toString('base64'), limit: 1 }),
  });
  const revision = Number(((await range.json()) as { header: { revision: string } }).header.revision);
  const res = await fetch(`${etcdUrl}/v3/kv/compaction`, {
    method: 'POST',
    body: JSON.stringify({ revision: String(revision), physical: true }),
  });
  if (!res.ok) throw new Error(`etcd compaction to ${revision} failed: ${res.status} ${await res.text()}`);
  return revision;
}
