// The rig's simulator process (simulator/rig/main.ts): started detached with its stderr in a log
// file, and trusted only once it prints {"port":N}. Exiting, failing to start, printing anything
// else, or saying nothing for too long fails at once with the end of its log in the error,
// since a rig that waits on a dead simulator would only hang.

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';

const REPO = path.join(__dirname, '../../..');

export function logTail(file: string, chars = 3000): string {
  try {
    const text = readFileSync(file, 'utf8').trimEnd();
    return text ? text.slice(-chars) : '(empty)';
  } catch {
    return '(no log)';
  }
}

export interface RigSimulator {
  child: ChildProcess;
  port: number;
}

/** Starts the rig simulator with `configFile`; `onSpawn` hears its pid first, so a caller can clean up after a failure. */
export function startRigSimulator(
  configFile: string,
  logFile: string,
  onSpawn: (pid: number) => void,
  timeoutMs = 90_000,
): Promise<RigSimulator> {
  const log = openSync(logFile, 'a');
  const child = spawn(
    process.execPath,
    [path.join(REPO, 'node_modules/tsx/dist/cli.mjs'), path.join(REPO, 'simulator/rig/main.ts'), configFile],
    { stdio: ['ignore', 'pipe', log], detached: true },
  );
  closeSync(log);
  if (child.pid) onSpawn(child.pid);
  return new Promise<RigSimulator>((resolve, reject) => {
    let buf = '';
    const fail = (why: string) => {
      clearTimeout(timer);
      child.stdout?.destroy();
      // Its own process group (detached): tsx's child goes with it.
      if (child.exitCode === null && child.pid) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
      }
      reject(new Error(`rig simulator ${why}; the end of ${logFile}:\n${logTail(logFile)}`));
    };
    const timer = setTimeout(() => fail(`did not report its port within ${timeoutMs} ms`), timeoutMs);
    child.once('error', (e) => fail(`could not be started (${e.message})`));
    child.once('exit', (code, signal) => fail(`exited with ${signal ?? code} before it reported its port`));
    child.stdout!.on('data', (c: Buffer) => {
      buf += c.toString();
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      const line = buf.slice(0, nl);
      let port: unknown;
      try {
        port = (JSON.parse(line) as { port?: unknown }).port;
      } catch {
        // not JSON: below
      }
      if (typeof port !== 'number' || port <= 0) return fail(`printed ${JSON.stringify(line)} instead of {"port":N}`);
      clearTimeout(timer);
      child.removeAllListeners('exit');
      child.removeAllListeners('error');
      child.stdout!.destroy();
      child.unref();
      resolve({ child, port });
    });
  });
}
