import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, loadConfig } from '../../functions/runtime/config';
import { pickReady } from '../../functions/wake-proxy/endpoints';
import { wakeQueue } from '../../functions/wake-proxy/queue';
import {
  loadRoutes,
  normaliseHost,
  parseAllRoutes,
  parseRoutes,
  routeTable,
  upstreamPath,
} from '../../functions/wake-proxy/routes';
import { normalisePath, requestTarget } from '../../functions/wake-proxy/target';

// The proxy's pure parts: routes, endpoint choice, the bounded queue, its configuration.

const vm = { namespace: 'vms', name: 'app' };
const service = { name: 'app', port: 8080 };

describe('routes', () => {
  const table = routeTable(
    parseRoutes(
      {
        routes: [
          { host: 'app.example.com', vm, service },
          {
            pathPrefix: '/legacy',
            stripPrefix: true,
            vm: { name: 'legacy' },
            service: { name: 'legacy', port: 'http' },
          },
          { pathPrefix: '/legacy/admin', vm: { name: 'admin' }, service: { name: 'admin', port: 80 } },
          { vm: { name: 'fallback' }, service: { name: 'fallback', port: 80 } },
        ],
      },
      'default',
    ),
  );

  test('host beats path, the longer prefix wins, a bare route catches the rest', () => {
    expect(table.match('APP.example.com:8443', '/legacy/x')?.vm.name).toBe('app');
    expect(table.match('other', '/legacy/admin/users')?.vm.name).toBe('admin');
    expect(table.match('other', '/legacy?q=1')?.vm).toEqual({ namespace: 'default', name: 'legacy' });
    expect(table.match('other', '/legacyish')?.vm.name).toBe('fallback');
    expect(table.match(undefined, '/')?.vm.name).toBe('fallback');
  });

  test('stripPrefix', () => {
    const legacy = table.match('x', '/legacy/a')!;
    expect(upstreamPath(legacy, '/legacy/a?b=1')).toBe('/a?b=1');
    expect(upstreamPath(legacy, '/legacy')).toBe('/');
    expect(upstreamPath(table.match('x', '/legacy/admin')!, '/legacy/admin/x')).toBe('/legacy/admin/x');
  });

  test.each([
    [{ routes: {} }, /"routes" must be a list/],
    [{ routes: [{ vm, service, hots: 'x' }] }, /routes\[0\]\.hots: unknown field/],
    [{ routes: [{ vm: { name: 'Bad/Name' }, service }] }, /routes\[0\]\.vm\.name/],
    [{ routes: [{ vm, service: { name: 'app' } }] }, /routes\[0\]\.service\.port/],
    [{ routes: [{ vm, service, pathPrefix: 'x' }] }, /pathPrefix: must start with \//],
    [
      {
        routes: [
          { vm, service },
          { vm, service },
        ],
      },
      /routes\[1\]: another route/,
    ],
  ])('%o is refused', (doc, message) => {
    expect(() => parseRoutes(doc, 'default')).toThrow(ConfigError);
    expect(() => parseRoutes(doc, 'default')).toThrow(message);
  });

  test('the file may be YAML or JSON; a missing file names the variable', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'routes-'));
    fs.writeFileSync(
      path.join(dir, 'r.yaml'),
      '# comment\nroutes:\n  - host: a.example\n    vm: {name: a}\n    service: {name: a, port: 80}\n',
    );
    fs.writeFileSync(
      path.join(dir, 'r.json'),
      JSON.stringify({ routes: [{ host: 'b.example', vm: { name: 'b' }, service: { name: 'b', port: 80 } }] }),
    );
    expect(loadRoutes(path.join(dir, 'r.yaml'), 'ns').routes[0].vm).toEqual({ namespace: 'ns', name: 'a' });
    expect(loadRoutes(path.join(dir, 'r.json'), 'ns').routes[0].host).toBe('b.example');
    expect(() => loadRoutes(path.join(dir, 'nope'), 'ns')).toThrow(/VIRTWAKE_PROXY_ROUTES: cannot read/);
    // An empty file (or only comments) is no routes yet, as the schema's `routes: null` is; a broken one is refused.
    fs.writeFileSync(path.join(dir, 'empty.yaml'), '# no routes yet\n');
    expect(loadRoutes(path.join(dir, 'empty.yaml'), 'ns').routes).toEqual([]);
    fs.writeFileSync(path.join(dir, 'broken.yaml'), 'routes: [\n');
    expect(() => loadRoutes(path.join(dir, 'broken.yaml'), 'ns')).toThrow(
      /^VIRTWAKE_PROXY_ROUTES: .*broken\.yaml is neither YAML nor JSON: /,
    );
  });
});

test('a ready endpoint with the wanted port', () => {
  const slice = (ready: boolean | undefined, ports: { name?: string; port: number }[], address = '10.0.0.1') => ({
    metadata: { name: `s-${address}` },
    addressType: 'IPv4',
    ports,
    endpoints: [{ addresses: [address], conditions: ready === undefined ? {} : { ready } }],
  });
  expect(pickReady([slice(false, [{ port: 8080 }])], 8080)).toBeUndefined();
  expect(pickReady([slice(false, [{ port: 8080 }]), slice(true, [{ port: 8080 }], '10.0.0.2')], 8080)).toEqual({
    host: '10.0.0.2',
    port: 8080,
  });
  // Unset `ready` means ready; a single-port Service matches its Service port number too.
  expect(pickReady([slice(undefined, [{ port: 9000 }])], 80)).toEqual({ host: '10.0.0.1', port: 9000 });
  expect(
    pickReady(
      [
        slice(true, [
          { name: 'http', port: 9000 },
          { name: 'admin', port: 9001 },
        ]),
      ],
      'admin',
    ),
  ).toEqual({ host: '10.0.0.1', port: 9001 });
  expect(
    pickReady(
      [
        slice(true, [
          { name: 'http', port: 9000 },
          { name: 'admin', port: 9001 },
        ]),
      ],
      80,
    ),
  ).toBeUndefined();
});

test('the queue is bounded per VM', () => {
  const q = wakeQueue(2);
  expect([q.enter('a'), q.enter('a'), q.enter('a'), q.enter('b')]).toEqual([true, true, false, true]);
  q.leave('a');
  expect(q.enter('a')).toBe(true);
  expect(q.size('a')).toBe(2);
});

test('configuration', () => {
  const c = loadConfig({ VIRTWAKE_NAMESPACE: 'vms' });
  expect(c).toMatchObject({
    reaperPageSize: 500,
    reaperSource: undefined,
    proxyQueueSize: 100,
    proxyWakeTimeoutMs: 120_000,
    proxyActivityIntervalMs: 30_000,
  });
  expect(loadConfig({ VIRTWAKE_PROXY_ACTIVITY_INTERVAL: '1m' }).proxyActivityIntervalMs).toBe(60_000);
  for (const bad of ['soon', '0s', '2h'])
    expect(() => loadConfig({ VIRTWAKE_PROXY_ACTIVITY_INTERVAL: bad })).toThrow(
      /VIRTWAKE_PROXY_ACTIVITY_INTERVAL .* is not a duration from 10ms to 1h/,
    );
  expect(loadConfig({ VIRTWAKE_NAMESPACE: 'vms', VIRTWAKE_PROXY_WAKE_TIMEOUT: '3m' }).proxyWakeTimeoutMs).toBe(180_000);
  expect(() => loadConfig({ VIRTWAKE_PROXY_WAKE_TIMEOUT: 'later' })).toThrow(/VIRTWAKE_PROXY_WAKE_TIMEOUT/);
  expect(() => loadConfig({ VIRTWAKE_FUNCTIONS: 'wake-proxy,start', VIRTWAKE_PROXY_ROUTES: '/r' })).toThrow(
    /must run alone/,
  );
  expect(() => loadConfig({ VIRTWAKE_FUNCTIONS: 'wake-proxy' })).toThrow(/VIRTWAKE_PROXY_ROUTES must name/);
  expect(() => loadConfig({ VIRTWAKE_REAPER_PAGE_SIZE: '0' })).toThrow(/VIRTWAKE_REAPER_PAGE_SIZE/);
});

describe('the request target, read as the upstream reads it', () => {
  test.each([
    ['/reports/../admin', '/admin'],
    ['/reports/%2e%2E/admin?x=../y', '/admin?x=../y'],
    ['/a/./b/../../c/', '/c/'],
    ['/a/b/..', '/a/'],
    ['/..', '/'],
    ['/a//b', '/a//b'],
    ['*', '*'],
  ])('%s is %s', (sent, path) => {
    expect(normalisePath(sent)).toBe(path);
  });

  test('absolute-form authority, then K-Original-Host, then Host', () => {
    expect(requestTarget('http://erp.example:80/x/../y', { host: 'other' })).toEqual({
      hosts: ['erp.example:80'],
      path: '/y',
      forwardHost: 'erp.example:80',
    });
    expect(requestTarget('/p', { host: 'ksvc.local', 'k-original-host': 'erp.example' })).toEqual({
      hosts: ['erp.example', 'ksvc.local'],
      path: '/p',
      forwardHost: 'erp.example',
    });
    expect(requestTarget('/p', { host: 'erp.example' }).forwardHost).toBeUndefined();
  });

  test('a host route matches the first candidate that has one; the host is compared without port and trailing dot', () => {
    const t = routeTable(
      parseRoutes(
        {
          routes: [
            { host: 'erp.example', vm: { name: 'erp' }, service },
            { host: 'ksvc.local', vm: { name: 'ksvc' }, service },
          ],
        },
        'default',
      ),
    );
    expect(t.match(['ERP.example.:443', 'ksvc.local'], '/')?.vm.name).toBe('erp');
    expect(t.match(['unknown.example', 'ksvc.local'], '/')?.vm.name).toBe('ksvc');
    expect(normaliseHost('[::1]:8080')).toBe('[::1]');
  });
});

describe('TCP routes in the routes file', () => {
  const tcp = (port: unknown, extra: Record<string, unknown> = {}) => ({
    listen: { tcp: port },
    vm: { name: 'db' },
    service: { name: 'db', port: 5432 },
    ...extra,
  });

  test('sit beside HTTP routes; the namespace defaults', () => {
    const { http, tcp: tcps } = parseAllRoutes({ routes: [{ vm, service }, tcp(5432)] }, 'vms');
    expect(http).toHaveLength(1);
    expect(tcps).toEqual([
      {
        listen: { tcp: 5432 },
        vm: { namespace: 'vms', name: 'db' },
        service: { name: 'db', port: 5432 },
        label: 'routes[1] (listen tcp 5432 → VM vms/db)',
      },
    ]);
  });

  test.each([
    [
      { routes: [tcp(5432), tcp(5432)] },
      /routes\[1\] \(listen tcp 5432 → VM d\/db\): port 5432 is already taken by routes\[0\]/,
    ],
    [{ routes: [tcp('5432')] }, /routes\[0\]\.listen\.tcp: must be a port number from 1 to 65535 \(got "5432"\)/],
    [{ routes: [tcp(0)] }, /routes\[0\]\.listen\.tcp/],
    [{ routes: [tcp(22, { host: 'x' })] }, /routes\[0\]\.host: unknown field \(the TCP route listening on 22\)/],
    [{ routes: [tcp(22, { vm: {} })] }, /routes\[0\]\.vm\.name: required/],
    [{ route: [] }, /route: unknown field/],
  ])('%o is refused', (doc, message) => {
    expect(() => parseAllRoutes(doc, 'd')).toThrow(ConfigError);
    expect(() => parseAllRoutes(doc, 'd')).toThrow(message);
  });
});
