import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig, Watch } from '@kubernetes/client-node';
import { watchOnce } from '../../functions/runtime/kube/watch-once';

// A caller that gave up before its watch opened (the client hung up while the loop was reading
// or sleeping) must not leave a watch running to its deadline: the signal was aborted already,
// so no abort event will ever come.

let server: http.Server;
const seen: string[] = [];
let kc: KubeConfig;

beforeAll(async () => {
  // An API server that accepts watches and never answers them.
  server = http.createServer((req) => seen.push(req.url ?? ''));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [
      { name: 'c', server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true },
    ],
    users: [{ name: 'u' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

test('a signal aborted before the stream opens ends it at once, without opening a watch', async () => {
  const gone = new AbortController();
  gone.abort();
  const end = await watchOnce(
    new Watch(kc),
    '/apis/kubevirt.io/v1/namespaces/default/virtualmachines',
    {},
    () => undefined,
    Date.now() + 60_000,
    gone.signal,
  );
  expect(end).toEqual({ kind: 'ended' });
  await new Promise((r) => setTimeout(r, 200));
  expect(seen).toEqual([]);
}, 10_000);

test('a signal aborted while the stream is open ends it', async () => {
  const gone = new AbortController();
  const end = watchOnce(
    new Watch(kc),
    '/apis/kubevirt.io/v1/namespaces/default/virtualmachines',
    {},
    () => undefined,
    Date.now() + 60_000,
    gone.signal,
  );
  while (seen.length === 0) await new Promise((r) => setTimeout(r, 10));
  gone.abort();
  expect(await end).toEqual({ kind: 'ended' });
}, 10_000);
