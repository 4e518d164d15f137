import { ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';

// Processes under test: spawn one, find out when it first answers, read its
// RSS, stop it. Everything talks to 127.0.0.1 only.

export interface Target {
  /** Short name for the table. */
  name: string;
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  cwd?: string;
}

export interface Running {
  child: ChildProcess;
  port: number;
  /** Last lines the process wrote to stderr, for error messages. */
  stderr(): string;
}

/** A port nothing listens on right now (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** Spawn `t` listening on `port` (PORT and FUNC_PORT are both set). stdout goes to /dev/null, as log shipping is not what we measure. */
export function launch(t: Target, port: number): Running {
  const child = spawn(t.command, t.args, {
    cwd: t.cwd,
    env: { ...t.env, PORT: String(port), FUNC_PORT: String(port) },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let tail = '';
  child.stderr?.setEncoding('utf8').on('data', (s: string) => {
    tail = (tail + s).slice(-4000);
  });
  return { child, port, stderr: () => tail };
}

export interface Shot {
  method?: string;
  path?: string;
  headers: http.OutgoingHttpHeaders;
  body?: Buffer;
}

/** Send one request on a fresh connection; resolves with the status once the whole answer has arrived. */
export function sendOnce(port: number, shot: Shot): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: shot.method ?? 'POST',
        path: shot.path ?? '/',
        headers: shot.headers,
        agent: false,
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(shot.body);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Cold start as an event source sees it: from spawn until the first event is
 * answered. The request is retried every `pollMs` while the port refuses
 * connections (the activator also retries until the pod is ready).
 */
export async function coldStart(
  t: Target,
  shot: Shot,
  opts: { pollMs?: number; timeoutMs?: number } = {},
): Promise<{ ms: number; status: number; running: Running }> {
  const port = await freePort();
  const t0 = process.hrtime.bigint();
  const running = launch(t, port);
  const deadline = Date.now() + (opts.timeoutMs ?? 15_000);
  let exited: number | null = null;
  running.child.once('exit', (code) => (exited = code ?? -1));
  for (;;) {
    try {
      const status = await sendOnce(port, shot);
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      return { ms, status, running };
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (exited !== null)
        throw new Error(`${t.name} exited with ${exited} before answering:\n${running.stderr()}`, { cause: e });
      if (code !== 'ECONNREFUSED' && code !== 'ECONNRESET') throw e;
      if (Date.now() > deadline) {
        await stop(running);
        throw new Error(`${t.name} did not answer within ${opts.timeoutMs ?? 15_000} ms:\n${running.stderr()}`, {
          cause: e,
        });
      }
      await sleep(opts.pollMs ?? 1);
    }
  }
}

/** Start `t` and wait until it has answered `shot` once. */
export async function startWarm(t: Target, shot: Shot): Promise<Running> {
  return (await coldStart(t, shot, { pollMs: 10 })).running;
}

/** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
export function stop(r: Running, graceMs = 5000): Promise<void> {
  const { child } = r;
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** Resident set size of a process in bytes (Linux /proc; NaN elsewhere). */
export function rssBytes(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** CPU time (user + system) a process has used so far, in ms (Linux /proc; NaN elsewhere). Clock ticks are 100 Hz on Linux. */
export function cpuMs(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return NaN;
  }
}
