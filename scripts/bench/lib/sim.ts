import { ChildProcess, fork } from 'node:child_process';
import path from 'node:path';
import type { BulkVMInput } from '../../../simulator';

// The simulator, run by sim-process.ts in its own process (HTTPS + bearer
// token, like an in-cluster API server; plain HTTP on request), and a handle
// to drive it.

export interface SimHandle {
  url: string;
  kubeconfigPath: string;
  token: string;
  ca?: string;
  pid?: number;
  addVMs(vms: BulkVMInput[]): Promise<number>;
  /** A Service for `vmName` whose endpoint (127.0.0.1:upstreamPort) is ready while the VM runs. */
  addService(name: string, vmName: string, port: number, upstreamPort: number): Promise<void>;
  settle(): Promise<void>;
  calls(): Promise<number>;
  resetCalls(): Promise<void>;
  close(): Promise<void>;
}

export const OPTED_IN = { 'virtwake.io/enabled': 'true' };

/** A stopped VM that virtwake may start (runStrategy Manual: start → 202, again → 409 "already running"). */
export function stoppedVM(name: string): BulkVMInput {
  return {
    vm: { metadata: { name, namespace: 'default', labels: OPTED_IN }, spec: { runStrategy: 'Manual' } },
    opts: { running: false },
  };
}

export async function startSim(opts: { tls?: boolean } = {}): Promise<SimHandle> {
  const child: ChildProcess = fork(
    path.join(__dirname, '..', 'sim-process.ts'),
    opts.tls === false ? ['--plain'] : [],
    {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    },
  );
  let seq = 0;
  const pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  const ready = new Promise<{ url: string; kubeconfigPath: string; token: string; ca?: string }>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`simulator process exited with ${code}`)));
    child.on('message', (m: any) => {
      if (m.ready) return resolve(m);
      const p = pending.get(m.seq);
      if (!p) return;
      pending.delete(m.seq);
      if (m.ok) p.resolve(m.value);
      else p.reject(new Error(`simulator: ${m.error}`));
    });
  });
  const info = await ready;
  const call = <T>(msg: Record<string, unknown>): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const id = ++seq;
      pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      child.send({ ...msg, seq: id });
    });
  return {
    ...info,
    pid: child.pid,
    addVMs: (vms) => call<number>({ op: 'addVMs', vms }),
    addService: (name, vmName, port, upstreamPort) =>
      call<void>({ op: 'addService', namespace: 'default', name, vmName, port, upstreamPort }),
    settle: () => call<void>({ op: 'settle' }),
    calls: () => call<number>({ op: 'calls' }),
    resetCalls: () => call<void>({ op: 'resetCalls' }),
    async close() {
      if (child.exitCode !== null) return;
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      await call<void>({ op: 'close' }).catch(() => child.kill('SIGKILL'));
      await exited;
    },
  };
}
