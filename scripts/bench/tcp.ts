// The TCP wake proxy with its VM awake, against a direct connection to the
// same echo server in the same run: what the splice costs in throughput, in
// round-trip time, and on a new connection. Three processes besides this one
// (the simulator, the echo "guest", virtwake from dist/); this process is the
// client for both paths, alternating them round by round so drift hits both.

import { ChildProcess, fork } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort, launch, stop, type Running } from './lib/proc';
import { OPTED_IN, type SimHandle } from './lib/sim';
import { median } from './lib/stats';
import type { Row } from './lib/table';
import { virtwake } from './lib/targets';

export interface TcpPlan {
  /** Rounds; each measures both paths once. */
  rounds: number;
  /** Bytes echoed per throughput run. */
  bytes: number;
  /** 64-byte ping-pongs per round-trip run. */
  pings: number;
  /** New connections per connect run. */
  connects: number;
}

const CHUNK = Buffer.alloc(64 * 1024, 7);
const PARALLEL = 8;

function connectTo(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port, noDelay: true });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/** Push `bytes` through one connection and read them all back; ms from first write to last byte. */
async function echoThrough(port: number, bytes: number): Promise<number> {
  const s = await connectTo(port);
  const t0 = process.hrtime.bigint();
  await new Promise<void>((resolve, reject) => {
    let got = 0;
    let sent = 0;
    s.on('data', (c: Buffer) => {
      got += c.length;
      if (got >= bytes) resolve();
    });
    s.on('error', reject);
    const pump = () => {
      while (sent < bytes) {
        const piece = CHUNK.subarray(0, Math.min(CHUNK.length, bytes - sent));
        sent += piece.length;
        if (!s.write(piece)) return void s.once('drain', pump);
      }
    };
    pump();
  });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  s.destroy();
  return ms;
}

/** MB/s through `n` connections sharing `bytes`. */
async function throughput(port: number, bytes: number, n: number): Promise<number> {
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: n }, () => echoThrough(port, Math.floor(bytes / n))));
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  return bytes / 1024 / 1024 / s;
}

/** Round trips of 64 bytes on one connection, in ms. */
async function pingPong(port: number, n: number): Promise<number[]> {
  const s = await connectTo(port);
  const msg = Buffer.alloc(64, 1);
  const out: number[] = [];
  let got = 0;
  let done: (() => void) | undefined;
  s.on('data', (c: Buffer) => {
    got += c.length;
    if (got >= 64) {
      got -= 64;
      done?.();
    }
  });
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await new Promise<void>((r) => {
      done = r;
      s.write(msg);
    });
    out.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  s.destroy();
  return out;
}

/** A new connection and its first echoed byte, in ms. */
async function connects(port: number, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    const s = await connectTo(port);
    await new Promise<void>((r) => {
      s.once('data', () => r());
      s.write('x');
    });
    out.push(Number(process.hrtime.bigint() - t0) / 1e6);
    s.destroy();
  }
  return out;
}

const p99 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.max(0, Math.ceil(xs.length * 0.99) - 1)];
const mbps = (x: number) => `${x.toFixed(0)} MB/s`;
const msec = (x: number) => `${x.toFixed(3)} ms`;
const times = (x: number, base: number) => `${(x / base).toFixed(2)}×`;

async function startEcho(port: number): Promise<ChildProcess> {
  const child = fork(path.join(__dirname, 'servers', 'tcp-echo.cjs'), [], {
    env: { PATH: process.env.PATH, PORT: String(port), NODE_ENV: 'production' },
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (code) => reject(new Error(`tcp echo server exited with ${code}`)));
  });
  return child;
}

/** Wait until the proxy's TCP port echoes (it binds at start, before the HTTP port). */
async function ready(port: number, running: Running): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      await connects(port, 1);
      return;
    } catch (e) {
      if (running.child.exitCode !== null) throw new Error(`virtwake exited:\n${running.stderr()}`, { cause: e });
      if (Date.now() > deadline)
        throw new Error(`virtwake's TCP port never answered:\n${running.stderr()}`, { cause: e });
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

export async function tcpBench(sim: SimHandle, plan: TcpPlan): Promise<Row[]> {
  const echoPort = await freePort();
  const echo = await startEcho(echoPort);
  const proxyPort = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'virtwake-bench-tcp-'));
  const routes = path.join(dir, 'routes.yaml');
  fs.writeFileSync(
    routes,
    `routes:\n  - listen: {tcp: ${proxyPort}}\n    vm: {name: tcp-bench}\n    service: {name: tcp-bench, port: 5432}\n`,
  );
  await sim.addVMs([
    {
      vm: { metadata: { name: 'tcp-bench', namespace: 'default', labels: OPTED_IN }, spec: { runStrategy: 'Always' } },
      opts: { running: true },
    },
  ]);
  await sim.addService('tcp-bench', 'tcp-bench', 5432, echoPort);
  await sim.settle();
  const t = virtwake(sim);
  const proxy = launch(
    { ...t, env: { ...t.env, VIRTWAKE_FUNCTIONS: 'wake-proxy', VIRTWAKE_PROXY_ROUTES: routes } },
    await freePort(),
  );
  try {
    await ready(proxyPort, proxy);
    // Warm both paths (JIT, the proxy's upstream lookup) before measuring.
    for (const port of [echoPort, proxyPort]) {
      await throughput(port, 16 * 1024 * 1024, 1);
      await pingPong(port, 200);
      await connects(port, 20);
    }
    const m = {
      one: { direct: [] as number[], proxied: [] as number[] },
      many: { direct: [] as number[], proxied: [] as number[] },
      rtt: { direct: [] as number[], proxied: [] as number[] },
      conn: { direct: [] as number[], proxied: [] as number[] },
    };
    for (let r = 0; r < plan.rounds; r++) {
      // Alternate which path goes first so neither always runs on a warmer machine.
      const order: ['direct' | 'proxied', number][] =
        r % 2 === 0
          ? [
              ['direct', echoPort],
              ['proxied', proxyPort],
            ]
          : [
              ['proxied', proxyPort],
              ['direct', echoPort],
            ];
      for (const [path_, port] of order) {
        m.one[path_].push(await throughput(port, plan.bytes, 1));
        m.many[path_].push(await throughput(port, plan.bytes, PARALLEL));
        m.rtt[path_].push(...(await pingPong(port, plan.pings)));
        m.conn[path_].push(...(await connects(port, plan.connects)));
      }
    }
    const one = { d: median(m.one.direct), p: median(m.one.proxied) };
    const many = { d: median(m.many.direct), p: median(m.many.proxied) };
    const rtt = { d: median(m.rtt.direct), p: median(m.rtt.proxied) };
    const rtt99 = { d: p99(m.rtt.direct), p: p99(m.rtt.proxied) };
    const conn = { d: median(m.conn.direct), p: median(m.conn.proxied) };
    const mib = (plan.bytes / 1024 / 1024).toFixed(0);
    return [
      {
        section: `5. TCP wake proxy, VM awake: proxied vs direct to the same echo server (scripts/bench/tcp.ts), median of ${plan.rounds} rounds`,
      },
      {
        measure: `throughput, 1 connection, ${mib} MiB echoed`,
        value: mbps(one.p),
        baseline: mbps(one.d),
        ratio: times(one.p, one.d),
      },
      {
        measure: `throughput, ${PARALLEL} connections, ${mib} MiB echoed`,
        value: mbps(many.p),
        baseline: mbps(many.d),
        ratio: times(many.p, many.d),
      },
      { measure: '64 B round trip (median)', value: msec(rtt.p), baseline: msec(rtt.d), ratio: times(rtt.p, rtt.d) },
      {
        measure: '64 B round trip (p99)',
        value: msec(rtt99.p),
        baseline: msec(rtt99.d),
        ratio: times(rtt99.p, rtt99.d),
      },
      { measure: 'added latency per round trip (median)', value: msec(rtt.p - rtt.d) },
      {
        measure: 'new connection to first echoed byte (median)',
        value: msec(conn.p),
        baseline: msec(conn.d),
        ratio: times(conn.p, conn.d),
      },
      { measure: 'added latency per new connection (median)', value: msec(conn.p - conn.d) },
    ];
  } finally {
    await stop(proxy);
    echo.kill('SIGTERM');
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
