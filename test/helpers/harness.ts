import pino from 'pino';
import request from 'supertest';
import { startSimulator, Simulator, SimOptions } from '../../simulator';
import path from 'node:path';
import { App, createApp } from '../../functions/app';
import { clusterWide, compareRoleWithCalls } from '../knative/rbac';

const ROLE = path.join(__dirname, '../../knative/rbac.yaml');
/** VIRTWAKE_NAMESPACES='*' lists across namespaces: the ClusterRole variant (knative/cluster-wide/) allows that. */
const CLUSTER_ROLE = path.join(__dirname, '../../knative/cluster-wide/cluster-rbac.yaml');

// A KubeVirt API simulator on loopback plus the real virtwake server wired to
// it through a kubeconfig, driven over HTTP with supertest.

export interface Harness {
  sim: Simulator;
  app: App;
  /** POST a binary-mode CloudEvent; `data` is sent as JSON. */
  send(type: string, data: unknown, opts?: SendOptions): request.Test;
  /** Another server instance (a second replica) on the same simulator. */
  replica(env?: Record<string, string>): Promise<App>;
  close(): Promise<void>;
}

export interface SendOptions {
  id?: string;
  source?: string;
  time?: string;
  headers?: Record<string, string>;
  to?: App;
}

export interface HarnessOptions {
  sim?: SimOptions;
  env?: Record<string, string>;
  now?: () => Date;
  /** Where every instance's log lines go (silent when unset, unless TEST_LOG_LEVEL says otherwise). */
  log?: pino.DestinationStream;
}

let seq = 0;

export function baseEnv(sim: Simulator, extra: Record<string, string> = {}): Record<string, string> {
  return {
    KUBECONFIG: sim.kubeconfigPath,
    VIRTWAKE_NAMESPACE: 'default',
    VIRTWAKE_RETRY_BUDGET_MS: '400',
    LOG_LEVEL: 'silent',
    ...extra,
  };
}

export async function startHarness(opts: HarnessOptions = {}): Promise<Harness> {
  // https with a CA and a bearer token, as a real API server: the client's TLS path is exercised in every test.
  const sim = await startSimulator({ tls: true, token: 'virtwake-test-token', ...opts.sim });
  const apps: App[] = [];
  const make = async (env: Record<string, string> = {}) => {
    const a = await createApp({
      env: baseEnv(sim, { ...opts.env, ...env }),
      now: opts.now,
      logger: opts.log ? pino({ level: 'debug' }, opts.log) : pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }),
    });
    apps.push(a);
    // Listening up front lets concurrent requests share one server (supertest would otherwise listen and close per request).
    await new Promise<void>((resolve) => a.server.listen(0, '127.0.0.1', resolve));
    return a;
  };
  const app = await make();
  return {
    sim,
    app,
    send(type, data, o = {}) {
      const req = request((o.to ?? app).server)
        .post('/')
        .set('ce-specversion', '1.0')
        .set('ce-id', o.id ?? `test-${process.pid}-${++seq}`)
        .set('ce-source', o.source ?? '/test/harness')
        .set('ce-type', type)
        .set('content-type', 'application/json');
      if (o.time) req.set('ce-time', o.time);
      for (const [k, v] of Object.entries(o.headers ?? {})) req.set(k, v);
      return req.send(JSON.stringify(data));
    },
    replica: (env) => make(env),
    async close() {
      for (const a of apps) await a.close();
      await sim.close();
      // Every call any integration test made must be one the shipped Role allows; one across all
      // namespaces, one the ClusterRole variant allows.
      const calls = sim.calls.filter((c) => c.status !== 401);
      const { missing } = compareRoleWithCalls(
        ROLE,
        calls.filter((c) => !clusterWide(c)),
      );
      if (missing.length)
        throw new Error(`knative/rbac.yaml does not allow calls virtwake made in this test: ${missing.join(', ')}`);
      const wide = compareRoleWithCalls(CLUSTER_ROLE, calls.filter(clusterWide)).missing;
      if (wide.length)
        throw new Error(
          `knative/cluster-wide/cluster-rbac.yaml does not allow calls virtwake made in this test: ${wide.join(', ')}`,
        );
    },
  };
}

/** The reply event's data from a binary-mode 200 answer. */
export function replyData<T = Record<string, any>>(res: request.Response): T {
  return JSON.parse(res.text) as T;
}
