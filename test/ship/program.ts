import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

// The program that ships (dist/virtwake.js) as its own process: built once per change of
// what goes into it, started with an environment, read through its log lines.

export const ROOT = path.join(__dirname, '../..');
const DIST = path.join(ROOT, 'dist');
const STAMP = path.join(DIST, '.inputs-sha256');

/** Everything the build reads: when none of it changed, dist/ is the bundle of this tree. */
function inputsHash(): string {
  const h = createHash('sha256');
  const walk = (rel: string): void => {
    const abs = path.join(ROOT, rel);
    if (fs.statSync(abs).isDirectory()) {
      for (const e of fs.readdirSync(abs).sort()) walk(path.join(rel, e));
    } else {
      h.update(rel).update('\0').update(fs.readFileSync(abs)).update('\0');
    }
  };
  for (const rel of [
    'functions',
    'schemas',
    'scripts/build.mjs',
    'scripts/bundle-loader.cjs',
    'scripts/precompile-validators.cjs',
    'package-lock.json',
  ])
    walk(rel);
  h.update(process.version);
  return h.digest('hex');
}

/**
 * `npm run build`, unless dist/ already holds the bundle of this very tree. Test files that
 * need the bundle may run at once: a lock directory makes the others wait for one build.
 */
export async function ensureBundle(): Promise<void> {
  const want = inputsHash();
  const lock = path.join(os.tmpdir(), `virtwake-build-${createHash('sha256').update(ROOT).digest('hex').slice(0, 12)}`);
  for (;;) {
    try {
      fs.mkdirSync(lock);
      break;
    } catch {
      // Another test file is building; a lock older than 5 minutes is left from a killed run.
      try {
        if (Date.now() - fs.statSync(lock).mtimeMs > 300_000) fs.rmSync(lock, { recursive: true, force: true });
      } catch {
        // gone meanwhile
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  try {
    const have = fs.existsSync(STAMP) ? fs.readFileSync(STAMP, 'utf8') : '';
    if (have === want && fs.existsSync(path.join(DIST, 'virtwake.js'))) return;
    execFileSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, stdio: 'pipe' });
    fs.writeFileSync(STAMP, want);
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
}

export interface Program {
  child: ChildProcess;
  /** Every line written so far, stdout and stderr, in order. */
  lines: string[];
  stderr(): string;
  /** Resolves with the first JSON log line whose msg is `msg` (also one already written). */
  logLine(msg: string): Promise<Record<string, any>>;
  /** Resolves with the exit code (a signal counts as null). */
  exited: Promise<number | null>;
}

/** Start `command args` (default: node dist/virtwake.js) with exactly `env` plus PATH and HOME. */
export function startProgram(
  env: Record<string, string>,
  command: string[] = [process.execPath, 'dist/virtwake.js'],
  opts: { detached?: boolean } = {},
): Program {
  const child = spawn(command[0], command.slice(1), {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? os.tmpdir(), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: opts.detached,
  });
  const lines: string[] = [];
  let err = '';
  const waiters: (() => void)[] = [];
  const onData = (isErr: boolean) => {
    let partial = '';
    return (chunk: Buffer) => {
      const text = partial + chunk.toString('utf8');
      if (isErr) err += chunk.toString('utf8');
      const parts = text.split('\n');
      partial = parts.pop() ?? '';
      lines.push(...parts);
      for (const w of waiters.splice(0)) w();
    };
  };
  child.stdout!.on('data', onData(false));
  child.stderr!.on('data', onData(true));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const find = (msg: string) => {
    for (const l of lines) {
      if (!l.startsWith('{')) continue;
      try {
        const o = JSON.parse(l);
        if (o.msg === msg) return o;
      } catch {
        // not a log line
      }
    }
    return undefined;
  };
  return {
    child,
    lines,
    stderr: () => err,
    exited,
    logLine(msg) {
      return new Promise((resolve, reject) => {
        let done = false;
        const check = () => {
          if (done) return;
          const hit = find(msg);
          if (hit) {
            done = true;
            resolve(hit);
          } else waiters.push(check);
        };
        exited.then((code) => {
          if (done) return;
          done = true;
          reject(new Error(`exited ${code} before logging "${msg}":\n${lines.join('\n')}`));
        });
        check();
      });
    },
  };
}

export function kubeconfigFile(text: string): { file: string; dir: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'virtwake-kc-'));
  const file = path.join(dir, 'kubeconfig');
  fs.writeFileSync(file, text, { mode: 0o600 });
  return { file, dir };
}
