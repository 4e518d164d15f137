import fs from 'node:fs';
import path from 'node:path';
import type { Shot, Target } from './proc';
import type { SimHandle } from './sim';

// What is measured, as separate processes started the way production starts
// them (no npm, no tsx in between), and the events they are sent.

const ROOT = path.resolve(__dirname, '..', '..', '..');
const SERVERS = path.join(__dirname, '..', 'servers');
const NODE = process.execPath;

/** A clean environment: nothing from the developer's shell leaks into the measurement. */
function baseEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/tmp',
    NODE_ENV: 'production',
    ...extra,
  };
}

/** virtwake's production start command (`npm start` = `node dist/virtwake.js`), at its production log level. */
export function virtwake(sim: SimHandle): Target {
  const bundle = path.join(ROOT, 'dist', 'virtwake.js');
  if (!fs.existsSync(bundle)) throw new Error('dist/virtwake.js is missing: run `npm run build` first');
  return {
    name: 'virtwake',
    command: NODE,
    args: [bundle],
    cwd: ROOT,
    env: baseEnv({ KUBECONFIG: sim.kubeconfigPath, VIRTWAKE_NAMESPACE: 'default', LOG_LEVEL: 'info' }),
  };
}

/** A bare Node http server that reads the body and answers 202. */
export function bare(): Target {
  return {
    name: 'bare node http',
    command: NODE,
    args: [path.join(SERVERS, 'bare-server.cjs')],
    cwd: SERVERS,
    env: baseEnv({}),
  };
}

export const FAAS_VERSION: string = JSON.parse(
  fs.readFileSync(path.join(ROOT, 'node_modules', 'faas-js-runtime', 'package.json'), 'utf8'),
).version;

/** faas-js-runtime's CLI (what `kn func` images run) serving a trivial handler, at the runtime's default log level (warn). */
export function faas(): Target {
  return {
    name: `faas-js-runtime ${FAAS_VERSION}`,
    command: NODE,
    args: [path.join(ROOT, 'node_modules', 'faas-js-runtime', 'bin', 'cli.js'), path.join(SERVERS, 'faas-handler.cjs')],
    // No func.yaml in this directory: the runtime would read the project's otherwise.
    cwd: SERVERS,
    env: baseEnv({}),
  };
}

let seq = 0;

/** A binary-mode CloudEvent; a fresh id per call, as a Broker sends them. */
export function event(type: string, data: unknown): Shot {
  const body = Buffer.from(JSON.stringify(data));
  return {
    headers: {
      'ce-specversion': '1.0',
      'ce-id': `bench-${process.pid}-${++seq}`,
      'ce-source': '/virtwake/bench',
      'ce-type': type,
      'content-type': 'application/json',
      'content-length': body.length,
    },
    body,
  };
}

/**
 * A family of events of one shape, cheap to produce on the load generator's
 * hot path: one body and header set per variant, only the id changes.
 */
export function eventStream(type: string, variants: readonly unknown[]): (i: number) => Shot {
  const bodies = variants.map((d) => Buffer.from(JSON.stringify(d)));
  const prefix = `bench-${process.pid}-${Date.now().toString(36)}-`;
  return (i) => {
    const body = bodies[i % bodies.length];
    return {
      headers: {
        'ce-specversion': '1.0',
        'ce-id': prefix + i,
        'ce-source': '/virtwake/bench',
        'ce-type': type,
        'content-type': 'application/json',
        'content-length': body.length,
      },
      body,
    };
  };
}

export const START = 'io.virtwake.vm.start';

/** Fails the schema (unknown field and a name that is not DNS-1123): answered 400 before any API call. */
export const INVALID_START = { name: 'Not_A_Valid_Name', bogus: true };
